"""The local JSON API (``/api/``): this node's own people and tools.

Sign-in and roles arrive with the web application (issue 8); until then this API is
meant for the node's host (the default listening address is 127.0.0.1).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import asdict

import aiohttp
from aiohttp import web

from protocol.documents import split_documents
from protocol.errors import RemoteProtocolError
from tsfnode.api.cases import add_routes as add_case_routes
from tsfnode.api.studies import add_routes as add_study_routes
from tsfnode.api.transfers import add_routes as add_transfer_routes
from tsfnode.api.transfers import transfers, wake_outbox
from tsfnode.api.uploads import add_routes as add_upload_routes
from tsfnode.appkeys import DIRECTORY, NEAREST_BUSY, PEERING, STARTED_MS, STORE
from tsfnode.auth.gate import Gate
from tsfnode.auth.sessions import token_holder
from tsfnode.bodies import read_body
from tsfnode.clock import request_now
from tsfnode.info import node_info
from tsfnode.network.nearest import probe_bytes_of, rank, study_bytes_of
from tsfnode.routes import Routes

ROUTES = Routes()

MAX_RECORDS_UPLOAD = 4 * 1024 * 1024


@ROUTES.get("/v1/node")
async def node(request: web.Request) -> web.Response:
    info = node_info(request.config_dict)
    directory = request.config_dict[DIRECTORY]
    info["started_ms"] = request.config_dict[STARTED_MS]
    info["schema_version"] = await request.config_dict[STORE].schema_version()
    info["admitted"] = directory.view(request_now(request)).is_admitted(
        directory.identity.public.key
    )
    info["directory_records"] = len(directory.directory)
    info["directory_ignored"] = dict(directory.directory.ignored)
    return web.json_response(info)


@ROUTES.get("/v1/peers")
async def peers(request: web.Request) -> web.Response:
    peering = request.config_dict[PEERING]
    listed = peering.peers(request_now(request))
    counts = Counter(p["status"] for p in listed)
    stats = {**peering.stats, **{f"gossip_{k}": v for k, v in peering.gossip.stats.items()}}
    return web.json_response({"peers": listed, "counts": counts, "stats": stats})


@ROUTES.get("/v1/directory")
async def directory(request: web.Request) -> web.Response:
    q = request.query
    kind = q.get("kind") or None
    if kind not in (None, "node", "member", "group"):
        raise web.HTTPBadRequest(text="kind must be node, member or group")
    entries = request.config_dict[DIRECTORY].search(
        request_now(request),
        kind=kind,
        role=q.get("role") or None,
        subspeciality=q.get("subspeciality") or None,
        language=q.get("language") or None,
        country=q.get("country") or None,
    )
    return web.json_response([asdict(e) for e in entries])


@ROUTES.post("/v1/directory/records")
async def add_records(request: web.Request) -> web.Response:
    data = await read_body(request, MAX_RECORDS_UPLOAD)
    try:
        records = split_documents(data)
    except RemoteProtocolError as exc:
        raise web.HTTPBadRequest(text=f"not a records file: {exc}") from None
    outcome = await request.config_dict[DIRECTORY].add(records, request_now(request))
    peering = request.config_dict.get(PEERING)
    if peering is not None:
        await peering.directory.publish_self(
            peering.config, peering.addresses, request_now(request)
        )
    return web.json_response(outcome)


@ROUTES.get("/v1/nearest")
async def nearest(request: web.Request) -> web.Response:
    """The nodes of the directory ranked by measured time to send a study, for a person
    with an account (a token: a sender choosing a node, the operator); one measurement
    at a time on this node (429 while one runs), each probe streamed and bounded
    (`network/nearest.py`)."""
    try:
        size = study_bytes_of(request.query.get("size_mb", "15"))
        probe = probe_bytes_of(request.query.get("probe_kib", "256"))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    busy = request.app[NEAREST_BUSY]
    if busy.locked():
        raise web.HTTPTooManyRequests(text="a measurement is already running: try again later")
    async with busy:
        return await _nearest(request, size, probe)


async def _nearest(request: web.Request, size: int, probe: int) -> web.Response:
    directory_service = request.config_dict[DIRECTORY]
    me = directory_service.identity.public.key
    view = directory_service.view(request_now(request))
    urls = [
        r.body["addresses"][0] for n, r in view.nodes.items() if n != me and r.body["addresses"]
    ]
    async with aiohttp.ClientSession() as session:
        ranked = await rank(urls, size=size, probe_bytes=probe, session=session)
    return web.json_response([m.as_dict(size) for m in ranked])


def create_api_app() -> web.Application:
    """The local JSON API. Its gate: a person's bearer token for everything (nearest
    included: it makes the node measure others) but what a node says about itself
    (public) and the operator's views and tools (this machine only: the CLI and the
    node's admin)."""
    app = web.Application()
    app[NEAREST_BUSY] = asyncio.Lock()
    app.router.add_routes(ROUTES)
    add_upload_routes(app)
    add_study_routes(app)
    add_transfer_routes(app)
    add_case_routes(app)
    Gate.of(
        public=[node],
        local=[peers, directory, add_records, transfers, wake_outbox],
        authenticate=token_holder,
    ).install(app)
    return app
