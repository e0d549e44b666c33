"""Pages that follow what happens without a reload: the worklist, a case page, the
coordinator's page.

    GET /web/live      {"v": VERSION}, ETag "VERSION"; 304 when If-None-Match names it

VERSION is a digest of what the signed-in person may see change: each case they may see
(its state, its last change, its documents) and, for a coordinator, the applications
waiting. ``static/live.js`` asks every ``POLL_S`` seconds while the tab is shown (not
while it is hidden); an unchanged answer is a 304 of about 200 bytes, which a 1 Mbit/s
line shared by a hospital does not feel. When it changes, the script fetches the page
again and puts its new content in place, unless the person is typing in it. Without
JavaScript the pages are the same, reloaded by hand. Nothing of a case is in the answer.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from tsfnode.appkeys import CASES, STORE
from tsfnode.auth.sessions import Session, require
from tsfnode.clock import request_now
from tsfnode.routes import Routes
from tsfnode.store.accounts import AccountStore
from tsfnode.web.common import person_of

ROUTES = Routes()

POLL_S = 15  # static/live.js's interval (data-poll of base.html)
PEOPLE = ("sender", "reader", "coordinator")


async def version_of(request: web.Request, session: Session) -> str:
    """The digest of what the signed-in person may see change (the module says what)."""
    person = await person_of(request, session)
    service = request.config_dict[CASES]
    marks = await service.rows.document_marks()
    digest = hashlib.blake2b(digest_size=12)
    visible = await service.visible(person.public.key, request_now(request))
    for row in sorted(visible, key=lambda r: r.case_id):
        count, last = marks.get(row.case_id, (0, 0))
        state = row.case.state.value.encode()
        line = (row.case_id.hex().encode(), state, row.updated_ms, count, last)
        digest.update(b"%s %s %d %d %d\n" % line)
    if session.role == "coordinator":
        accounts = AccountStore(request.config_dict[STORE].db)
        for application in await accounts.pending_applications():
            digest.update(b"application %d\n" % application.id)
    return digest.hexdigest()


async def followed(request: web.Request, session: Session) -> dict[str, object]:
    """What a page that follows changes gives base.html: the interval and the version
    it was drawn at (a change after it, even before the first question, is seen)."""
    return {"live": {"poll": POLL_S, "v": await version_of(request, session)}}


@ROUTES.get("/live")
async def live(request: web.Request) -> web.Response:
    session = await require(request, *PEOPLE)
    version = await version_of(request, session)
    etag = f'"{version}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache, private"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.json_response({"v": version}, headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_routes(ROUTES)
