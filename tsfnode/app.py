"""The node's aiohttp application: ``create_app`` wires the sub-apps, one per trust
boundary, and opens resources through ``cleanup_ctx``.

    /healthz   liveness for operators and the demo
    /peer/     the peer API: other nodes (signed envelopes only)
    /api/      the local JSON API: this node's own people and tools
    /web/      the web application: pages for people (``/`` redirects here)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.helpers import ChainMapProxy

from protocol import PROTOCOL_VERSION
from protocol.identity import Identity
from tsfnode import __version__
from tsfnode.appkeys import BLOBS, CONFIG, IDENTITY, NODE_DIR, STARTED_MS, STORE
from tsfnode.blobs import BlobStore
from tsfnode.config import NodeConfig
from tsfnode.errors import NodeError
from tsfnode.nodedir import NodeDir
from tsfnode.store import Store
from tsfnode.web import create_web_app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = await Store.open(app[NODE_DIR].database)
    try:
        known = await store.get_meta("node_id")
        node_id = app[IDENTITY].public.text
        if known is None:
            await store.set_meta("node_id", node_id)
        elif known != node_id:
            raise NodeError(
                f"{app[NODE_DIR].key} does not belong to this node's database "
                f"(database of {known[:7]}, key of {node_id[:7]}): restore the right key"
            )
    except BaseException:
        await store.close()
        raise
    app[STORE] = store
    try:
        yield
    finally:
        await store.close()


def node_info(app: web.Application | ChainMapProxy) -> dict[str, object]:
    config = app[CONFIG]
    return {
        "id": app[IDENTITY].public.text,
        "name": config.name,
        "country": config.country,
        "network": config.network,
        "version": __version__,
        "protocol": PROTOCOL_VERSION,
    }


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "id": request.app[IDENTITY].public.text})


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/web/")


def create_peer_app() -> web.Application:
    app = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.json_response(node_info(request.config_dict))

    app.router.add_get("/v1/hello", hello)
    return app


def create_api_app() -> web.Application:
    app = web.Application()

    async def node(request: web.Request) -> web.Response:
        info = node_info(request.config_dict)
        info["started_ms"] = request.config_dict[STARTED_MS]
        info["schema_version"] = await request.config_dict[STORE].schema_version()
        return web.json_response(info)

    app.router.add_get("/v1/node", node)
    return app


def create_app(node_dir: NodeDir, config: NodeConfig, identity: Identity) -> web.Application:
    app = web.Application()
    app[NODE_DIR] = node_dir
    app[CONFIG] = config
    app[IDENTITY] = identity
    app[BLOBS] = BlobStore(node_dir.blobs)
    app[STARTED_MS] = int(time.time() * 1000)
    app.cleanup_ctx.append(_store_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", root)
    for prefix, sub in (
        ("/peer/", create_peer_app()),
        ("/api/", create_api_app()),
        ("/web/", create_web_app()),
    ):
        app.add_subapp(prefix, sub)
    return app
