"""What every page of the web application shares: rendering a template in the person's
language with the page's security headers, the signed-in person's key, names from the
directory, times as each language writes them, a refusal in the person's language (as a
page's message or as an HTTP answer), the case of a URL if the person may see it."""

from __future__ import annotations

import functools
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from protocol.directory import View
from protocol.identity import PublicIdentity
from tsfnode.appkeys import CASES, CONFIG, NODE_DIR, STORE
from tsfnode.auth.accounts import person_of_account
from tsfnode.auth.sessions import Session
from tsfnode.clock import request_now
from tsfnode.errors import CaseError, NodeError
from tsfnode.i18n import LANGUAGES, N_, choose_language, texts, translator, zone_named
from tsfnode.store.accounts import AccountStore
from tsfnode.store.cases import CaseRow

TEMPLATES = web.AppKey("templates", jinja2.Environment)
# What a page says it has just done, after a form's POST answered by a redirect
# (``?done=NAME``, Post/Redirect/Get): a name of this table, never text from the URL.
DONE: dict[str, str] = {
    "claimed": N_("done_claimed"),
    "reported": N_("done_reported"),
    "message": N_("done_message"),
    "evaluated": N_("done_evaluated"),
    "closed": N_("done_closed"),
    "assigned": N_("done_assigned"),
    "attested": N_("done_attested"),
    "declined": N_("done_declined"),
    "proposed": N_("done_proposed"),
    "accepted": N_("done_accepted"),
    "suspended": N_("done_suspended"),
    "ended": N_("done_ended"),
    "images_added": N_("done_images_added"),
}
TEMPLATE_DIR = Path(__file__).parent / "templates"


@functools.cache
def environment() -> jinja2.Environment:
    """The web application's templates (also the refusal pages' outside it: a 404 at
    the root)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def read_catalogues() -> None:
    """Every language's catalogue, read now: one that does not parse stops the node's
    start (this module is loaded when the web application is made), not a page later."""
    for lang in LANGUAGES:
        translator(lang)


read_catalogues()


def done(path: str, what: str) -> web.HTTPSeeOther:
    """The redirect after a form's POST, to ``path``, whose page then says ``what`` (a
    name of ``DONE``) was done."""
    if what not in DONE:
        raise ValueError(f"{what!r} is not a name of DONE")
    return web.HTTPSeeOther(f"{path}?done={what}")


def in_language(request: web.Request, code: str) -> str:
    """This page's address in language ``code``: the rest of its query (where to go
    after signing in, a case...) kept, but what was just done (said once)."""
    kept = [(k, v) for k, v in request.query.items() if k not in ("lang", "done")]
    return "?" + urlencode([*kept, ("lang", code)])


def render(
    request: web.Request,
    name: str,
    *,
    status: int = 200,
    person_language: str | None = None,
    **context: object,
) -> web.Response:
    lang = choose_language(request, person_language)
    template = request.app.get(TEMPLATES, environment()).get_template(name)
    context.setdefault("session", None)
    context.setdefault("just_done", DONE.get(request.query.get("done", "")))
    context.setdefault("live", None)  # web/live.py: pages that follow changes
    words = texts(lang)
    zone = zone_of(request, context["session"])
    html = template.render(
        t=translator(lang),
        plural=words.plural,
        plural_forms=words.plural_forms,
        when=lambda ms: words.time(ms, zone),
        zone=zone.key,
        num=words.number,
        size=words.size,
        sizes=words.sizes,
        specialities=words.specialities,
        say=lambda error: say(error, lang),
        lang=lang,
        languages=LANGUAGES,
        in_language=lambda code: in_language(request, code),
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


def when(ms: int | None, lang: str, zone: zoneinfo.ZoneInfo | None = None) -> str:
    """A time as people of ``lang`` write it, in ``zone`` (``zone_of``), the zone said."""
    return texts(lang).time(ms, zone)


def zone_of(request: web.Request, session: object = None) -> zoneinfo.ZoneInfo:
    """The time zone a person reads times in: their own (the account page), else the
    node's (``[node] timezone``), else the system's."""
    chosen = session.timezone if isinstance(session, Session) else ""
    return zone_named(chosen, request.config_dict[CONFIG].timezone)


def say(error: str | NodeError, lang: str) -> str:
    """What a person reads of a refusal: a catalogue key's text; a NodeError's own
    catalogue text when it names one; else the node's reason, which is in English,
    after a lead-in in their language that says so."""
    _ = texts(lang)
    if isinstance(error, str):
        return _(error)
    if error.key is not None:
        return _(error.key, **error.values)
    return _("refused", detail=str(error))


def language_of(request: web.Request, session: Session) -> str:
    return choose_language(request, session.language)


async def person_of(request: web.Request, session: Session) -> Any:
    try:
        return await person_of_account(
            request.config_dict[STORE], request.config_dict[NODE_DIR].people, session.username
        )
    except NodeError as exc:
        language = choose_language(request, session.language)
        raise web.HTTPForbidden(text=say(exc, language)) from None


def names_of(request: web.Request) -> dict[str, str]:
    """Display names of the people in the directory, by their key in hex."""
    view = request.config_dict[CASES].view(request_now(request))
    return {key.hex(): m.body["display_name"] for key, m in view.members.items()}


def short_id(key: bytes) -> str:
    """The first characters of an id's text form: enough to tell two apart on a page."""
    return PublicIdentity(key).text[:9]


def _labelled(keys: Iterable[bytes], name_of: Callable[[bytes], str | None]) -> dict[bytes, str]:
    """Each key's name (its short id when it has none); names that still read the same
    get each their short id."""
    labels = {key: name_of(key) or short_id(key) for key in keys}
    counts = Counter(labels.values())
    return {k: f"{v} · {short_id(k)}" if counts[v] > 1 else v for k, v in labels.items()}


def person_labels(view: View, keys: Iterable[bytes]) -> dict[bytes, str]:
    """How each person is named in a list or a picker: their name · their node · their
    group (two Dr Diallo of two hospitals are two people); when two of ``keys`` still
    read the same, a short id of each too. Someone the directory does not know: the
    short id alone."""

    def name_of(key: bytes) -> str | None:
        member = view.members.get(key)
        if member is None:
            return None
        node = view.nodes.get(member.body["home_node"])
        group = view.group_records.get(member.body["group"])
        parts = (
            member.body["display_name"],
            node.body["name"] if node is not None else "",
            group.body["name"] if group is not None else "",
        )
        return " · ".join(p for p in parts if p)

    return _labelled(keys, name_of)


def group_labels(view: View, keys: Iterable[bytes], lang: str) -> dict[bytes, str]:
    """How each group is named in a list or a picker: its name and what it covers (in
    ``lang``); a short id too when two read the same."""
    words = texts(lang)

    def name_of(key: bytes) -> str | None:
        record = view.group_records.get(key)
        if record is None:
            return None
        covers = words.specialities(record.body["subspecialities"])
        return str(record.body["name"]) + (f" ({covers})" if covers else "")

    return _labelled(keys, name_of)


def http_error(request: web.Request, exc: CaseError) -> web.HTTPException:
    """A case refusal as an HTTP answer, its text in the person's language."""
    kinds: dict[int, type[web.HTTPException]] = {
        400: web.HTTPBadRequest,
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
    }
    return kinds.get(exc.status, web.HTTPConflict)(text=say(exc, choose_language(request)))


def refusal(
    request: web.Request, kind: type[web.HTTPException], key: str, person: str | None = None
) -> web.HTTPException:
    """An HTTP refusal whose text is the catalogue's ``key``, in the person's language
    (``person``: the signed-in person's own, when known)."""
    return kind(text=texts(choose_language(request, person))(key))


async def seen_case(request: web.Request, session: Session) -> tuple[bytes, bytes, CaseRow]:
    """(case id, person key, the case's row) of the case the URL names, if the signed-in
    person may see it (cases/policy.py decides). Otherwise 404 "no such case", the answer
    for a case that does not exist: whether it does is not told."""
    try:
        case_id = bytes.fromhex(request.match_info["id"])
    except ValueError:
        raise refusal(request, web.HTTPNotFound, N_("no_such_case"), session.language) from None
    account = await AccountStore(request.config_dict[STORE].db).account_by_id(session.account_id)
    if account is None or account.person_key is None:  # an account that is nobody (the admin's)
        raise refusal(request, web.HTTPNotFound, N_("no_such_case"), session.language)
    person = account.person_key
    try:
        row = await request.config_dict[CASES].seen(case_id, person, request_now(request))
    except CaseError as exc:
        raise http_error(request, exc) from None
    return case_id, person, row
