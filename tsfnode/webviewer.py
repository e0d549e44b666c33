"""The viewer in the web application, for the cases a person may see.

    GET /web/cases/{id}/viewer                      the page (static/viewer.js)
    GET /web/cases/{id}/series                      series, frames, presets, markers
    GET /web/cases/{id}/frames/{s}/{f}.jpg?c=&w=&invert=&size=&q=
                                                    frame f of series s, windowed, JPEG
    GET /web/cases/{id}/frames/{s}/{f}/attributes   the frame's (anonymised) attributes

The images are the case's own: on a reader's node the bundles received for it, on the
sender's node the de-identified study in the intake. Rendering runs in worker threads
(`viewer.Renderer`), one frame decoded once; the page asks for a small image first and
the full one after, at the window it shows, and prefetches ahead of the scrolling.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sized
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from aiohttp import web
from aiohttp.helpers import ChainMapProxy

from tsfnode.appkeys import CASES, NODE_DIR, RENDERER, STORE
from tsfnode.casework import case_from_row, roles_for
from tsfnode.peering import now_ms
from tsfnode.viewer import (
    FULL,
    PRESETS,
    Window,
    attributes,
    default_window,
    frame_count,
    is_lossy,
    orientation_markers,
    read_header,
    slice_position,
    spacing,
)
from tsfnode.websession import require

SERIES_TTL_S = 60.0
V = TypeVar("V", bound=Sized)
WARM_AT_MOST = 10
PEOPLE = ("sender", "reader", "coordinator")


async def _may_see(request: web.Request) -> tuple[bytes, bytes]:
    """The case id of the URL and the person's key, if the signed-in person may see the
    case (404 if not)."""
    session = await require(request, *PEOPLE)
    try:
        case_id = bytes.fromhex(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="no such case") from None
    cursor = await request.config_dict[STORE].db.execute(
        "SELECT person_key FROM accounts WHERE id = ?", (session.account_id,)
    )
    found = await cursor.fetchone()
    row = await request.config_dict[CASES].row(case_id)
    if found is None or found[0] is None or row is None:
        raise web.HTTPNotFound(text="no such case")
    view = request.config_dict[CASES].view(now_ms())
    if not roles_for(case_from_row(row), bytes(found[0]), view):
        raise web.HTTPNotFound(text="no such case")
    return case_id, bytes(found[0])


async def image_folders(app: ChainMapProxy, case_id: bytes) -> list[Path]:
    service = app[CASES]
    row = await service.row(case_id)
    root = app[NODE_DIR].root
    if row["role"] == "sender":
        return [app[NODE_DIR].intake / str(row["study_uid"])]
    return [root / "received" / b.hex() for b in await service.bundles(case_id, "images")]


def _stamp(folders: list[Path]) -> list[float]:
    """What changes when the images change: every folder's last modification."""
    return [
        max((d.stat().st_mtime for d in (f, *f.rglob("*")) if d.is_dir()), default=0.0)
        if f.exists()
        else 0.0
        for f in folders
    ]


def listed_series(folders: list[Path], kept: Path) -> list[dict[str, Any]]:
    """``list_series``, kept in ``kept`` (JSON) until the folders change."""
    return kept_listing(folders, kept, list_series)


def kept_listing(
    folders: list[Path], kept: Path, make: Callable[[list[Path]], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """``make(folders)``, kept in ``kept`` (JSON) until the folders change: reading the
    headers of a 500-slice CT takes half a second, the file a millisecond."""
    stamp = _stamp(folders)
    try:
        held = json.loads(kept.read_text())
        if held["stamp"] == stamp and held["folders"] == [str(f) for f in folders]:
            return held["series"]  # type: ignore[no-any-return]
    except (FileNotFoundError, ValueError, KeyError):
        pass
    series = make(folders)
    kept.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = kept.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"stamp": stamp, "folders": [str(f) for f in folders], "series": series})
    )
    tmp.replace(kept)
    return series


def list_series(folders: list[Path]) -> list[dict[str, Any]]:
    """The series of the images in ``folders``: their frames in anatomical order (along
    the slice normal, else by instance number), presets, and what the overlay shows."""
    by_series: dict[str, list[tuple[Path, Any]]] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*.dcm")) if folder.exists() else []:
            try:
                ds = read_header(path)
            except Exception:  # noqa: S112 - not an image: not shown
                continue
            if "Rows" not in ds:
                continue
            by_series.setdefault(str(ds.get("SeriesInstanceUID", path.parent.name)), []).append(
                (path, ds)
            )
    out = []
    for uid, files in sorted(by_series.items(), key=lambda s: _int(s[1][0][1], "SeriesNumber")):
        files.sort(key=lambda f: (_order(f[1]), _int(f[1], "InstanceNumber"), f[0].name))
        first = files[0][1]
        frames = [
            {"file": str(path), "index": i, "position": slice_position(ds)}
            for path, ds in files
            for i in range(frame_count(ds))
        ]
        window = default_window(first)
        modality = str(first.get("Modality", ""))
        presets = {}
        if window is not None:
            presets["image"] = [window.centre, window.width]
        if modality == "CT":
            presets.update({k: list(v) for k, v in PRESETS.items()})
        out.append(
            {
                "uid": uid,
                "description": str(first.get("SeriesDescription", "")),
                "modality": modality,
                "rows": int(first.Rows),
                "columns": int(first.Columns),
                "frames": frames,
                "presets": presets,
                "markers": orientation_markers(first),
                "spacing": spacing(first),
                "lossy": any(is_lossy(ds) for _, ds in files),
                "photometric": str(first.get("PhotometricInterpretation", "")),
                "colour": int(first.get("SamplesPerPixel", 1)) > 1
                or str(first.get("PhotometricInterpretation", "")) == "PALETTE COLOR",
            }
        )
    return out


def _int(ds: Any, keyword: str) -> int:
    try:
        return int(ds.get(keyword) or 0)
    except (TypeError, ValueError):
        return 0


def _order(ds: Any) -> float:
    position = slice_position(ds)
    return position if position is not None else 0.0


class Listings(Generic[V]):
    """Listings of cases made in the background: one at a time per case (others wait for
    it), kept ``ttl_s``; an empty one is not kept (images still arriving: look again)."""

    def __init__(self, ttl_s: float = SERIES_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._held: dict[bytes, tuple[float, asyncio.Future[V]]] = {}

    def __contains__(self, case_id: bytes) -> bool:
        return case_id in self._held

    async def get(self, case_id: bytes, make: Callable[[], Awaitable[V]]) -> V:
        found = self._held.get(case_id)
        if found is None or (found[1].done() and time.monotonic() - found[0] > self.ttl_s):
            found = self._held[case_id] = (time.monotonic(), asyncio.ensure_future(make()))
        listing = await asyncio.shield(found[1])
        if not listing and self._held.get(case_id) is found:
            del self._held[case_id]
        return listing


SERIES = web.AppKey("viewer_series", Listings[list[dict[str, Any]]])


async def series_of(app: ChainMapProxy, case_id: bytes) -> list[dict[str, Any]]:
    """The case's series."""

    async def make() -> list[dict[str, Any]]:
        folders = await image_folders(app, case_id)
        kept = app[NODE_DIR].root / "viewer" / f"{case_id.hex()}.json"
        return await asyncio.to_thread(listed_series, folders, kept)

    return await app[SERIES].get(case_id, make)


def warm(app: ChainMapProxy, case_ids: list[bytes]) -> None:
    """List these cases' series in the background (the worklist and the case page call
    this, so that the viewer opens at once)."""
    for case_id in case_ids[:WARM_AT_MOST]:
        if case_id not in app[SERIES]:
            task = asyncio.ensure_future(series_of(app, case_id))
            task.add_done_callback(lambda t: t.exception())  # a failure shows in the viewer


async def _series(request: web.Request, case_id: bytes) -> list[dict[str, Any]]:
    return await series_of(request.config_dict, case_id)


def _public(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the page gets: no paths of this node's disk."""
    return [{**s, "frames": [{"position": f["position"]} for f in s["frames"]]} for s in series]


async def page(request: web.Request) -> web.Response:
    from tsfnode.webcases import _render

    session = await require(request, *PEOPLE)
    case_id, person = await _may_see(request)
    warm(request.config_dict, [case_id])  # listed while the page and its script travel
    await request.config_dict[CASES].audit.append(
        actor=person, case_id=case_id, action="view images", detail="", now=now_ms()
    )
    return _render(request, "viewer.html", session=session, case_id=case_id.hex())


async def series(request: web.Request) -> web.Response:
    case_id, _ = await _may_see(request)
    return web.json_response(_public(await _series(request, case_id)))


def _frame(request: web.Request, listed: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        return listed[int(request.match_info["s"])]["frames"][int(request.match_info["f"])]  # type: ignore[no-any-return]
    except (IndexError, ValueError):
        raise web.HTTPNotFound(text="no such frame") from None


def _number(request: web.Request, name: str, low: float, high: float) -> float | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: a number") from None
    if not (low <= number <= high) or np.isnan(number):
        raise web.HTTPBadRequest(text=f"{name}: between {low} and {high}")
    return number


async def frame(request: web.Request) -> web.Response:
    case_id, _ = await _may_see(request)
    found = _frame(request, await _series(request, case_id))
    centre = _number(request, "c", -1e7, 1e7)
    width = _number(request, "w", 1, 1e7)
    size = int(_number(request, "size", 16, FULL) or FULL)
    quality = int(_number(request, "q", 20, 95) or 85)
    window = Window(centre, width) if centre is not None and width is not None else None
    renderer = request.config_dict[RENDERER]
    body, used = await asyncio.to_thread(
        renderer.render_with_window,
        Path(found["file"]),
        found["index"],
        window=window,
        invert=request.query.get("invert") == "1",
        max_size=size,
        quality=quality,
    )
    headers = {"Cache-Control": "private, max-age=3600"}
    if used is not None:  # the window of these pixels: the page re-maps them while dragging
        headers["X-Window"] = f"{used.centre:.3f},{used.width:.3f}"
    return web.Response(body=body, content_type="image/jpeg", headers=headers)


async def frame_attributes(request: web.Request) -> web.Response:
    case_id, _ = await _may_see(request)
    found = _frame(request, await _series(request, case_id))
    ds = request.config_dict[RENDERER].header(Path(found["file"]))
    return web.json_response(
        {
            "attributes": attributes(ds),
            "position": found["position"],
            "instance": _int(ds, "InstanceNumber"),
        }
    )


def add_routes(app: web.Application) -> None:
    app[SERIES] = Listings()
    app.router.add_get("/cases/{id:[0-9a-f]{32}}/viewer", page)
    app.router.add_get("/cases/{id:[0-9a-f]{32}}/series", series)
    app.router.add_get("/cases/{id:[0-9a-f]{32}}/frames/{s:[0-9]+}/{f:[0-9]+}.jpg", frame)
    app.router.add_get(
        "/cases/{id:[0-9a-f]{32}}/frames/{s:[0-9]+}/{f:[0-9]+}/attributes", frame_attributes
    )
