"""`GET /api/v1/transfers`: every transfer of this node, as the CLI and admin page show it;
`POST /api/v1/transfers/outbox`: look at the outbox now (`tsfnode seal` queued a bundle
from another process)."""

from __future__ import annotations

from aiohttp import web

from tsfnode.appkeys import TRANSFERS


async def transfers(request: web.Request) -> web.Response:
    listed = await request.config_dict[TRANSFERS].progress()
    return web.json_response([p.as_dict() for p in listed])


async def wake_outbox(request: web.Request) -> web.Response:
    request.config_dict[TRANSFERS].wake()
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/transfers", transfers)
    app.router.add_post("/v1/transfers/outbox", wake_outbox)
