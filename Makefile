# The two commands of the README: `make run` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml constraints.txt scripts/bootstrap.sh | sha1sum | cut -c1-12)

.PHONY: install install-test run test soak lint typecheck unit integration clean lock

$(STAMP):
	bash scripts/bootstrap.sh
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

install-test:
	SWITCHYARD_BOOTSTRAP_TEST=1 bash scripts/bootstrap.sh

run: install
	$(BIN)/switchyard run $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit

integration: install
	$(BIN)/pytest tests/integration

test: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

# Chaos with invariants (docs/soak.md); e.g. `make soak ARGS="--minutes 30 --database postgresql"`.
soak: install
	$(BIN)/switchyard soak $(ARGS)

# Refresh constraints.txt: the newest versions pyproject.toml's ranges admit, in a throwaway venv.
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip
	.venv-lock/bin/python -m pip install -q -e ".[dev]"
	{ sed -n '1,2p' constraints.txt; .venv-lock/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-lock

clean:
	rm -rf .switchyard .pytest_cache .mypy_cache .ruff_cache
