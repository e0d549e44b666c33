"""Transfers on the peer API (``/peer/v1/bundles``, ``/peer/v1/mail``) and on the local
API (``/api/v1/transfers``). The protocol is in SPEC.md section 7.

    POST /peer/v1/bundles                 manifest -> 200 chunk set (what is held here)
    GET  /peer/v1/bundles/{id}/have       -> 200 chunk set
    PUT  /peer/v1/bundles/{id}/chunks/{i} ciphertext -> 204 (checked, written, synced)
    GET  /peer/v1/bundles/{id}/chunks/{i} -> 200 ciphertext (relays, senders)
    GET  /peer/v1/bundles/{id}/receipt    -> 200 the recipient's signed receipt, or 404
    POST /peer/v1/bundles/{id}/receipt    receipt -> 204 (a relay drops its copy)
    POST /peer/v1/mail                    signed poll -> 200 manifests held for the caller
"""

from __future__ import annotations

import re

from aiohttp import web

from protocol.codec import pack
from protocol.documents import MAX_CHUNK_SIZE
from protocol.errors import ProtocolError
from protocol.transfer import decode_mail_poll
from tsfnode.appkeys import TRANSFERS
from tsfnode.bodies import read_body
from tsfnode.transfers import TransferRefused, TransferService, now_ms

MAX_MANIFEST = 40 * 1024 * 1024
MAX_RECEIPT = 4096
_BUNDLE = re.compile(r"^[0-9a-f]{32}$")


def _service(request: web.Request) -> TransferService:
    return request.config_dict[TRANSFERS]


def _bundle_id(request: web.Request) -> bytes:
    text = request.match_info["id"]
    if not _BUNDLE.match(text):
        raise web.HTTPNotFound(text="a bundle id is 32 hexadecimal digits")
    return bytes.fromhex(text)


def _index(request: web.Request) -> int:
    try:
        return int(request.match_info["index"])
    except ValueError:
        raise web.HTTPNotFound(text="a chunk index is a number") from None


def _refused(exc: TransferRefused) -> web.Response:
    return web.Response(status=exc.status, text=exc.reason)


async def offer(request: web.Request) -> web.Response:
    data = await read_body(request, MAX_MANIFEST)
    try:
        have = await _service(request).offer(data)
    except TransferRefused as exc:
        return _refused(exc)
    return web.Response(body=have, content_type="application/octet-stream")


async def have(request: web.Request) -> web.Response:
    held = await _service(request).have_of(_bundle_id(request))
    if held is None:
        raise web.HTTPNotFound(text="no such bundle here")
    return web.Response(body=held.to_bytes(), content_type="application/octet-stream")


async def put_chunk(request: web.Request) -> web.Response:
    bundle_id, index = _bundle_id(request), _index(request)
    data = await read_body(request, MAX_CHUNK_SIZE + 16)
    try:
        await _service(request).put_chunk(bundle_id, index, data)
    except TransferRefused as exc:
        return _refused(exc)
    return web.Response(status=204)


async def get_chunk(request: web.Request) -> web.Response:
    try:
        data = await _service(request).get_chunk(_bundle_id(request), _index(request))
    except TransferRefused as exc:
        return _refused(exc)
    return web.Response(body=data, content_type="application/octet-stream")


async def get_receipt(request: web.Request) -> web.Response:
    receipt = await _service(request).receipt_of(_bundle_id(request))
    if receipt is None:
        raise web.HTTPNotFound(text="no receipt yet")
    return web.Response(body=receipt, content_type="application/octet-stream")


async def post_receipt(request: web.Request) -> web.Response:
    data = await read_body(request, MAX_RECEIPT)
    try:
        await _service(request).take_receipt(_bundle_id(request), data)
    except TransferRefused as exc:
        return _refused(exc)
    return web.Response(status=204)


async def mail(request: web.Request) -> web.Response:
    data = await read_body(request, 256)
    try:
        node = decode_mail_poll(data, now_ms())
    except ProtocolError as exc:
        raise web.HTTPForbidden(text=f"mail poll refused: {exc}") from None
    manifests = await _service(request).mail_for(node.key)
    return web.Response(body=pack(manifests), content_type="application/octet-stream")


def add_peer_routes(app: web.Application) -> None:
    app.router.add_post("/v1/bundles", offer)
    app.router.add_get("/v1/bundles/{id}/have", have)
    app.router.add_put("/v1/bundles/{id}/chunks/{index}", put_chunk)
    app.router.add_get("/v1/bundles/{id}/chunks/{index}", get_chunk)
    app.router.add_get("/v1/bundles/{id}/receipt", get_receipt)
    app.router.add_post("/v1/bundles/{id}/receipt", post_receipt)
    app.router.add_post("/v1/mail", mail)


async def transfers(request: web.Request) -> web.Response:
    listed = await _service(request).progress()
    return web.json_response([p.as_dict() for p in listed])


def add_local_routes(app: web.Application) -> None:
    app.router.add_get("/v1/transfers", transfers)
