"""What the screens share within one app: templates, payment provider, lookup limit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from cloud.web.messages import LANGUAGE_NAMES, Lang, t
from cloud.web.money import format_paise, plain_rupees
from cloud.web.providers import PaymentProvider, WebSettings, build_provider
from cloud.web.security import SlidingWindowLimit
from cloud.web.sessions import ConsoleSessions

HERE = Path(__file__).parent
LOOKUP_WINDOW_S = 60.0
SIGN_INS_PER_MINUTE = 10


@dataclass
class WebState:
    """The screens' parts, built once per app."""

    settings: WebSettings
    templates: Jinja2Templates
    provider: PaymentProvider
    lookups: SlidingWindowLimit
    dev_mode: bool
    sessions: ConsoleSessions
    sign_ins: SlidingWindowLimit


def build_web_state(settings: WebSettings, *, dev_mode: bool) -> WebState:
    """Templates with the catalogue and money filters, the provider, the lookup limit."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(t=t, language_names=LANGUAGE_NAMES)
    templates.env.filters["rupees"] = format_paise
    templates.env.filters["plain_rupees"] = plain_rupees
    return WebState(
        settings,
        templates,
        build_provider(settings),
        SlidingWindowLimit(settings.lookups_per_minute, LOOKUP_WINDOW_S),
        dev_mode,
        ConsoleSessions(),
        SlidingWindowLimit(SIGN_INS_PER_MINUTE, LOOKUP_WINDOW_S),
    )


def web_state(request: Request) -> WebState:
    """This app's screens state."""
    state: WebState = request.app.state.web
    return state


def client_key(request: Request) -> str:
    """Whom a lookup is counted against: the connecting address."""
    return request.client.host if request.client else "unknown"


def render(request: Request, name: str, lang: Lang, status: int = 200, **ctx: object) -> Response:
    """Render a screen's template with the language switch and the catalogue."""
    state = web_state(request)
    other: Lang = "en" if lang == "hi" else "hi"
    params = dict(request.query_params) | {"lang": other}
    switch_url = str(request.url.replace_query_params(**params))
    context = {"lang": lang, "other_lang": other, "switch_url": switch_url, **ctx}
    return state.templates.TemplateResponse(request, name, context, status_code=status)
