# syntax=docker/dockerfile:1
# One image for every Python part: `switchyard cloud`, `switchyard gateway`, `switchyard sim`
# and the one-shot `python -m switchyard.seed`; compose.yaml picks the command per service.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY wire ./wire
COPY dlms ./dlms
COPY cloud ./cloud
COPY edge_gateway ./edge_gateway
COPY firmware_sim ./firmware_sim
COPY switchyard ./switchyard
RUN pip install --no-cache-dir --prefix=/install -c constraints.txt ".[cloud,edge]"

FROM python:3.11-slim-bookworm
# The directories named volumes mount on exist here, owned by the service user, so each new
# volume starts out writable by it.
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/switchyard switchyard \
    && mkdir -p /var/lib/switchyard/fleet /var/lib/switchyard/spool /var/lib/switchyard/edge \
    && chown -R switchyard:switchyard /var/lib/switchyard
COPY --from=build /install /usr/local
ENV PYTHONUNBUFFERED=1
USER switchyard
WORKDIR /var/lib/switchyard
ENTRYPOINT ["switchyard"]
CMD ["cloud"]
