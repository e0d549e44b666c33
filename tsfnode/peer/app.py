"""The peer API (``/peer/``): what other nodes may ask. Envelopes are verified by
peering.py; nothing here trusts a caller's claim."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tsfnode.appkeys import DIRECTORY, NODE_DIR, PEERING
from tsfnode.auth.gate import Gate
from tsfnode.bodies import read_body
from tsfnode.clock import request_now
from tsfnode.info import node_info
from tsfnode.network.nearest import MAX_SPEEDTEST_BYTES, filler
from tsfnode.network.peering import MAX_ENVELOPE, MAX_INTRODUCTION, PeerRefused
from tsfnode.peer.transfers import SIGNED_TRANSFER_ROUTES
from tsfnode.peer.transfers import add_peer_routes as add_transfer_routes


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


async def hello(request: web.Request) -> web.Response:
    return web.json_response(node_info(request.config_dict))


async def envelope(request: web.Request) -> web.Response:
    data = await read_body(request, MAX_ENVELOPE)
    try:
        reply = await request.config_dict[PEERING].handle_envelope(data)
    except PeerRefused as exc:
        return web.Response(status=exc.status, text=exc.reason)
    if reply is None:
        return web.Response(status=204)
    return web.Response(body=reply, content_type="application/octet-stream")


async def introduce(request: web.Request) -> web.Response:
    data = await read_body(request, MAX_INTRODUCTION)
    try:
        answer = await request.config_dict[PEERING].handle_introduction(data)
    except PeerRefused as exc:
        return web.Response(status=exc.status, text=exc.reason)
    return web.Response(body=answer, content_type="application/octet-stream")


async def speedtest_download(request: web.Request) -> web.Response:
    try:
        size = int(request.query.get("bytes", "262144"))
    except ValueError:
        raise web.HTTPBadRequest(text="bytes must be an integer") from None
    if not 0 <= size <= MAX_SPEEDTEST_BYTES:
        raise web.HTTPBadRequest(text=f"bytes must be between 0 and {MAX_SPEEDTEST_BYTES}")
    return web.Response(body=filler(size), content_type="application/octet-stream")


async def speedtest_upload(request: web.Request) -> web.Response:
    received = 0
    while chunk := await request.content.read(65536):
        received += len(chunk)
        if received > MAX_SPEEDTEST_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_SPEEDTEST_BYTES, actual_size=received)
    return web.json_response({"bytes": received})


async def nodes(request: web.Request) -> web.Response:
    """The admitted nodes and their addresses (public within the network): candidates
    for `tsfnode nearest --via`."""
    view = request.config_dict[DIRECTORY].view(request_now(request))
    listed = [
        {"name": r.body["name"], "country": r.body["country"], "addresses": r.body["addresses"]}
        for r in view.nodes.values()
    ]
    return web.json_response(sorted(listed, key=lambda n: n["name"]))


def create_peer_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/v1/hello", hello)
    app.router.add_post("/v1/envelope", envelope)
    app.router.add_post("/v1/introduce", introduce)
    app.router.add_get("/v1/speedtest", speedtest_download)
    app.router.add_post("/v1/speedtest", speedtest_upload)
    app.router.add_get("/v1/nodes", nodes)
    app.router.add_get("/v1/teaching/{id}", teaching_images)
    add_transfer_routes(app)
    Gate.of(
        public=[hello, speedtest_download, speedtest_upload, nodes, teaching_images],
        signed=[envelope, introduce, *SIGNED_TRANSFER_ROUTES],
    ).install(app)
    return app
