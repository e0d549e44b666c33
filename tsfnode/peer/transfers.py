"""Transfers on the peer API (``/peer/v1/bundles``, ``/peer/v1/mail``) and on the local
API (``/api/v1/transfers``). The protocol is in SPEC.md section 7.

    POST /peer/v1/bundles                 manifest -> 200 chunk set (what is held here)
    GET  /peer/v1/bundles/{id}/have       -> 200 chunk set
    PUT  /peer/v1/bundles/{id}/chunks/{i} ciphertext -> 204 (checked, written)
    PUT  /peer/v1/bundles/{id}/chunks/{i}-{j}  chunks i..j one after the other -> 204
                                          (with ``Accept: application/vnd.tsf.receipt``:
                                          200 and the signed receipt, if this PUT
                                          completed the bundle and it opened)
    GET  /peer/v1/bundles/{id}/chunks/{i} -> 200 ciphertext (relays, senders), to a
                                          recipient or its relay (X-TSF-Fetch token)
    GET  /peer/v1/bundles/{id}/receipt    -> 200 the recipient's signed receipt, 404 not
                                          yet, 410 the bundle does not open (why)
    POST /peer/v1/bundles/{id}/receipt    receipt -> 204 (a relay drops its copy)
    POST /peer/v1/mail                    signed poll -> 200 manifests held for the caller
"""

from __future__ import annotations

import re

from aiohttp import web

from protocol.codec import pack
from protocol.transfer import CHUNK_FETCH_HEADER
from tsfnode.appkeys import TRANSFERS
from tsfnode.bodies import read_body
from tsfnode.clock import request_now
from tsfnode.logs import LOGGED_PER_BUNDLE
from tsfnode.routes import Routes
from tsfnode.transfers.outbox import RECEIPT_TYPE
from tsfnode.transfers.service import TransferRefused, TransferService

ROUTES = Routes()

MAX_MANIFEST = 40 * 1024 * 1024
MAX_RECEIPT = 4096
MAX_RUN = 64
RECV_SIZE = 1 << 20  # bytes asked of the socket at a time, on connections that carry chunks
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


@ROUTES.post("/v1/bundles")
async def offer(request: web.Request) -> web.Response:
    data = await read_body(request, MAX_MANIFEST)
    try:
        have = await _service(request).offer(data)
    except TransferRefused as exc:
        return _refused(exc)
    return web.Response(body=have, content_type="application/octet-stream")


@ROUTES.get("/v1/bundles/{id}/have")
async def have(request: web.Request) -> web.Response:
    held = await _service(request).have_of(_bundle_id(request))
    if held is None:
        raise web.HTTPNotFound(text="no such bundle here")
    return web.Response(body=held.to_bytes(), content_type="application/octet-stream")


@ROUTES.put("/v1/bundles/{id}/chunks/{index}")
async def put_chunks(request: web.Request) -> web.Response:
    """One chunk (``.../chunks/7``) or a run of consecutive ones (``.../chunks/7-22``),
    their bytes one after the other, written and hashed as they arrive; each is checked
    against the manifest. If the body stops short (a cut link), the chunks that arrived
    whole are kept: the sender learns it from its next offer. 409 if another request
    was writing some of them at the same time: the sender sends those again."""
    bundle_id = _bundle_id(request)
    first, last = _run(request)
    request[LOGGED_PER_BUNDLE] = True  # the service logs the bundle's progress instead
    _read_in_large_pieces(request)
    try:
        busy = await _service(request).receive_run(
            bundle_id, first, last, request.content.iter_any(), request.content_length
        )
    except TransferRefused as exc:
        return _refused(exc)
    if busy:
        return web.Response(
            status=409, text=f"chunk {busy[0]} was being received from another request"
        )
    if RECEIPT_TYPE in request.headers.get("Accept", ""):
        # The sender asks for the receipt on this answer: once the bundle is whole and
        # opened, it comes here, signed, instead of being asked for again and again.
        receipt = await _service(request).receipt_once_opened(bundle_id)
        if receipt is not None:
            return web.Response(body=receipt, content_type=RECEIPT_TYPE)
    return web.Response(status=204)


def _read_in_large_pieces(request: web.Request) -> None:
    """Let the connection take up to RECV_SIZE bytes from the socket at a time, not
    asyncio's 256 KiB: fewer, larger pieces, so fewer calls to hash and to write per
    chunk and fewer turns of the loop. The receiving node's CPU time for 512 MiB fell by
    a fifth (0.65 s to 0.52 s, median of 8, beside bench transfer_loopback_throughput),
    the receiver being what limits a loopback transfer. ``max_size`` is the attribute
    asyncio's socket transport reads; another transport (uvloop) has none and is left
    as it is."""
    transport = request.transport
    if transport is not None and getattr(transport, "max_size", RECV_SIZE) < RECV_SIZE:
        setattr(transport, "max_size", RECV_SIZE)  # noqa: B010 - not in Transport's type


def _run(request: web.Request) -> tuple[int, int]:
    text = request.match_info["index"]
    first, _, last = text.partition("-")
    try:
        a, b = int(first), int(last or first)
    except ValueError:
        raise web.HTTPNotFound(text="chunks are named N or N-M") from None
    if not 0 <= a <= b or b - a >= MAX_RUN:
        raise web.HTTPBadRequest(text=f"a run is 1 to {MAX_RUN} chunks, first to last")
    return a, b


@ROUTES.get("/v1/bundles/{id}/chunks/{index}")
async def get_chunk(request: web.Request) -> web.Response:
    """A chunk, to a recipient of its bundle or a relay of one (a signed token in the
    ``X-TSF-Fetch`` header, checked before anything is looked up); others are answered
    as for a bundle not held here."""
    fetch = request.headers.get(CHUNK_FETCH_HEADER)
    try:
        data = await _service(request).get_chunk(
            _bundle_id(request), _index(request), fetch, request_now(request)
        )
    except TransferRefused as exc:
        return _refused(exc)
    return web.Response(body=data, content_type="application/octet-stream")


@ROUTES.get("/v1/bundles/{id}/receipt")
async def get_receipt(request: web.Request) -> web.Response:
    service = _service(request)
    bundle_id = _bundle_id(request)
    receipt = await service.receipt_of(bundle_id)
    if receipt is None:
        failure = await service.failure_of(bundle_id)
        if failure:
            raise web.HTTPGone(text=failure)
        raise web.HTTPNotFound(text="no receipt yet")
    return web.Response(body=receipt, content_type="application/octet-stream")


@ROUTES.post("/v1/bundles/{id}/receipt")
async def post_receipt(request: web.Request) -> web.Response:
    data = await read_body(request, MAX_RECEIPT)
    try:
        await _service(request).take_receipt(_bundle_id(request), data)
    except TransferRefused as exc:
        return _refused(exc)
    return web.Response(status=204)


@ROUTES.post("/v1/mail")
async def mail(request: web.Request) -> web.Response:
    data = await read_body(request, 256)
    try:
        manifests = await _service(request).mail_poll(data, request_now(request))
    except TransferRefused as exc:
        return _refused(exc)
    return web.Response(body=pack(manifests), content_type="application/octet-stream")


# Each of these checks what it is given against a signature before it parses it: the
# offer's manifest (signed by the sender node), each chunk against the manifest's hashes,
# the receipt (signed by the recipient), the mail poll (signed by the polling node), the
# chunk fetch (signed by the fetching node, a recipient of the bundle or its relay).
SIGNED_TRANSFER_ROUTES = (offer, have, put_chunks, get_chunk, get_receipt, post_receipt, mail)


def add_peer_routes(app: web.Application) -> None:
    app.router.add_routes(ROUTES)
