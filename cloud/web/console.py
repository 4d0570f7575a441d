"""The operator console at `/console`: sign in with a token, then fleet, live commands, meters,
disconnection runs, quarantines, the kill switch and the audit log. A viewer sees everything
and can act on nothing: the buttons are absent, and every POST is checked here anyway."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from cloud.access.audit import AuditAction, AuditOutcome, AuditRecord, record_audit
from cloud.access.tokens import Role, TokenAuthenticator
from cloud.api.deps import RuntimeDep
from cloud.api.routes.readings import meter_readings
from cloud.clock import utcnow
from cloud.db.models import Command
from cloud.errors import ApiError, Conflict, Forbidden, NotFound, Unauthorized
from cloud.policy.controls import kill_switch, set_kill_switch
from cloud.policy.reports import run_report
from cloud.runtime import CloudRuntime
from cloud.web import console_data
from cloud.web.sessions import COOKIE, ConsoleSession, csrf_valid, set_session_cookie
from cloud.web.state import client_key, web_state
from wire.ids import ID_PATTERN

router = APIRouter(prefix="/console", include_in_schema=False)

FEED_INTERVAL_S = 0.2
FEED_MAX_S = 3600.0
RunIdPath = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]
CsrfForm = Annotated[str, Form(max_length=128)]


async def _session(request: Request) -> ConsoleSession | None:
    authenticator: TokenAuthenticator = request.app.state.authenticator
    return await web_state(request).sessions.find(request.cookies.get(COOKIE), authenticator)


def _page(request: Request, name: str, session: ConsoleSession, **ctx: object) -> Response:
    context = {
        "principal": session.principal,
        "can_act": session.principal.role >= Role.OPERATOR,
        "csrf": session.csrf,
        **ctx,
    }
    return web_state(request).templates.TemplateResponse(request, name, context)


async def _viewer(request: Request) -> ConsoleSession:
    session = await _session(request)
    if session is None:
        raise SignInRequired()
    return session


async def _operator(request: Request, runtime: CloudRuntime, csrf: str) -> ConsoleSession:
    """A signed-in operator whose form carries the session's CSRF token; else refused."""
    session = await _session(request)
    if session is None:
        raise Unauthorized("sign in to the console first")
    if not csrf_valid(session, csrf) or session.principal.role < Role.OPERATOR:
        await record_audit(
            runtime.db,
            AuditRecord(
                actor=session.principal,
                action=AuditAction.ACCESS_DENIED,
                target=f"POST {request.url.path}",
                outcome=AuditOutcome.DENIED,
                at=utcnow(),
                detail={"console": True, "csrf_ok": csrf_valid(session, csrf)},
            ),
        )
        raise Forbidden("this console action needs an operator session and its CSRF token")
    return session


class SignInRequired(ApiError):
    """No console session: the handler sends the browser to the sign-in form."""

    status_code = 303
    code = "sign_in"

    def __init__(self) -> None:
        super().__init__("sign in first")


def sign_in_redirect(_: Request, __: Exception) -> Response:
    """Exception handler: to the sign-in form."""
    return RedirectResponse("/console", status_code=303)


@router.get("", response_class=HTMLResponse)
async def console_home(request: Request, runtime: RuntimeDep) -> Response:
    """The sign-in form, or the fleet overview once signed in."""
    session = await _session(request)
    if session is None:
        return web_state(request).templates.TemplateResponse(request, "console_signin.html", {})
    async with runtime.db.read() as db:
        fleet = await console_data.overview(db, utcnow())
    return _page(request, "console_overview.html", session, fleet=fleet)


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, token: Annotated[str, Form(max_length=256)]) -> Response:
    """Exchange a token (typed into the form, never in a URL) for a cookie session."""
    state = web_state(request)
    templates = state.templates
    if not state.sign_ins.allow(client_key(request)):
        return templates.TemplateResponse(
            request, "console_signin.html", {"error": "Too many attempts; wait a minute."}, 429
        )
    authenticator: TokenAuthenticator = request.app.state.authenticator
    if await authenticator.authenticate(token.strip()) is None:
        return templates.TemplateResponse(
            request, "console_signin.html", {"error": "Unknown token."}, 401
        )
    session_id, _ = state.sessions.open(token.strip())
    response = RedirectResponse("/console", status_code=303)
    set_session_cookie(request, response, session_id)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, csrf: CsrfForm) -> Response:
    """End the session (the CSRF token keeps other sites from signing you out)."""
    session = await _session(request)
    if session is not None and csrf_valid(session, csrf):
        web_state(request).sessions.close(request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/console", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("/commands", response_class=HTMLResponse)
async def command_feed(request: Request, runtime: RuntimeDep) -> Response:
    """The latest commands; the page's script follows the live feed."""
    session = await _viewer(request)
    async with runtime.db.read() as db:
        commands = list(reversed(await console_data.commands_after(db, None)))
    return _page(request, "console_commands.html", session, commands=commands)


def _feed_row(command: Command) -> dict[str, str]:
    return {
        "command_id": command.command_id,
        "updated_at": command.updated_at.isoformat(timespec="milliseconds"),
        "meter_id": command.meter_id,
        "action": command.action,
        "state": command.state,
        "origin": command.origin,
    }


@router.get("/commands/events")
async def command_events(request: Request, runtime: RuntimeDep) -> Response:
    """Server-Sent Events: every command change from now on (the server watches the table)."""
    await _viewer(request)

    async def events() -> AsyncIterator[str]:
        async with runtime.db.read() as db:
            latest = await console_data.commands_after(db, None, limit=1)
        after: tuple[datetime, str] | None = (
            (latest[-1].updated_at, latest[-1].command_id) if latest else None
        )
        started = time.monotonic()
        yield ": feed open\n\n"
        while time.monotonic() - started < FEED_MAX_S and not await request.is_disconnected():
            async with runtime.db.read() as db:
                changed = await console_data.commands_after(db, after)
            for command in changed:
                after = (command.updated_at, command.command_id)
                yield f"event: command\ndata: {json.dumps(_feed_row(command))}\n\n"
            await asyncio.sleep(FEED_INTERVAL_S)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.get("/meters", response_class=HTMLResponse)
async def meter_lookup(meter: Annotated[str, Query(pattern=ID_PATTERN)]) -> Response:
    """The meter search box's target (works without JavaScript)."""
    return RedirectResponse(f"/console/meters/{meter}", status_code=303)


@router.get("/meters/{meter_id}", response_class=HTMLResponse)
async def meter_page(
    request: Request, runtime: RuntimeDep, meter_id: Annotated[str, Path(pattern=ID_PATTERN)]
) -> Response:
    """Desired vs reported relay, control mode, every command's transitions, readings."""
    session = await _viewer(request)
    async with runtime.db.read() as db:
        history = await console_data.meter_history(db, meter_id)
    if history is None:
        raise NotFound(f"meter {meter_id} not found")
    try:
        readings = (
            await meter_readings(meter_id, runtime, session.principal, None, None, 500, None)
        ).items
    except ApiError:
        readings = []  # readings live in InfluxDB here: Grafana shows them
    chart = console_data.power_chart([(r.at, r.active_power_w) for r in readings])
    return _page(request, "console_meter.html", session, history=history, chart=chart)


@router.get("/runs", response_class=HTMLResponse)
async def runs_page(request: Request, runtime: RuntimeDep) -> Response:
    """The latest disconnection runs, and (operators) the buttons to start one."""
    return await _runs(request, runtime, await _viewer(request))


async def _runs(
    request: Request, runtime: CloudRuntime, session: ConsoleSession, error: str = ""
) -> Response:
    async with runtime.db.read() as db:
        runs = await console_data.latest_runs(db)
        switch = await kill_switch(db)
    page = _page(request, "console_runs.html", session, runs=runs, switch=switch, error=error)
    if error:
        page.status_code = 409
    return page


@router.post("/runs")
async def start_run(
    request: Request,
    runtime: RuntimeDep,
    csrf: CsrfForm,
    mode: Annotated[Literal["dry", "real"], Form()],
) -> Response:
    """Start a dry run (preview) or a real run, as the API does."""
    session = await _operator(request, runtime, csrf)
    try:
        run_id = await runtime.policy.runner.run(
            dry_run=mode == "dry", trigger="console", actor=session.principal.name
        )
    except Conflict as exc:  # the kill switch is engaged, or another run is going
        return await _runs(request, runtime, session, error=exc.message)
    return RedirectResponse(f"/console/runs/{run_id}", status_code=303)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, runtime: RuntimeDep, run_id: RunIdPath) -> Response:
    """A run's counts by outcome and blocking rule, command progress and quarantines."""
    session = await _viewer(request)
    async with runtime.db.read() as db:
        report = await run_report(db, run_id, limit=200)
    if report is None:
        raise NotFound(f"disconnection run {run_id} not found")
    return _page(request, "console_run.html", session, report=report)


@router.post("/runs/{run_id}/quarantines/{dcu_id}/confirm")
async def confirm_quarantine(
    request: Request,
    runtime: RuntimeDep,
    run_id: RunIdPath,
    dcu_id: Annotated[str, Path(pattern=ID_PATTERN)],
    csrf: CsrfForm,
) -> Response:
    """Let a quarantined DCU's disconnections go ahead (the rules are checked again)."""
    session = await _operator(request, runtime, csrf)
    await runtime.policy.runner.decide_quarantine(
        run_id, dcu_id, confirm=True, actor=session.principal.name
    )
    return RedirectResponse(f"/console/runs/{run_id}", status_code=303)


@router.get("/kill-switch", response_class=HTMLResponse)
async def kill_switch_page(request: Request, runtime: RuntimeDep) -> Response:
    """The switch's state and who changed it last."""
    session = await _viewer(request)
    async with runtime.db.read() as db:
        switch = await kill_switch(db)
    return _page(request, "console_kill.html", session, switch=switch, confirm=None)


@router.post("/kill-switch", response_class=HTMLResponse)
async def change_kill_switch(
    request: Request,
    runtime: RuntimeDep,
    csrf: CsrfForm,
    engaged: Annotated[Literal["true", "false"], Form()],
    reason: Annotated[str, Form(min_length=1, max_length=200, pattern=r"^[^\x00]+$")],
    confirmed: Annotated[Literal["yes", "no"], Form()] = "no",
) -> Response:
    """Two steps: the first POST asks for confirmation, the second changes the switch."""
    session = await _operator(request, runtime, csrf)
    if confirmed != "yes":
        async with runtime.db.read() as db:
            switch = await kill_switch(db)
        ask = {"engaged": engaged, "reason": reason}
        return _page(request, "console_kill.html", session, switch=switch, confirm=ask)
    async with runtime.db.write() as db:
        withdrawn = await set_kill_switch(
            db,
            runtime.factory,
            engaged=engaged == "true",
            reason=reason,
            actor=session.principal.name,
            now=utcnow(),
        )
    if withdrawn:
        runtime.dispatcher.wake()
    return RedirectResponse("/console/kill-switch", status_code=303)


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request, runtime: RuntimeDep) -> Response:
    """The newest entries of the audit log."""
    session = await _viewer(request)
    async with runtime.db.read() as db:
        entries = await console_data.audit_entries(db)
    return _page(request, "console_audit.html", session, entries=entries)
