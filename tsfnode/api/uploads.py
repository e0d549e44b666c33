"""Resumable uploads from a sender's light client (`tsfnode send`), on the local API.

    POST  /api/v1/uploads            {"size": N}        -> 201 {"id", "offset": 0}
    GET   /api/v1/uploads/{id}                          -> {"id", "offset", "size"}
    PATCH /api/v1/uploads/{id}  Upload-Offset: k, bytes -> {"offset"} (409 if k is not it)

When the last byte arrives the node takes the archive into its intake. What arrives was
de-identified on the sender's computer (same code, the pseudonym map stays there); the
node checks it says so, and de-identifies anything that does not. Every call needs a
sender's bearer token (`tsfnode account token`); the studies an upload brings are its
sender's alone (intake/owners.py).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from tsfnode.appkeys import NODE_DIR
from tsfnode.auth.gate import PRINCIPAL
from tsfnode.auth.sessions import TokenHolder
from tsfnode.intake.uploads import UploadFolder, take_in
from tsfnode.logs import log


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


async def create(request: web.Request) -> web.Response:
    account, _ = await sender_of(request)
    try:
        body = await request.json()
        size = int(body["size"])
    except (ValueError, KeyError, TypeError):
        raise web.HTTPBadRequest(text='send {"size": <bytes>}') from None
    upload_id = folder_of(request).create(size, account)
    return web.json_response({"id": upload_id, "offset": 0}, status=201)


async def status(request: web.Request) -> web.Response:
    account, _ = await sender_of(request)
    part, _meta, info = folder_of(request).owned(request.match_info["id"], account)
    return web.json_response(
        {"id": request.match_info["id"], "offset": part.stat().st_size, "size": info["size"]}
    )


async def append(request: web.Request) -> web.Response:
    account, username = await sender_of(request)
    uploads = folder_of(request)
    part, meta, info = uploads.owned(request.match_info["id"], account)
    offset = await uploads.append(request, part, info)
    if offset is None:
        return web.json_response(
            {"offset": part.stat().st_size, "error": "offset mismatch"}, status=409
        )
    if offset < info["size"]:
        return web.json_response({"offset": offset})
    report = await asyncio.to_thread(take_in, request.config_dict[NODE_DIR].root, part, account)
    part.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)
    log("upload received", account=username, files=report["count"])
    return web.json_response({"offset": offset, "done": True, **report})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/uploads", create)
    app.router.add_get("/v1/uploads/{id}", status)
    app.router.add_patch("/v1/uploads/{id}", append)
