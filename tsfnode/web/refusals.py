"""The pages a person meets when the browser is refused (403) or finds nothing (404): in
their language, with the navigation of every page and where to go next, instead of
aiohttp's bare "404: Not Found" or an English line on a French page.

Only navigations get a page (``Accept: text/html``, as browsers send for a page): the
uploader's and viewer's own calls, the JSON API, the peers' API and DICOMweb keep their
plain answers, which their callers read."""

from __future__ import annotations

from aiohttp import web

from tsfnode.appkeys import CONFIG
from tsfnode.auth.gate import Handler
from tsfnode.auth.sessions import home_of, session_of
from tsfnode.i18n import N_, choose_language, texts
from tsfnode.web.common import render

# Refusals raised with a fixed text where the page is not the place to translate it
# (the gate's and aiohttp's), and the catalogue key that says the same to a person.
KNOWN_TEXTS = {
    "403: this page is not for your role / pas pour votre rôle": N_("not_for_your_role"),
    "403: the form has expired; reload the page": N_("form_expired"),
    "404: Not Found": N_("page_not_found"),
    "404: not found": N_("page_not_found"),
}
TITLES = {403: N_("refused_title"), 404: N_("not_found_title")}
NOT_PAGES = ("/api/", "/peer/", "/dicomweb/", "/healthz", "/metrics")


def wants_page(request: web.Request) -> bool:
    """A browser asking for a page (not a script's call, not an API)."""
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and not request.path.startswith(NOT_PAGES)


@web.middleware
async def refusal_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status not in TITLES or not wants_page(request):
            raise
        return await refusal_page(request, exc)


async def refusal_page(request: web.Request, exc: web.HTTPException) -> web.Response:
    session = await session_of(request)
    lang = choose_language(request, session.language if session else None)
    key = KNOWN_TEXTS.get(exc.text or "")
    # A refusal raised with a catalogue text (web/common.refusal) is already the person's.
    message = texts(lang)(key) if key else (exc.text or texts(lang)(N_("page_not_found")))
    home = home_of(session.role) if session else None
    return render(
        request,
        "refusal.html",
        status=exc.status,
        person_language=session.language if session else None,
        config=request.config_dict[CONFIG],
        session=session,
        title_key=TITLES[exc.status],
        code=exc.status,
        message=message,
        home=home,
        next_path=request.path_qs if request.method == "GET" else "/web/",
    )
