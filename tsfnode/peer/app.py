"""The peer API (``/peer/``): what other nodes may ask. Envelopes are verified by
peering.py; nothing here trusts a caller's claim."""

from __future__ import annotations

import asyncio

from aiohttp import web

from protocol.echo import decode_echo_request
from protocol.errors import ProtocolError
from tsfnode.appkeys import CONFIG, DIRECTORY, ECHO_LIMITS, IDENTITY, NODE_DIR, PEERING, SPEED_TESTS
from tsfnode.auth.gate import Gate
from tsfnode.bodies import read_body
from tsfnode.clock import request_now
from tsfnode.info import node_info
from tsfnode.logs import log
from tsfnode.network.echo import MAX_ECHO_REQUEST, EchoLimits, connect_back
from tsfnode.network.nearest import (
    MAX_SPEEDTEST_BYTES,
    SPEEDTEST_DEADLINE_S,
    SpeedTests,
    filler_blocks,
)
from tsfnode.network.peering import MAX_ENVELOPE, MAX_INTRODUCTION, PeerRefused
from tsfnode.peer.transfers import SIGNED_TRANSFER_ROUTES
from tsfnode.peer.transfers import add_peer_routes as add_transfer_routes
from tsfnode.routes import Routes

ROUTES = Routes()


@ROUTES.get("/v1/teaching/{id}")
async def teaching_images(request: web.Request) -> web.StreamResponse:
    """The images of a teaching case published here, as a zip (anonymised)."""
    name = request.match_info["id"]
    try:
        if len(bytes.fromhex(name)) != 16:
            raise ValueError
    except ValueError:
        raise web.HTTPNotFound(text="no such teaching case here") from None
    path = request.config_dict[NODE_DIR].root / "teaching" / f"{name}.zip"
    if not await asyncio.to_thread(path.is_file):
        raise web.HTTPNotFound(text="no such teaching case here")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="teaching-{name[:16]}.zip"',
        },
    )


@ROUTES.get("/v1/hello")
async def hello(request: web.Request) -> web.Response:
    return web.json_response(node_info(request.config_dict))


async def _exchange(request: web.Request, limit: int, handler: str) -> web.Response:
    """Read a signed body of at most ``limit`` bytes and hand it to the peering service's
    ``handler``: its answer (204 when it has none), or the refusal's status and reason."""
    data = await read_body(request, limit)
    try:
        reply = await getattr(request.config_dict[PEERING], handler)(data)
    except PeerRefused as exc:
        return web.Response(status=exc.status, text=exc.reason)
    if reply is None:
        return web.Response(status=204)
    return web.Response(body=reply, content_type="application/octet-stream")


@ROUTES.post("/v1/envelope")
async def envelope(request: web.Request) -> web.Response:
    return await _exchange(request, MAX_ENVELOPE, "handle_envelope")


@ROUTES.post("/v1/introduce")
async def introduce(request: web.Request) -> web.Response:
    return await _exchange(request, MAX_INTRODUCTION, "handle_introduction")


def _speed_test_slot(request: web.Request) -> str:
    """Take one of the speed tests the node serves at once for this caller (429 beyond:
    `SpeedTests`); the caller gives it back."""
    peer = request.remote or ""
    if not request.app[SPEED_TESTS].take(peer):
        raise web.HTTPTooManyRequests(
            text="too many speed tests at once: try again in a minute",
            headers={"Retry-After": "60"},
        )
    return peer


@ROUTES.get("/v1/speedtest")
async def speedtest_download(request: web.Request) -> web.StreamResponse:
    """``bytes`` of incompressible filler, streamed 64 KiB at a time: a caller that
    does not read holds one block of the node's memory, for at most the deadline."""
    try:
        size = int(request.query.get("bytes", "262144"))
    except ValueError:
        raise web.HTTPBadRequest(text="bytes must be an integer") from None
    if not 0 <= size <= MAX_SPEEDTEST_BYTES:
        raise web.HTTPBadRequest(text=f"bytes must be between 0 and {MAX_SPEEDTEST_BYTES}")
    peer = _speed_test_slot(request)
    try:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        try:
            async with asyncio.timeout(SPEEDTEST_DEADLINE_S):
                for block in filler_blocks(size):
                    await response.write(block)
        except TimeoutError:
            if request.transport is not None:
                request.transport.abort()  # past the deadline: the caller is not reading
            return response
        await response.write_eof()
        return response
    finally:
        request.app[SPEED_TESTS].give_back(peer)


@ROUTES.post("/v1/speedtest")
async def speedtest_upload(request: web.Request) -> web.Response:
    """Reads and counts what it is sent, 64 KiB at a time, within the deadline."""
    peer = _speed_test_slot(request)
    received = 0
    try:
        async with asyncio.timeout(SPEEDTEST_DEADLINE_S):
            while chunk := await request.content.read(65536):
                received += len(chunk)
                if received > MAX_SPEEDTEST_BYTES:
                    raise web.HTTPRequestEntityTooLarge(
                        max_size=MAX_SPEEDTEST_BYTES, actual_size=received
                    )
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=f"a speed test takes at most {SPEEDTEST_DEADLINE_S:.0f} s"
        ) from None
    finally:
        request.app[SPEED_TESTS].give_back(peer)
    return web.json_response({"bytes": received})


@ROUTES.get("/v1/nodes")
async def nodes(request: web.Request) -> web.Response:
    """The admitted nodes and their addresses (public within the network): candidates
    for `tsfnode nearest --via`."""
    view = request.config_dict[DIRECTORY].view(request_now(request))
    listed = [
        {"name": r.body["name"], "country": r.body["country"], "addresses": r.body["addresses"]}
        for r in view.nodes.values()
    ]
    return web.json_response(sorted(listed, key=lambda n: n["name"]))


@ROUTES.post("/v1/echo")
async def echo(request: web.Request) -> web.Response:
    """Connect back to the requesting node at one of the addresses its directory record
    publishes, and say what was seen (SPEC.md 7.3; tsfnode/network/echo.py). Signed by
    an admitted node, for an address it publishes, a few an hour: never a port scan."""
    data = await read_body(request, MAX_ECHO_REQUEST)
    now = request_now(request)
    try:
        asked = decode_echo_request(data, asked=request.config_dict[IDENTITY].public.key, now=now)
    except ProtocolError as exc:
        raise web.HTTPForbidden(text=f"echo refused: {exc}") from None
    record = request.config_dict[DIRECTORY].view(now).nodes.get(asked.node.key)
    if record is None or not request.config_dict[DIRECTORY].view(now).is_admitted(asked.node.key):
        raise web.HTTPForbidden(text="echo refused: not a node of this network")
    published = {str(a).rstrip("/") for a in record.body["addresses"]}
    if asked.address.rstrip("/") not in published:
        log("echo refused: address not published", node=asked.node.text[:15])
        raise web.HTTPForbidden(
            text="echo refused: a node is connected back to only at an address its "
            "directory record publishes"
        )
    limits = request.app[ECHO_LIMITS]
    if not limits.take(asked.node.key, now):
        raise web.HTTPTooManyRequests(
            text="too many echoes: try again in an hour", headers={"Retry-After": "3600"}
        )
    try:
        seen = await connect_back(
            asked.address, asked.node, request.config_dict[CONFIG].http_source_address
        )
    finally:
        limits.give_back()
    return web.json_response({"address": asked.address, "result": seen})


def create_peer_app() -> web.Application:
    app = web.Application()
    app[SPEED_TESTS] = SpeedTests()
    app[ECHO_LIMITS] = EchoLimits()
    app.router.add_routes(ROUTES)
    add_transfer_routes(app)
    Gate.of(
        public=[hello, speedtest_download, speedtest_upload, nodes, teaching_images],
        signed=[envelope, introduce, echo, *SIGNED_TRANSFER_ROUTES],
    ).install(app)
    return app
