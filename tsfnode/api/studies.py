"""Studies in the intake and their review, on the local API (sender token needed).

GET  /api/v1/studies                    -> [{study_uid, series, instances, pending, ...}]
GET  /api/v1/studies/{uid}              -> {summary, flags: [{sop_uid, reasons, state}]}
POST /api/v1/studies/{uid}/review       {"confirm": [SOP...] | "all"}
                                        or {"image": SOP, "mask": [[x, y, w, h], ...]}

Only the studies the caller may use (intake/owners.py: their own uploads, and the node's
own inputs): any other answers 404, as a study that is not there.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tsfnode.api.uploads import sender_of
from tsfnode.appkeys import NODE_DIR
from tsfnode.bodies import read_json_object, rectangles
from tsfnode.clock import request_now
from tsfnode.errors import NodeError
from tsfnode.intake.owners import NoSuchStudy, StudyOwners
from tsfnode.intake.review import ReviewBook
from tsfnode.logs import log
from tsfnode.routes import Routes

ROUTES = Routes()


def _book(request: web.Request) -> ReviewBook:
    return ReviewBook(request.config_dict[NODE_DIR].intake)


def _owners(request: web.Request) -> StudyOwners:
    return StudyOwners(request.config_dict[NODE_DIR].intake)


async def own_study(request: web.Request, account: int, uid: str) -> str:
    """``uid`` if ``account`` may use the study (owners.py); NoSuchStudy otherwise."""
    return await asyncio.to_thread(_owners(request).require, uid, account)


@ROUTES.get("/v1/studies")
async def studies(request: web.Request) -> web.Response:
    account, _ = await sender_of(request)
    book, owners = _book(request), _owners(request)

    def listed() -> list[dict[str, Any]]:
        mine = owners.studies_of(book.studies(), account)
        return [book.summary(u).as_dict() for u in mine]

    return web.json_response(await asyncio.to_thread(listed))


def _study(book: ReviewBook, uid: str) -> dict[str, Any]:
    return {
        "summary": book.summary(uid).as_dict(),
        "flags": [f.as_dict() for f in book.flags(uid)],
    }


@ROUTES.get("/v1/studies/{uid}")
async def study(request: web.Request) -> web.Response:
    account, _ = await sender_of(request)
    try:
        uid = await own_study(request, account, request.match_info["uid"])
        found = await asyncio.to_thread(_study, _book(request), uid)
    except NodeError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    return web.json_response(found)


@ROUTES.post("/v1/studies/{uid}/review")
async def review(request: web.Request) -> web.Response:
    account, username = await sender_of(request)
    try:
        uid = await own_study(request, account, request.match_info["uid"])
    except NoSuchStudy as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    book = _book(request)
    body = await read_json_object(request)
    now = request_now(request)
    try:
        if "mask" in body:
            boxes = rectangles(body.get("mask"))
            image = body.get("image")
            if not isinstance(image, str):
                raise web.HTTPBadRequest(text="'image' (a SOP Instance UID) is needed to mask")
            await asyncio.to_thread(book.mask, uid, image, boxes, now_ms=now)
            log("review: regions masked", account=username, regions=len(boxes))
        elif "confirm" in body:
            targets = body["confirm"]
            if targets != "all" and not (
                isinstance(targets, list) and all(isinstance(t, str) for t in targets)
            ):
                raise web.HTTPBadRequest(text="'confirm' is \"all\" or a list of SOP UIDs")
            count = await asyncio.to_thread(
                book.confirm, uid, None if targets == "all" else targets, now_ms=now
            )
            log("review: images confirmed", account=username, images=count)
        else:
            raise web.HTTPBadRequest(text="say 'confirm' or 'mask'")
        return web.json_response(await asyncio.to_thread(_study, book, uid))
    except NodeError as exc:
        raise web.HTTPUnprocessableEntity(text=str(exc)) from None


def add_routes(app: web.Application) -> None:
    app.router.add_routes(ROUTES)
