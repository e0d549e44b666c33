"""Resumable uploads from a sender's light client (`tsfnode send`), on the local API.

    POST  /api/v1/uploads            {"size": N}        -> 201 {"id", "offset": 0}
    GET   /api/v1/uploads/{id}                          -> {"id", "offset", "size"}
    PATCH /api/v1/uploads/{id}  Upload-Offset: k, bytes -> {"offset"} (409 if k is not it,
                                                           or while another PATCH writes)

When the last byte arrives the node takes the archive into its intake and de-identifies
everything in it, whatever the files say of themselves (the light client de-identified
them on the sender's computer already, with its own pseudonym map: doing it again here
is harmless, and the node's pseudonym map then names the light client's pseudonym). An
archive whose import failed for an unforeseen reason stays whole: a PATCH at its end
(empty body) asks for the import again. Every call needs a sender's bearer token
(`tsfnode account token`); the studies an upload brings are its sender's alone
(intake/owners.py). Refusals are in the caller's language (Accept-Language).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from tsfnode.appkeys import NODE_DIR
from tsfnode.auth.gate import PRINCIPAL
from tsfnode.auth.sessions import TokenHolder
from tsfnode.bodies import read_body
from tsfnode.i18n import choose_language
from tsfnode.intake.uploads import (
    MAX_REQUEST,
    UploadFolder,
    UploadRefused,
    parse_new_upload,
    report_json,
    take_in,
)
from tsfnode.logs import log
from tsfnode.routes import Routes

ROUTES = Routes()


async def sender_of(request: web.Request) -> tuple[int, str]:
    """(account id, username) of a sender's (or the node admin's) bearer token; the API's
    gate checked the token (``token_holder``)."""
    holder = request[PRINCIPAL]
    assert isinstance(holder, TokenHolder)  # noqa: S101 - the gate put it there
    if holder.role not in ("sender", "admin"):
        raise web.HTTPForbidden(
            text="403: uploads and studies are for senders / réservé aux émetteurs"
        )
    return holder.account_id, holder.username


def folder_of(request: web.Request) -> UploadFolder:
    return UploadFolder(request.config_dict[NODE_DIR].root / "uploads")


def refused(request: web.Request, exc: UploadRefused, **extra: object) -> web.Response:
    return web.json_response(
        {"error": exc.key, "message": exc.say(choose_language(request)), **extra},
        status=exc.status,
    )


@ROUTES.post("/v1/uploads")
async def create(request: web.Request) -> web.Response:
    account, _ = await sender_of(request)
    try:
        body = parse_new_upload(await read_body(request, MAX_REQUEST), with_name=False)
        upload_id = folder_of(request).create(body["size"], account)
    except UploadRefused as exc:
        return refused(request, exc)
    return web.json_response({"id": upload_id, "offset": 0}, status=201)


@ROUTES.get("/v1/uploads/{id}")
async def status(request: web.Request) -> web.Response:
    account, _ = await sender_of(request)
    part, _meta, info = folder_of(request).owned(request.match_info["id"], account)
    return web.json_response(
        {"id": request.match_info["id"], "offset": part.stat().st_size, "size": info["size"]}
    )


@ROUTES.patch("/v1/uploads/{id}")
async def append(request: web.Request) -> web.Response:
    account, username = await sender_of(request)
    uploads = folder_of(request)
    part, meta, info = uploads.owned(request.match_info["id"], account)
    try:
        with uploads.writing(part):
            offset = await uploads.append(request, part, info)
            if offset is None:
                return web.json_response(
                    {"offset": part.stat().st_size, "error": "offset mismatch"}, status=409
                )
            if offset < info["size"]:
                return web.json_response({"offset": offset})
            root = request.config_dict[NODE_DIR].root
            report = await asyncio.to_thread(take_in, root, part, account)
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
    except UploadRefused as exc:
        return refused(request, exc, offset=part.stat().st_size)
    log("upload received", account=username, files=len(report.taken))
    answer = report_json(report, choose_language(request))
    return web.json_response({"offset": offset, "done": True, **answer})


def add_routes(app: web.Application) -> None:
    app.router.add_routes(ROUTES)
