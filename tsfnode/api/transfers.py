"""`GET /api/v1/transfers`: every transfer of this node, as the CLI and admin page show it."""

from __future__ import annotations

from aiohttp import web

from tsfnode.appkeys import TRANSFERS


async def transfers(request: web.Request) -> web.Response:
    listed = await request.config_dict[TRANSFERS].progress()
    return web.json_response([p.as_dict() for p in listed])


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/transfers", transfers)
