"""What every page of the web application shares: rendering a template in the person's
language with the page's security headers, the signed-in person's key, names from the
directory, times as each language writes them, a case refusal as an HTTP answer, the
case of a URL if the person may see it."""

from __future__ import annotations

import time
from typing import Any

import jinja2
from aiohttp import web

from tsfnode.appkeys import CASES, CONFIG, NODE_DIR, STORE
from tsfnode.auth.accounts import person_of_account
from tsfnode.auth.sessions import Session
from tsfnode.cases.service import NO_SUCH_CASE
from tsfnode.clock import request_now
from tsfnode.errors import CaseError, NodeError
from tsfnode.i18n import LANGUAGES, choose_language, format_number, translator

TEMPLATES = web.AppKey("templates", jinja2.Environment)


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


def render_page(request: web.Request, name: str, **context: Any) -> web.Response:
    session = context.get("session")
    language = session.language if isinstance(session, Session) else None
    context.setdefault("config", request.config_dict[CONFIG])
    return render(request, name, person_language=language, **context)


DATE_FORMATS = {"fr": "%d/%m/%Y %H:%M UTC", "en": "%d %b %Y, %H:%M UTC"}


def when(ms: int | None, lang: str = "en") -> str:
    """A time as people of ``lang`` write it (UTC, said so)."""
    if ms is None:
        return ""
    return time.strftime(DATE_FORMATS.get(lang, DATE_FORMATS["en"]), time.gmtime(ms / 1000))


def language_of(request: web.Request, session: Session) -> str:
    return choose_language(request, session.language)


async def person_of(request: web.Request, session: Session) -> Any:
    try:
        return await person_of_account(
            request.config_dict[STORE], request.config_dict[NODE_DIR].people, session.username
        )
    except NodeError as exc:
        raise web.HTTPForbidden(text=str(exc)) from None


def names_of(request: web.Request) -> dict[str, str]:
    """Display names of the people in the directory, by their key in hex."""
    view = request.config_dict[CASES].view(request_now(request))
    return {key.hex(): m.body["display_name"] for key, m in view.members.items()}


def http_error(exc: CaseError) -> web.HTTPException:
    kinds: dict[int, type[web.HTTPException]] = {
        400: web.HTTPBadRequest,
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
    }
    return kinds.get(exc.status, web.HTTPConflict)(text=str(exc))


async def seen_case(request: web.Request, session: Session) -> tuple[bytes, bytes, dict[str, Any]]:
    """(case id, person key, the case's row) of the case the URL names, if the signed-in
    person may see it (cases/policy.py decides). Otherwise 404 "no such case on this
    node", the answer for a case that does not exist: whether it does is not told."""
    try:
        case_id = bytes.fromhex(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text=NO_SUCH_CASE) from None
    cursor = await request.config_dict[STORE].db.execute(
        "SELECT person_key FROM accounts WHERE id = ?", (session.account_id,)
    )
    found = await cursor.fetchone()
    if found is None or found[0] is None:  # an account that is nobody (the admin's)
        raise web.HTTPNotFound(text=NO_SUCH_CASE)
    person = bytes(found[0])
    try:
        row = await request.config_dict[CASES].seen(case_id, person, request_now(request))
    except CaseError as exc:
        raise http_error(exc) from None
    return case_id, person, row
