"""DICOMweb on the node (PS3.18): QIDO-RS and WADO-RS over the studies a person may see.

    /dicomweb/studies[/{study}[/series[/{series}[/instances[/{sop}]]]]]   search, retrieve
        .../metadata                       DICOM JSON, bulk data as BulkDataURIs
        .../instances/{sop}/frames/{1,2}   frames, stored or uncompressed
        .../rendered, .../thumbnail        JPEG or PNG
        .../instances/{sop}/bulkdata/{tag} a bulk value named by a BulkDataURI
    /dicomweb/series, /dicomweb/instances  search across studies

A person is known by the web session's cookie (a viewer served by this node) or by a
DICOMweb token (``Authorization: Bearer tsf_...``, or Basic with the token as the
password), and sees the studies of the cases they may see in the web application
(``CaseService.visible``, decided by cases/policy.py). Other studies do not exist for
them: 404, as for a wrong UID. Every search and retrieval is written to the audit log, per
case. Cross-origin calls are answered only for the origins in [dicomweb] cors_origins, on
every answer (``cors_headers``, as its headers are sent: streamed ones too).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.helpers import ChainMapProxy
from pydicom import dcmread
from pydicom.encaps import generate_frames
from pydicom.uid import ExplicitVRLittleEndian

from tsfnode.appkeys import CASES, CONFIG, RENDERER, TRANSCODINGS
from tsfnode.auth.gate import Gate
from tsfnode.cases.images import Listings
from tsfnode.clock import request_now
from tsfnode.dicomweb.caller import (
    Person,
    caller,
    person_of,
    refused,
    refused_as_is,
    url_of,
)
from tsfnode.dicomweb.index import CATALOGUES, Catalogue, Instance, catalogue_of
from tsfnode.dicomweb.media import (
    DICOM_JSON,
    Multipart,
    NotAcceptable,
    choose_frames,
    choose_instance_syntax,
    choose_rendered,
    choose_rendered_parts,
    choose_search_media,
    parse_accept,
)
from tsfnode.dicomweb.query import (
    Query,
    QueryError,
    at_level,
    level_record,
    parse,
    returned,
    select,
)
from tsfnode.dicomweb.stow import add_stow_routes
from tsfnode.dicomweb.transcode import (
    CannotTranscode,
    can_produce,
    file_bytes,
    frame_bytes,
    producible,
)
from tsfnode.i18n import N_
from tsfnode.images.listing import BULK, PIXEL_DATA
from tsfnode.images.render import FULL, Window
from tsfnode.logs import log

# Transcodings running at once per node (each on a worker thread: pydicom's RLE encoder
# takes about 2 s per CT slice): beyond these, requests wait their turn, so that viewers
# asking for slow syntaxes cannot hold every thread that the node's other file work
# (opening bundles) runs on. ``appkeys.TRANSCODINGS``, made by app.py, counts them for
# /metrics.
TRANSCODING_AT_ONCE = 2
THUMBNAIL = 128


async def _visible(
    request: web.Request, person: Person, study: str | None = None
) -> list[Instance]:
    return await visible_instances(
        request.config_dict, request.app[CATALOGUES], person.key, request_now(request), study
    )


async def visible_instances(
    app: ChainMapProxy, listings: Listings[Catalogue], person: bytes, now: int, study: str | None
) -> list[Instance]:
    """The instances of every case the person may see (``CaseService.visible``, decided
    by cases/policy.py), or of ``study`` in them (each SOP instance once): what DICOMweb
    and the Query/Retrieve SCP (qr.py) both answer from."""
    cases = app[CASES]
    seen: set[str] = set()
    out = []
    for row in await cases.visible(person, now):
        found = await catalogue_of(app, listings, row.case_id)
        for instance in found.instances if study is None else found.by_study.get(study, []):
            if instance.sop not in seen:
                seen.add(instance.sop)
                out.append(instance)
    return out


async def _audit(
    request: web.Request, person: Person, instances: Iterable[Instance], action: str, what: str
) -> None:
    audit = request.config_dict[CASES].audit
    for case_id in dict.fromkeys(i.case_id for i in instances):
        await audit.append(
            actor=person.key, case_id=case_id, action=action, detail=what, now=request_now(request)
        )


# ---------------------------------------------------------------------------- QIDO-RS


def _element(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)}


Record = tuple[dict[str, Any], list[Instance]]


def _modalities(instances: list[Instance]) -> list[str]:
    found = {str(_first(i.meta, "00080060")) for i in instances}
    return sorted(found - {""})


def _records(
    request: web.Request, instances: list[Instance], level: str, within: str
) -> list[Record]:
    return records_of(instances, level, within, lambda *parts: url_of(request, *parts))


def records_of(
    instances: list[Instance], level: str, within: str, url: Callable[..., str]
) -> list[Record]:
    """One DICOM JSON record per study, series or instance: the attributes of its level
    (and of the levels above that the URL does not name, ``within``), with those the
    standard derives (counts, modalities, the URL to retrieve it: ``url`` of the path's
    parts)."""
    groups: dict[tuple[str, ...], list[Instance]] = {}
    for i in instances:
        key = {"study": (i.study,), "series": (i.study, i.series), "instance": (i.sop,)}[level]
        groups.setdefault(key, []).append(i)
    out = []
    for members in groups.values():
        first = members[0]
        record = level_record(first.meta, level, within)
        record["00080056"] = _element("CS", "ONLINE")
        if level == "study":
            record["00080061"] = _element("CS", *_modalities(members))
            record["00201206"] = _element("IS", len({m.series for m in members}))
            record["00201208"] = _element("IS", len(members))
            record["00081190"] = _element("UR", url("studies", first.study))
        elif level == "series":
            record["00201209"] = _element("IS", len(members))
            record["00081190"] = _element("UR", url("studies", first.study, "series", first.series))
        else:
            where = ("studies", first.study, "series", first.series, "instances", first.sop)
            record["00081190"] = _element("UR", url(*where))
        out.append((record, members))
    out.sort(key=lambda r: _order(r[0], level), reverse=level == "study")
    return out


def _first(record: Mapping[str, Any], tag: str) -> Any:
    values = record.get(tag, {}).get("Value", [])
    return values[0] if values else ""


def _order(record: Mapping[str, Any], level: str) -> tuple[Any, ...]:
    def number(tag: str) -> float:
        try:
            return float(_first(record, tag) or 0)
        except (TypeError, ValueError):
            return 0.0

    if level == "study":  # sorted newest first by the caller
        return (
            f"{_first(record, '00080020')}{_first(record, '00080030')}",
            _first(record, "0020000D"),
        )
    if level == "series":
        return (number("00200011"), _first(record, "0020000E"))
    return (number("00200013"), _first(record, "00080018"))


def _query(request: web.Request) -> Query:
    try:
        return parse(request.query.items())
    except QueryError as exc:
        raise refused_as_is(request, web.HTTPBadRequest, exc) from None


def _search(level: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        try:
            media = choose_search_media(_accept(request))
        except NotAcceptable as exc:
            raise refused_as_is(request, web.HTTPNotAcceptable, exc) from None
        query = at_level(_query(request), level)
        person = await person_of(request)
        instances = await _visible(request, person, request.match_info.get("study"))
        series = request.match_info.get("series")
        if series:
            instances = [i for i in instances if i.series == series]
        within = "series" if series else "study" if "study" in request.match_info else ""
        records = _records(request, instances, level, within)
        found = select(query, records, lambda r: r[0])
        searched = (i for _, members in found for i in members)
        await _audit(request, person, searched, "dicomweb search", level)
        body = [returned(record, level, query, within) for record, _ in found]
        headers = {}
        if query.fuzzy:
            headers["Warning"] = (
                '299 tsfnode "fuzzymatching is not supported: names were matched literally"'
            )
        return web.Response(body=json.dumps(body).encode(), content_type=media, headers=headers)

    return handler


# ---------------------------------------------------------------------------- WADO-RS


async def _chosen(request: web.Request) -> tuple[Person, list[Instance]]:
    """The instances the URL names, among those the person may see (404 if none)."""
    person = await person_of(request)
    study = request.match_info["study"]
    series = request.match_info.get("series")
    sop = request.match_info.get("sop")
    found = [
        i
        for i in await _visible(request, person, study)
        if (series is None or i.series == series) and (sop is None or i.sop == sop)
    ]
    if not found:
        key = (
            N_("dicomweb_no_instance")
            if sop
            else N_("dicomweb_no_series")
            if series
            else N_("dicomweb_no_study")
        )
        raise refused(request, web.HTTPNotFound, key, uid=sop or series or study)
    found.sort(key=lambda i: (i.series, _order(i.meta, "instance")))
    return person, found


def _accept(request: web.Request) -> list[Any]:
    return parse_accept(request.headers.get("Accept"))


def _as_syntax(instance: Instance, syntax: str) -> tuple[str, bytes]:
    """(syntax, the instance's file in it): as stored, or transcoded (transcode.py);
    Explicit VR Little Endian if the encoder refuses this image after all."""
    try:
        return syntax, file_bytes(instance.path, instance.syntax, syntax)
    except CannotTranscode as exc:
        log("dicomweb transcoding refused", syntax=syntax, reason=str(exc)[:200])
        return ExplicitVRLittleEndian, file_bytes(
            instance.path, instance.syntax, ExplicitVRLittleEndian
        )


def _not_acceptable(
    request: web.Request, exc: NotAcceptable, instance: Instance
) -> web.HTTPException:
    """406 saying what can be sent, and why a syntax asked by name cannot (a 16-bit CT
    in JPEG Baseline: the standard's baseline is 8 bits)."""
    reasons = producible(instance.meta)
    named = dict.fromkeys(r.syntax for r in _accept(request) if r.syntax in reasons)
    why = "; ".join(f"{s}: {reasons[s]}" for s in named if s and reasons[s])
    return refused_as_is(request, web.HTTPNotAcceptable, f"{exc}. {why}" if why else exc)


async def retrieve(request: web.Request) -> web.StreamResponse:
    person, instances = await _chosen(request)
    ranges = _accept(request)
    syntaxes = []
    for i in instances:
        try:
            syntaxes.append(choose_instance_syntax(ranges, i.syntax, can_produce(i.meta)))
        except NotAcceptable as exc:
            raise _not_acceptable(request, exc, i) from None
    await _audit(request, person, instances, "dicomweb retrieve", f"{len(instances)} instances")

    async def parts() -> AsyncIterator[tuple[str, str, bytes]]:
        for instance, asked in zip(instances, syntaxes, strict=True):
            where = ("studies", instance.study, "series", instance.series, "instances")
            location = url_of(request, *where, instance.sop)
            if asked == instance.syntax:
                syntax, data = await asyncio.to_thread(_as_syntax, instance, asked)
            else:
                async with request.config_dict[TRANSCODINGS]:
                    syntax, data = await asyncio.to_thread(_as_syntax, instance, asked)
            yield f"application/dicom; transfer-syntax={syntax}", location, data

    return await _stream(request, Multipart("application/dicom"), parts())


async def _stream(
    request: web.Request, body: Multipart, parts: AsyncIterator[tuple[str, str, bytes]]
) -> web.StreamResponse:
    """A multipart/related response, each part (content type, location, bytes) written
    as it comes."""
    response = web.StreamResponse(headers={"Content-Type": body.content_type})
    await response.prepare(request)
    async for content_type, location, data in parts:
        await response.write(body.head(content_type, location))
        await response.write(data)
    await response.write(body.end())
    await response.write_eof()
    return response


def _metadata_of(request: web.Request, instance: Instance) -> str:
    where = url_of(
        request, "studies", instance.study, "series", instance.series, "instances", instance.sop
    )
    return json.dumps(instance.meta).replace(BULK, f"{where}/bulkdata/")


async def metadata(request: web.Request) -> web.Response:
    person, instances = await _chosen(request)
    await _audit(request, person, instances, "dicomweb retrieve", "metadata")
    body = "[" + ",".join(_metadata_of(request, i) for i in instances) + "]"
    return web.Response(body=body.encode(), content_type=DICOM_JSON)


MAX_FRAMES_PER_REQUEST = 256


def _frame_numbers(request: web.Request, instance: Instance) -> list[int]:
    text = request.match_info.get("frames", "")
    try:
        # Each frame once, in the order first asked (1,1,1,... made 125 MiB of one URL).
        numbers = list(dict.fromkeys(int(n) for n in text.split(",")))
    except ValueError:
        raise refused(request, web.HTTPBadRequest, N_("dicomweb_frames"), frames=text) from None
    if len(numbers) > MAX_FRAMES_PER_REQUEST:
        raise refused(
            request, web.HTTPBadRequest, N_("dicomweb_many_frames"), count=MAX_FRAMES_PER_REQUEST
        )
    bad = [n for n in numbers if not 1 <= n <= instance.frames]
    if bad:
        raise refused(
            request, web.HTTPNotFound, N_("dicomweb_no_frame"), frame=bad[0], frames=instance.frames
        )
    return numbers


def frames_of(instance: Instance, numbers: list[int], syntax: str) -> list[bytes]:
    """Frames (1-based) as stored (compressed: the frame's bytes in the stored syntax;
    native: its slice of Pixel Data), or each decoded and encoded in ``syntax``
    (transcode.py: native little-endian bytes, or a codestream)."""
    ds = dcmread(instance.path)
    if not instance.compressed and syntax == ExplicitVRLittleEndian:
        bits = int(ds.BitsAllocated)
        size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * bits // 8
        data = ds.PixelData
        return [bytes(data[(n - 1) * size : n * size]) for n in numbers]
    if syntax == instance.syntax:
        frames = list(generate_frames(ds.PixelData, number_of_frames=instance.frames))
        return [frames[n - 1] for n in numbers]
    return frame_bytes(ds, numbers, syntax)


async def _send_frames(
    request: web.Request, instance: Instance, numbers: list[int]
) -> web.StreamResponse:
    try:
        choice = choose_frames(
            _accept(request), instance.syntax, can_produce(instance.meta), len(numbers)
        )
    except NotAcceptable as exc:
        raise _not_acceptable(request, exc, instance) from None
    try:
        if choice.syntax == instance.syntax or (
            not instance.compressed and choice.syntax == ExplicitVRLittleEndian
        ):
            frames = await asyncio.to_thread(frames_of, instance, numbers, choice.syntax)
        else:
            async with request.config_dict[TRANSCODINGS]:
                frames = await asyncio.to_thread(frames_of, instance, numbers, choice.syntax)
    except CannotTranscode as exc:
        raise refused_as_is(request, web.HTTPNotAcceptable, exc) from None
    content_type = f"{choice.media}; transfer-syntax={choice.syntax}"
    if not choice.multipart:  # one frame, as the whole body (PS3.18 8.7.3.5.2)
        return web.Response(body=frames[0], headers={"Content-Type": content_type})

    async def parts() -> AsyncIterator[tuple[str, str, bytes]]:
        for frame in frames:
            yield content_type, "", frame

    return await _stream(request, Multipart(choice.media), parts())


async def frames(request: web.Request) -> web.StreamResponse:
    person, instances = await _chosen(request)
    instance = instances[0]
    numbers = _frame_numbers(request, instance)
    await _audit(request, person, instances, "dicomweb retrieve", f"frames {len(numbers)}")
    return await _send_frames(request, instance, numbers)


async def bulkdata(request: web.Request) -> web.StreamResponse:
    person, instances = await _chosen(request)
    instance = instances[0]
    tag = request.match_info["tag"].upper()
    await _audit(request, person, instances, "dicomweb retrieve", f"bulk data {tag}")
    if tag == PIXEL_DATA and instance.frames:
        return await _send_frames(request, instance, list(range(1, instance.frames + 1)))
    ds = await asyncio.to_thread(dcmread, instance.path)
    element = ds.get(int(tag, 16))
    if element is None or not isinstance(element.value, bytes):
        raise refused(request, web.HTTPNotFound, N_("dicomweb_no_bulk_data"), tag=tag)
    body = Multipart("application/octet-stream")
    data = body.head("application/octet-stream") + element.value + body.end()
    return web.Response(body=data, headers={"Content-Type": body.content_type})


def _pair(request: web.Request, name: str, kind: type, usage: str) -> tuple[Any, ...] | None:
    """A query parameter ``a,b[,...]``: its parts, the first two of type ``kind``; None
    when it is not given; 400 with ``usage`` when its first two are not of that type."""
    value = request.query.get(name)
    if not value:
        return None
    parts = value.split(",")
    try:
        return (kind(parts[0]), kind(parts[1]), *parts[2:])
    except (IndexError, ValueError):
        raise refused(request, web.HTTPBadRequest, N_("dicomweb_usage"), usage=usage) from None


def _rendering(request: web.Request, default_size: int) -> dict[str, Any]:
    """The options of a rendered image (PS3.18 8.3.5.1.3): window, viewport, quality."""
    options: dict[str, Any] = {"max_size": default_size, "quality": 85}
    window = _pair(request, "window", float, "window=centre,width[,linear]")
    if window is not None:
        centre, width, *function = window
        if width <= 0 or function[:1] not in ([], ["linear"], ["linear-exact"]):
            raise refused(request, web.HTTPBadRequest, N_("dicomweb_window"))
        options["window"] = Window(centre, width)
    viewport = _pair(request, "viewport", int, "viewport=width,height")
    if viewport is not None:
        if len(viewport) > 2 or not all(1 <= side <= FULL for side in viewport):
            raise refused(request, web.HTTPBadRequest, N_("dicomweb_viewport"), full=FULL)
        options["max_size"] = min(viewport)
    quality = request.query.get("quality")
    if quality:
        try:
            options["quality"] = int(quality)
        except ValueError:
            raise refused(request, web.HTTPBadRequest, N_("dicomweb_quality")) from None
        if not 1 <= options["quality"] <= 100:
            raise refused(request, web.HTTPBadRequest, N_("dicomweb_quality"))
    return options


async def _render(request: web.Request, instance: Instance, frame: int, size: int) -> web.Response:
    try:
        media = choose_rendered(_accept(request))
    except NotAcceptable as exc:
        raise refused_as_is(request, web.HTTPNotAcceptable, exc) from None
    if not instance.frames:
        raise refused(request, web.HTTPNotFound, N_("dicomweb_no_image"))
    options = _rendering(request, size)
    options["fmt"] = "PNG" if media == "image/png" else "JPEG"
    body = await asyncio.to_thread(
        request.config_dict[RENDERER].render, instance.path, frame - 1, **options
    )
    return web.Response(body=body, content_type=media)


async def rendered(request: web.Request) -> web.Response:
    person, instances = await _chosen(request)
    instance = instances[0]
    numbers = _frame_numbers(request, instance) if "frames" in request.match_info else [1]
    if len(numbers) != 1:
        raise refused(request, web.HTTPBadRequest, N_("dicomweb_one_frame"))
    await _audit(request, person, instances, "dicomweb retrieve", "rendered")
    return await _render(request, instance, numbers[0], FULL)


async def rendered_images(request: web.Request) -> web.StreamResponse:
    """A rendered study or series (PS3.18 10.4.1.1.1, 10.4.1.1.2): every frame of every
    image in it, rendered as for an instance, one part each, rendered and sent one at a
    time."""
    person, instances = await _chosen(request)
    images = [i for i in instances if i.frames]
    if not images:
        raise refused(request, web.HTTPNotFound, N_("dicomweb_no_image"))
    count = sum(i.frames for i in images)
    try:
        media, multipart = choose_rendered_parts(_accept(request), count)
    except NotAcceptable as exc:
        raise refused_as_is(request, web.HTTPNotAcceptable, exc) from None
    options = _rendering(request, FULL)
    options["fmt"] = "PNG" if media == "image/png" else "JPEG"
    render = request.config_dict[RENDERER].render
    await _audit(request, person, images, "dicomweb retrieve", f"rendered {count} images")
    if not multipart:
        body = await asyncio.to_thread(render, images[0].path, 0, **options)
        return web.Response(body=body, content_type=media)

    async def parts() -> AsyncIterator[tuple[str, str, bytes]]:
        for i in images:
            where = ("studies", i.study, "series", i.series, "instances", i.sop, "frames")
            for frame in range(i.frames):
                body = await asyncio.to_thread(render, i.path, frame, **options)
                yield media, url_of(request, *where, str(frame + 1), "rendered"), body

    return await _stream(request, Multipart(media), parts())


async def thumbnail(request: web.Request) -> web.Response:
    person, instances = await _chosen(request)
    images = [i for i in instances if i.frames] or instances
    if "sop" in request.match_info:
        instance = images[0]
    else:  # a study or series: the middle image of its first series
        first = [i for i in images if i.series == images[0].series]
        instance = first[len(first) // 2]
    numbers = _frame_numbers(request, instance) if "frames" in request.match_info else []
    frame = numbers[0] if numbers else max(1, (instance.frames + 1) // 2)
    await _audit(request, person, [instance], "dicomweb retrieve", "thumbnail")
    return await _render(request, instance, frame, THUMBNAIL)


# ---------------------------------------------------------------------------- the app


EXPOSED = "Content-Type, Content-Location, Warning"


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    if origin is not None and origin in request.config_dict[CONFIG].dicomweb_cors_origins:
        return origin
    return None


@web.middleware
async def preflight(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """CORS preflight for the origins the operator listed (none by default: same origin
    only). Cookies are never honoured across origins; a viewer elsewhere sends a token."""
    if request.method != "OPTIONS":
        return await handler(request)
    origin = _allowed_origin(request)
    if origin is None:
        origin_text = request.headers.get("Origin")
        raise refused(request, web.HTTPForbidden, N_("dicomweb_origin"), origin=origin_text)
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Accept, Content-Type",
            "Access-Control-Max-Age": "600",
        },
    )


async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer of DICOMweb (searches, streamed retrievals, errors, preflights) gets
    its CORS headers here, as its headers are sent: an allowed origin is named, any other
    gets none."""
    response.headers["Vary"] = "Origin"
    origin = _allowed_origin(request)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED


def create_dicomweb_app() -> web.Application:
    app = web.Application(middlewares=[preflight])
    app.on_response_prepare.append(cors_headers)
    app[CATALOGUES] = Listings()
    uid = "[0-9.]{1,64}"
    study = f"/studies/{{study:{uid}}}"
    series = f"{study}/series/{{series:{uid}}}"
    sop = f"{series}/instances/{{sop:{uid}}}"
    frame_list = f"{sop}/frames/{{frames:[0-9,]{{1,4000}}}}"
    add = app.router.add_get
    add("/studies", _search("study"))
    add("/series", _search("series"))
    add("/instances", _search("instance"))
    add(f"{study}/series", _search("series"))
    add(f"{study}/instances", _search("instance"))
    add(f"{series}/instances", _search("instance"))
    for level in (study, series, sop):
        add(level, retrieve)
        add(f"{level}/metadata", metadata)
        add(f"{level}/thumbnail", thumbnail)
    add(f"{sop}/rendered", rendered)
    add(f"{study}/rendered", rendered_images)
    add(f"{series}/rendered", rendered_images)
    add(frame_list, frames)
    add(f"{frame_list}/rendered", rendered)
    add(f"{frame_list}/thumbnail", thumbnail)
    add(f"{sop}/bulkdata/{{tag:[0-9A-Fa-f]{{8}}}}", bulkdata)
    add_stow_routes(app, study)
    Gate.of(authenticate=caller).install(app)
    return app
