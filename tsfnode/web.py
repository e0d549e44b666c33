"""The web application: pages for the people who use this node (jinja2, no framework,
nothing fetched from outside the node)."""

from __future__ import annotations

import time
from pathlib import Path

import jinja2
from aiohttp import web

from tsfnode import __version__
from tsfnode.appkeys import CONFIG, DIRECTORY, IDENTITY, PEERING, STARTED_MS
from tsfnode.i18n import LANGUAGES, choose_language, format_number, translator
from tsfnode.peering import now_ms

TEMPLATES = web.AppKey("templates", jinja2.Environment)
_TEMPLATE_DIR = Path(__file__).parent / "templates"
_STATIC_DIR = Path(__file__).parent / "static"


def render(
    request: web.Request,
    name: str,
    *,
    status: int = 200,
    person_language: str | None = None,
    **context: object,
) -> web.Response:
    lang = choose_language(request, person_language)
    template = request.app[TEMPLATES].get_template(name)
    context.setdefault("session", None)
    html = template.render(
        t=translator(lang),
        lang=lang,
        languages=LANGUAGES,
        num=lambda value, digits=0: format_number(value, lang, digits),
        **context,
    )
    response = web.Response(text=html, content_type="text/html", status=status)
    response.headers["Content-Language"] = lang
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.query.get("lang") in LANGUAGES:
        response.set_cookie(
            "lang", lang, max_age=365 * 86400, httponly=True, samesite="Lax", path="/"
        )
    return response


async def index(request: web.Request) -> web.Response:
    config = request.config_dict[CONFIG]
    started = time.strftime(
        "%Y-%m-%d %H:%M UTC", time.gmtime(request.config_dict[STARTED_MS] / 1000)
    )
    identity = request.config_dict[IDENTITY]
    now = now_ms()
    admitted = request.config_dict[DIRECTORY].view(now).is_admitted(identity.public.key)
    return render(
        request,
        "index.html",
        config=config,
        node_id=identity.public.text,
        started=started,
        version=__version__,
        admitted=admitted,
        peers=request.config_dict[PEERING].peers(now),
    )


def create_web_app() -> web.Application:
    from tsfnode.webadmin import add_routes as add_admin_routes
    from tsfnode.webcases import add_routes
    from tsfnode.webcoord import add_routes as add_coordinator_routes
    from tsfnode.webnew import add_routes as add_new_case_routes
    from tsfnode.webpairs import add_routes as add_pair_routes
    from tsfnode.webtools import add_routes as add_tool_routes
    from tsfnode.webviewer import add_routes as add_viewer_routes

    app = web.Application()
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    app.router.add_get("/", index)
    add_routes(app)
    add_new_case_routes(app)
    add_coordinator_routes(app)
    add_admin_routes(app)
    add_pair_routes(app)
    add_viewer_routes(app)
    add_tool_routes(app)
    app.router.add_static("/static", _STATIC_DIR)
    return app
