"""The viewer in the web application, for the cases a person may see.

    GET /web/cases/{id}/viewer                      the page (static/viewer.js)
    GET /web/cases/{id}/series                      series, frames, presets, markers
    GET /web/cases/{id}/frames/{s}/{f}.jpg?c=&w=&invert=&size=&q=
                                                    frame f of series s, windowed, JPEG
    GET /web/cases/{id}/frames/{s}/{f}/attributes   the frame's (anonymised) attributes
    GET /web/cases/{id}/series/{s}/mpr              series s as a volume: its planes
                                                    (422 and why, when it is not one)
    GET /web/cases/{id}/series/{s}/mpr/{plane}/{i}.png?window=&c=&w=&invert=&size=
                                                    plane i (axial, coronal, sagittal)
                                                    reformatted on the node (images/mpr.py)

The images are the case's own: on a reader's node the bundles received for it, on the
sender's node the de-identified study in the intake. Rendering runs in worker threads
(`viewer.Renderer`), one frame decoded once; the page asks for a small image first and
the full one after, at the window it shows, and prefetches ahead of the scrolling.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from aiohttp.helpers import ChainMapProxy

from tsfnode.appkeys import CASES, CONFIG, NODE_DIR, RENDERER
from tsfnode.auth.sessions import Session, require
from tsfnode.cases.images import Listings, image_folders, int_of, listed_series
from tsfnode.cases.service import reader_image_json
from tsfnode.clock import request_now
from tsfnode.errors import NodeError
from tsfnode.i18n import texts
from tsfnode.images.mpr import PLANES, Geometry, NotAVolume, TooLarge, Volumes, window_of
from tsfnode.images.mpr import render_plane as render_mpr_plane
from tsfnode.images.render import (
    FULL,
    Window,
    attributes,
)
from tsfnode.routes import Routes
from tsfnode.web.caseform import shown_form
from tsfnode.web.common import language_of, render_page, say, seen_case
from tsfnode.web.reporting import may_report, report_form

ROUTES = Routes()

WARM_AT_MOST = 10
PEOPLE = ("sender", "reader", "coordinator")


async def _may_see(request: web.Request) -> tuple[bytes, bytes]:
    """The case id of the URL and the person's key, if the signed-in person may see the
    case (404 if not, as for no such case)."""
    session = await require(request, *PEOPLE)
    case_id, person, _ = await seen_case(request, session)
    return case_id, person


SERIES = web.AppKey("viewer_series", Listings[list[dict[str, Any]]])


async def series_of(app: ChainMapProxy, case_id: bytes) -> list[dict[str, Any]]:
    """The case's series, of every study it holds: a listing is kept per number of
    image folders, so a study added to the case is listed at once, not a TTL later."""
    folders = await image_folders(app[CASES], case_id)
    kept = app[NODE_DIR].root / "viewer" / f"{case_id.hex()}.json"

    async def make() -> list[dict[str, Any]]:
        return await asyncio.to_thread(listed_series, folders, kept)

    return await app[SERIES].get(case_id + len(folders).to_bytes(4, "big"), make)


def warm(app: ChainMapProxy, case_ids: list[bytes]) -> None:
    """List these cases' series in the background (the worklist and the case page call
    this, so that the viewer opens at once; a listing held is not made again)."""
    for case_id in case_ids[:WARM_AT_MOST]:
        task = asyncio.ensure_future(series_of(app, case_id))
        task.add_done_callback(lambda t: t.exception())  # a failure shows in the viewer


async def _series(request: web.Request, case_id: bytes) -> list[dict[str, Any]]:
    return await series_of(request.config_dict, case_id)


def _public(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the page gets: no paths of this node's disk."""
    return [{**s, "frames": [{"position": f["position"]} for f in s["frames"]]} for s in series]


@ROUTES.get("/cases/{id:[0-9a-f]{32}}/viewer")  # as it is, or drawn again with a draft
async def page(
    request: web.Request,
    *,
    error: NodeError | None = None,
    status: int = 200,
    draft: dict[str, str] | None = None,
) -> web.Response:
    """The viewer, with the case's clinical form beside the images and, for the reader
    who has the case, the report form (the case page's: preview, then sign)."""
    session = await require(request, *PEOPLE)
    case_id, person, row = await seen_case(request, session)
    warm(request.config_dict, [case_id])  # listed while the page and its script travel
    service = request.config_dict[CASES]
    if draft is None:  # the page opened, not drawn again after a preview
        await service.audit.append(
            actor=person, case_id=case_id, action="view images", detail="", now=request_now(request)
        )
    clinical = shown_form(row.form, language_of(request, session))
    reader = row.case.reader.hex() if row.case.reader else None
    reporting = may_report(row.role, reader, person.hex(), row.case.state.value)
    signed = await service.documents(case_id, "report") if reporting else []
    return render_page(
        request,
        "viewer.html",
        session=session,
        case_id=case_id.hex(),
        case={"case_id": case_id.hex(), "form": row.form},
        clinical=clinical,
        can={"report": reporting},
        kept_as=row.role,
        reader_images=[reader_image_json(i) for i in await service.reader_images.of_case(case_id)],
        reports=[d for d in signed if not d.body.get("supersedes")],
        error=error,
        status=status,
        **report_form(row.form, draft=draft, failed=error is not None, page="viewer"),
    )


@ROUTES.get("/cases/{id:[0-9a-f]{32}}/series")
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


@ROUTES.get("/cases/{id:[0-9a-f]{32}}/frames/{s:[0-9]+}/{f:[0-9]+}.jpg")
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
            "instance": int_of(ds, "InstanceNumber"),
        }
    )


VOLUMES = web.AppKey("viewer_volumes", dict[str, Volumes])


def _volumes(request: web.Request) -> Volumes:
    """The volumes reformatted on this node (made on first use: the node's folder and
    ``[viewer] mpr_max_mb`` are known then)."""
    held = request.config_dict[VOLUMES]
    if "volumes" not in held:
        most = request.config_dict[CONFIG].viewer_mpr_max_mb * 2**20
        held["volumes"] = Volumes(request.config_dict[NODE_DIR].root, most)
    return held["volumes"]


async def _volume_of(
    request: web.Request, *, build: bool
) -> tuple[Geometry, Any, dict[str, Any], Session]:
    """The series of the URL as a volume (``build``: its voxels too, made the first time),
    its listing and the person's session; 422 saying why, in their language, when the
    series is not a volume or too large for this node."""
    session = await require(request, *PEOPLE)
    case_id, _, _ = await seen_case(request, session)
    listed = await _series(request, case_id)
    try:
        found = listed[int(request.match_info["s"])]
    except (IndexError, ValueError):
        raise web.HTTPNotFound(text="no such series") from None
    slices = [(Path(f["file"]), int(f["index"])) for f in found["frames"]]
    volumes = _volumes(request)
    header = request.config_dict[RENDERER].header
    try:
        if build:
            geometry, volume = await asyncio.to_thread(
                volumes.held, case_id.hex(), found["uid"], slices, header
            )
        else:
            geometry, volume = await asyncio.to_thread(volumes.geometry, slices, header), None
    except (NotAVolume, TooLarge) as exc:
        words = texts(language_of(request, session))
        exc.values = {  # millimetres as the person's language writes them
            k: words.number(v, 2) if isinstance(v, float) else v for k, v in exc.values.items()
        }
        raise web.HTTPUnprocessableEntity(text=say(exc, words.lang)) from None
    return geometry, volume, found, session


@ROUTES.get("/cases/{id:[0-9a-f]{32}}/series/{s:[0-9]+}/mpr")
async def mpr(request: web.Request) -> web.Response:
    """The planes of a series that forms a volume (how many of each, their size, the
    slices' positions), without building it."""
    geometry, _, _, _ = await _volume_of(request, build=False)
    return web.json_response(geometry.public())


@ROUTES.get(
    "/cases/{id:[0-9a-f]{32}}/series/{s:[0-9]+}/mpr/{plane:axial|coronal|sagittal}/{i:[0-9]+}.png"
)
async def mpr_plane(request: web.Request) -> web.Response:
    """A plane of the volume, reformatted and windowed on the node, as PNG."""
    geometry, volume, found, _ = await _volume_of(request, build=True)
    plane, index = request.match_info["plane"], int(request.match_info["i"])
    if plane not in PLANES or index >= geometry.count(plane):
        raise web.HTTPNotFound(text="no such plane")
    centre = _number(request, "c", -1e7, 1e7)
    width = _number(request, "w", 1, 1e7)
    chosen = Window(centre, width) if centre is not None and width is not None else None
    used = window_of(geometry, chosen, found["presets"], request.query.get("window", ""))
    size = int(_number(request, "size", 16, FULL) or FULL)
    body = await asyncio.to_thread(
        render_mpr_plane,
        volume,
        geometry,
        plane,
        index,
        used,
        invert=request.query.get("invert") == "1",
        max_size=size,
    )
    headers = {
        "Cache-Control": "private, max-age=3600",
        "X-Window": f"{used.centre:.3f},{used.width:.3f}",
    }
    return web.Response(body=body, content_type="image/png", headers=headers)


def add_routes(app: web.Application) -> None:
    app[SERIES] = Listings()
    app[VOLUMES] = {}
    app.router.add_routes(ROUTES)
    app.router.add_get(
        "/cases/{id:[0-9a-f]{32}}/frames/{s:[0-9]+}/{f:[0-9]+}/attributes", frame_attributes
    )
