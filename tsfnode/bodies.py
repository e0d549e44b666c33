"""Reading a request body whole, up to a limit (``StreamReader.read(n)`` returns what
has arrived so far, not ``n`` bytes: a body read once may be cut short)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body; 413 as soon as it is known to exceed ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    data = bytearray()
    while piece := await request.content.read(min(1 << 20, limit + 1 - len(data))):
        data += piece
        if len(data) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
    return bytes(data)


async def read_json_object(request: web.Request, limit: int = 256 * 1024) -> dict[str, Any]:
    """A JSON object body (400 naming what is wrong; 413 beyond ``limit`` bytes)."""
    data = await read_body(request, limit)
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="the body must be JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return body


def rectangles(value: object) -> list[tuple[int, int, int, int]]:
    out: list[tuple[int, int, int, int]] = []
    for r in value if isinstance(value, list) else [None]:
        if not (isinstance(r, list) and len(r) == 4 and all(type(v) is int for v in r)):
            raise web.HTTPBadRequest(text="'mask' is a list of [x, y, width, height] in pixels")
        out.append((r[0], r[1], r[2], r[3]))
    if not out:
        raise web.HTTPBadRequest(text="'mask' is a list of [x, y, width, height] in pixels")
    return out
