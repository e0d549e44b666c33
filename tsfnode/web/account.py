"""A person's own account: the e-mail address their notices go to and how they want
them (immediately, a daily digest, never); the time zone they read times in. The
address is personal data: only the person sees it here, and the node's operator (the
admin page's failed e-mails).

    GET  /web/account           the page
    POST /web/account           the address and the choice (CSRF)
    POST /web/account/timezone  the zone (an IANA name; empty: the node's) (CSRF)
"""

from __future__ import annotations

import functools
import re
import zoneinfo

from aiohttp import web

from tsfnode.appkeys import CONFIG, STORE
from tsfnode.auth.sessions import check_csrf, posted_form, require
from tsfnode.clock import request_now
from tsfnode.config import EMAIL
from tsfnode.errors import NodeError
from tsfnode.i18n import N_, known_zone, texts, zone_named
from tsfnode.logs import log
from tsfnode.routes import Routes
from tsfnode.store.accounts import AccountStore
from tsfnode.store.mail import MODES, MailStore
from tsfnode.web.common import language_of, render_page

PEOPLE = ("sender", "reader", "coordinator")
ROUTES = Routes()


def check_email(value: str) -> str:
    """An address as typed (trimmed), '' for none; NodeError naming the problem."""
    value = value.strip()
    if value and (len(value) > 254 or not re.fullmatch(EMAIL, value)):
        raise NodeError(
            "e-mail: not an address such as name@hospital.org", key=N_("account_bad_email")
        )
    return value


ZONE_REGIONS = ("Africa/", "Europe/", "America/", "Atlantic/", "Indian/")


@functools.cache
def offered_zones() -> tuple[str, ...]:
    """The zones the page suggests (where the network's people are); any known is taken."""
    return ("UTC", *sorted(z for z in zoneinfo.available_timezones() if z.startswith(ZONE_REGIONS)))


def check_zone(value: str) -> str:
    """A zone as typed (trimmed), '' for the node's; NodeError naming the problem."""
    value = value.strip()
    if value and (len(value) > 64 or not known_zone(value)):
        raise NodeError(
            "time zone: not a zone such as Africa/Porto-Novo or Europe/Brussels",
            key=N_("account_bad_timezone"),
        )
    return value


@ROUTES.get("/account")  # the page as it is, or drawn again with an error
async def account_page(
    request: web.Request,
    *,
    error: NodeError | None = None,
    saved: bool = False,
    status: int = 200,
    typed: dict[str, str] | None = None,
) -> web.Response:
    """The page; after a refusal, ``typed`` is what the person typed (nothing lost)."""
    session = await require(request, *PEOPLE)
    contact = await MailStore(request.config_dict[STORE].db).contact(session.account_id)
    node_zone = zone_named(request.config_dict[CONFIG].timezone)
    return render_page(
        request,
        "account.html",
        session=session,
        contact=contact,
        typed=typed,
        zones=offered_zones(),
        request_saved_zone=request.query.get("saved") == "zone",
        now_ms=request_now(request),
        node_zone=f"{node_zone.key} ({texts(language_of(request, session)).city(node_zone)})",
        modes=MODES,
        mail_on=bool(request.config_dict[CONFIG].smtp_host),
        error=error,
        saved=saved,
        status=status,
    )


@ROUTES.post("/account")
async def save_account(request: web.Request) -> web.Response:
    session = await require(request, *PEOPLE)
    form = await check_csrf(request, session)
    mode = str(form.get("mode", ""))
    try:
        email = check_email(str(form.get("email", "")))
        if mode not in MODES:
            raise NodeError("mode: choose one of the choices given", key=N_("account_bad_mode"))
    except NodeError as exc:
        typed = {"email": str(form.get("email", ""))[:254], "mode": mode}
        return await account_page(request, error=exc, status=400, typed=typed)
    await MailStore(request.config_dict[STORE].db).set_contact(session.account_id, email, mode)
    log("e-mail choice saved", mode=mode, address=bool(email))
    return await account_page(request, saved=True)


@ROUTES.post("/account/timezone")
async def save_zone(request: web.Request) -> web.Response:
    session, form = await posted_form(request, *PEOPLE)
    typed = str(form.get("timezone", ""))
    try:
        zone = check_zone(typed)
    except NodeError as exc:
        return await account_page(request, error=exc, status=400, typed={"timezone": typed[:64]})
    await AccountStore(request.config_dict[STORE].db).set_timezone(session.account_id, zone)
    log("time zone saved", zone=zone or "node's")
    # drawn from the session as it is now: the new zone's times at once
    raise web.HTTPSeeOther("/web/account?saved=zone#timezone")


def add_routes(app: web.Application) -> None:
    app.router.add_routes(ROUTES)
