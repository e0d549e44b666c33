"""The web application: pages for the people who use this node (jinja2, no framework,
nothing fetched from outside the node)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from tsfnode import __version__
from tsfnode.appkeys import CONFIG, DIRECTORY, IDENTITY, PEERING, STARTED_MS
from tsfnode.auth.gate import Gate
from tsfnode.auth.sessions import home_of, session_of, signed_in
from tsfnode.clock import request_now
from tsfnode.web.account import add_routes as add_account_routes
from tsfnode.web.admin import add_routes as add_admin_routes
from tsfnode.web.cases import add_routes, login, login_page, logout
from tsfnode.web.common import TEMPLATES, environment, render
from tsfnode.web.coordinator import add_routes as add_coordinator_routes
from tsfnode.web.coordinator import apply, join_page
from tsfnode.web.live import add_routes as add_live_routes
from tsfnode.web.new_case import add_routes as add_new_case_routes
from tsfnode.web.pairs import add_routes as add_pair_routes
from tsfnode.web.report_out import add_routes as add_report_out_routes
from tsfnode.web.tools import add_routes as add_tool_routes
from tsfnode.web.viewer import add_routes as add_viewer_routes

_STATIC_DIR = Path(__file__).parent / "static"


async def index(request: web.Request) -> web.Response:
    config = request.config_dict[CONFIG]
    identity = request.config_dict[IDENTITY]
    now = request_now(request)
    admitted = request.config_dict[DIRECTORY].view(now).is_admitted(identity.public.key)
    session = await session_of(request)  # public: signed in or not, it shows the way in
    return render(
        request,
        "index.html",
        person_language=session.language if session else None,
        session=session,
        home=home_of(session.role) if session else None,
        config=config,
        node_id=identity.public.text,
        started_ms=request.config_dict[STARTED_MS],
        version=__version__,
        admitted=admitted,
        peers=request.config_dict[PEERING].peers(now),
    )


def create_web_app() -> web.Application:
    app = web.Application()
    app[TEMPLATES] = environment()
    app.router.add_get("/", index)
    add_routes(app)
    add_new_case_routes(app)
    add_coordinator_routes(app)
    add_admin_routes(app)
    add_pair_routes(app)
    add_viewer_routes(app)
    add_tool_routes(app)
    add_report_out_routes(app)
    add_account_routes(app)
    add_live_routes(app)
    app.router.add_static("/static", _STATIC_DIR)
    Gate.of(
        public=[index, login_page, login, logout, join_page, apply], authenticate=signed_in
    ).install(app)
    return app
