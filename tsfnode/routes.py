"""Route tables for the node's sub-applications: aiohttp's ``RouteTableDef``, whose
decorators stand on each handler (``@ROUTES.get("/path")``) and give it back with its
own type, so that a handler also called directly (a page drawn again with an error)
keeps its signature for the type checker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[web.StreamResponse]])


class Routes(web.RouteTableDef):
    def get(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return super().get(path, **kwargs)  # type: ignore[return-value]

    def post(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return super().post(path, **kwargs)  # type: ignore[return-value]
