"""The sender's new case in the web application: files up in the background, the
anonymisation check, the clinical form, the routing, the estimate, submit.

The browser sends the files as they are (they may name the patient: this is the sender's
own node, on the hospital's side), in resumable chunks, grouped in a *batch*:

    POST  /web/uploads            {"name", "size", "batch"?}  -> {"id", "offset", "batch"}
    GET   /web/uploads/{id}                                   -> {"offset", "size"}
    PATCH /web/uploads/{id}   Upload-Offset: k, bytes         -> {"offset"} (409: ask again)
    POST  /web/batches/{batch}/import                         -> the studies found

A cut connection, a closed tab or a restarted node loses nothing: the client asks where
each upload stands and sends the rest. A file's name is only shown (a whole upload is
kept as ``files/ID`` and its name in ``names/ID``, ids the node made); a batch holds at
most ``[intake] max_files`` files; a damaged file or archive member is named in the
import's answer while the rest is taken. The import de-identifies the files into the intake
(the pseudonym map stays here) and deletes them. Images that may show identity are then
checked in the page (confirmed, or masked with rectangles) before the case can go.
Every JSON call carries the session's CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import re
import shutil
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from protocol.caseform import AGE_UNITS, FIELDS
from protocol.identity import PublicIdentity
from tsfnode.appkeys import CASES, CONFIG, NODE_DIR, STORE
from tsfnode.auth.sessions import Session, check_csrf, require
from tsfnode.bodies import read_body, read_json_object, rectangles
from tsfnode.cases.metrics import group_suggestions
from tsfnode.cases.pairs import listed
from tsfnode.clock import request_now
from tsfnode.errors import CaseError, NodeError
from tsfnode.i18n import N_, Texts, choose_language, texts
from tsfnode.intake.burnedin import said_reason
from tsfnode.intake.importer import importer_for
from tsfnode.intake.owners import NoSuchStudy, StudyOwners
from tsfnode.intake.review import ReviewBook
from tsfnode.intake.uploads import MAX_REQUEST, UploadFolder, UploadRefused, parse_new_upload
from tsfnode.logs import log
from tsfnode.routes import Routes
from tsfnode.store.transfers import TransferStore
from tsfnode.web.caseform import AgeRefused, answered_form
from tsfnode.web.common import (
    done,
    group_labels,
    language_of,
    person_labels,
    person_of,
    refusal,
    render_page,
    say,
)

ROUTES = Routes()

_BATCH = re.compile(r"^[0-9a-f]{32}$")
# The suffixes a whole upload keeps on the node's disk (the importer also knows a zip,
# JPEG or PNG by its first bytes); the rest of a name is never part of a path.
KEPT_SUFFIXES = (".zip", ".dcm", ".jpg", ".jpeg", ".png")
PREVIEW_PIXELS = 768  # the longest side of an image shown for the anonymisation check


def _web_uploads(request: web.Request) -> UploadFolder:
    return UploadFolder(request.config_dict[NODE_DIR].root / "uploads" / "web")


def _batch_folder(request: web.Request, batch: str) -> Path:
    if not _BATCH.match(batch):
        raise web.HTTPNotFound(text="no such batch")
    return request.config_dict[NODE_DIR].root / "uploads" / "web" / "batches" / batch


async def _sender(request: web.Request, *, write: bool) -> Session:
    session = await require(request, "sender")
    if write and not hmac.compare_digest(request.headers.get("X-CSRF-Token", ""), session.csrf):
        raise refusal(request, web.HTTPForbidden, N_("form_expired"), session.language)
    return session


def _batch_info(folder: Path) -> dict[str, Any]:
    try:
        info: dict[str, Any] = json.loads((folder / "batch.json").read_text())
    except FileNotFoundError:
        raise web.HTTPNotFound(text="no such batch") from None
    return info


def _owned_batch(request: web.Request, batch: str, account: int) -> tuple[Path, dict[str, Any]]:
    folder = _batch_folder(request, batch)
    info = _batch_info(folder)
    if info["account"] != account:
        raise web.HTTPNotFound(text="no such batch")
    return folder, info


# --- uploads ------------------------------------------------------------------------


def _refused(request: web.Request, session: Session, exc: UploadRefused) -> web.Response:
    text = exc.say(language_of(request, session))
    return web.Response(status=exc.status, text=text, content_type="text/plain")


@ROUTES.post("/uploads")
async def upload_create(request: web.Request) -> web.Response:
    session = await _sender(request, write=True)
    try:
        body = parse_new_upload(await read_body(request, MAX_REQUEST), with_name=True)
    except UploadRefused as exc:
        return _refused(request, session, exc)
    name, size, batch = body["name"], body["size"], body.get("batch")
    limit = request.config_dict[CONFIG].intake_max_files
    if batch is None:
        batch = UploadFolder.new_id()
        folder = _batch_folder(request, batch)
        folder.mkdir(mode=0o700, parents=True)
        info = {"account": session.account_id, "created_ms": request_now(request), "files": 0}
    elif not isinstance(batch, str):
        raise web.HTTPBadRequest(text="batch: the id given by the first upload")
    else:
        folder, info = _owned_batch(request, batch, session.account_id)
        if (folder / "result.json").exists():
            raise refusal(request, web.HTTPConflict, N_("batch_imported"), session.language)
    # Counted when made (no await from the read to the write: one request at a time).
    if int(info.get("files", 0)) >= limit:
        full = UploadRefused(400, N_("intake_batch_full"), limit=limit)
        return _refused(request, session, full)
    upload_id = _web_uploads(request).create(size, session.account_id, batch=batch, name=name)
    info["files"] = int(info.get("files", 0)) + 1
    (folder / "batch.json").write_text(json.dumps(info))
    return web.json_response({"id": upload_id, "offset": 0, "batch": batch}, status=201)


@ROUTES.get("/uploads/{id}")
async def upload_status(request: web.Request) -> web.Response:
    session = await _sender(request, write=False)
    part, _, info = _web_uploads(request).owned(request.match_info["id"], session.account_id)
    return web.json_response({"offset": part.stat().st_size, "size": info["size"]})


@ROUTES.patch("/uploads/{id}")
async def upload_append(request: web.Request) -> web.Response:
    session = await _sender(request, write=True)
    uploads = _web_uploads(request)
    upload_id = request.match_info["id"]
    part, meta, info = uploads.owned(upload_id, session.account_id)
    try:
        with uploads.writing(part):
            offset = await uploads.append(request, part, info)
            if offset is None:
                return web.json_response({"offset": part.stat().st_size}, status=409)
            if offset == info["size"]:
                batch = _batch_folder(request, info["batch"])
                for sub in ("files", "names"):
                    (batch / sub).mkdir(mode=0o700, exist_ok=True)
                (batch / "names" / upload_id).write_text(str(info["name"]), "utf-8")
                suffix = Path(str(info["name"])).suffix.lower()
                kept = suffix if suffix in KEPT_SUFFIXES else ""
                part.rename(batch / "files" / f"{upload_id}{kept}")
                meta.unlink()
    except UploadRefused as exc:
        return web.json_response(
            {"offset": part.stat().st_size, "error": exc.say(language_of(request, session))},
            status=exc.status,
        )
    return web.json_response({"offset": offset, "done": offset == info["size"]})


@ROUTES.post("/batches/{batch}/import")
async def batch_import(request: web.Request) -> web.Response:
    """Take the batch's files into the intake (de-identified), then delete them."""
    session = await _sender(request, write=True)
    folder, _ = _owned_batch(request, request.match_info["batch"], session.account_id)
    book = ReviewBook(request.config_dict[NODE_DIR].intake)
    if not (folder / "result.json").exists():
        waiting = [
            m
            for m in _web_uploads(request).root.glob("*.json")
            if json.loads(m.read_text()).get("batch") == request.match_info["batch"]
        ]
        if waiting:
            words = texts(choose_language(request, session.language))
            raise web.HTTPConflict(text=words.plural("files_uploading", len(waiting)))
        root = request.config_dict[NODE_DIR].root
        result = await asyncio.to_thread(_import, root, folder, session.account_id)
        (folder / "result.json").write_text(json.dumps(result))
        log("web upload imported", account=session.username, files=len(result["taken"]))
    result = json.loads((folder / "result.json").read_text())
    lang = language_of(request, session)
    rejected = [
        {"name": r["name"], "reason": texts(lang)(r["key"], **r["values"])}
        if "key" in r
        else r  # imported by an older version: its reason in English
        for r in result["rejected"]
    ]
    owners = StudyOwners(request.config_dict[NODE_DIR].intake)

    def shown() -> list[dict[str, Any]]:  # of the studies found, those this sender owns
        mine = owners.studies_of(result["studies"], session.account_id)
        return [_study(book, u, texts(lang)) for u in mine]

    studies = await asyncio.to_thread(shown)
    rejected += [
        {"name": name, "reason": texts(lang)(N_("intake_repeated_first"))}
        for name in result.get("repeated", [])
    ]
    return web.json_response({"studies": studies, "rejected": rejected})


def _import(root: Path, folder: Path, account: int) -> dict[str, Any]:
    """The batch's files into the intake; each refused one with its catalogue key (said
    in the page's language when shown), named as the sender named it."""
    files = sorted((folder / "files").glob("*")) if (folder / "files").exists() else []
    try:
        report = importer_for(root, owner=account).run(files)
        rejected = [
            {"name": _shown(folder, r.name), "key": r.key, "values": dict(r.values)}
            for r in report.rejected
        ]
        repeated = [_shown(folder, r.name) for r in report.repeated if r.kept == "first"]
    finally:
        for sub in ("files", "names"):  # identifiable: gone once taken
            shutil.rmtree(folder / sub, ignore_errors=True)
    return {
        "taken": [r.sop_uid for r in report.taken],
        "studies": sorted({*report.studies, *(r.study_uid for r in report.repeated)}),
        "rejected": rejected,
        # instances the intake held already: the first copy was kept
        "repeated": repeated,
    }


def _shown(folder: Path, name: str) -> str:
    """A refused input as the sender named it: their file's name, and the member's
    path when it is in an archive."""
    path, _, member = name.partition("!")
    try:
        given = (folder / "names" / Path(path).stem).read_text("utf-8")
    except (OSError, ValueError):
        given = "?"
    return f"{given}: {member}" if member else given


def _study(book: ReviewBook, uid: str, words: Texts) -> dict[str, Any]:
    """What the page shows of a study in the intake: counts, size, modality, the images
    to check (with their size in pixels, for the mask tool)."""
    from pydicom import dcmread

    folder = book.study_folder(uid)
    files = [f for s in folder.iterdir() if s.is_dir() for f in s.glob("*.dcm")]
    modality = ""
    if files:
        modality = str(dcmread(files[0], stop_before_pixels=True).get("Modality", ""))
    flags = []
    for flag in book.flags(uid):
        ds = dcmread(folder / flag.series_uid / f"{flag.sop_uid}.dcm", stop_before_pixels=True)
        shown = {**flag.as_dict(), "reasons": [said_reason(r, words) for r in flag.reasons]}
        flags.append({**shown, "rows": int(ds.Rows), "columns": int(ds.Columns)})
    return {
        **book.summary(uid).as_dict(),
        "modality": modality,
        "bytes": sum(f.stat().st_size for f in files),
        "flags": flags,
    }


async def _own_study(request: web.Request, session: Session) -> str:
    """The study of the URL, if this sender may use it (intake/owners.py); 404 as for
    a study that is not there."""
    owners = StudyOwners(request.config_dict[NODE_DIR].intake)
    try:
        return await asyncio.to_thread(
            owners.require, request.match_info["uid"], session.account_id
        )
    except NoSuchStudy:
        raise refusal(request, web.HTTPNotFound, N_("no_such_study"), session.language) from None


@ROUTES.get("/studies/{uid}/images/{sop}.png")
async def preview(request: web.Request) -> web.Response:
    """An image of the intake as PNG, at most PREVIEW_PIXELS on its longest side."""
    session = await _sender(request, write=False)
    uid = await _own_study(request, session)
    sop = request.match_info["sop"]
    book = ReviewBook(request.config_dict[NODE_DIR].intake)
    flag = next((f for f in book.flags(uid) if f.sop_uid == sop), None)
    if flag is None:
        raise web.HTTPNotFound(text="no such image to check")
    path = book.study_folder(uid) / flag.series_uid / f"{sop}.dcm"
    png = await asyncio.to_thread(_png, path)
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})


def _png(path: Path) -> bytes:
    import numpy as np
    from PIL import Image
    from pydicom import dcmread

    ds = dcmread(path)
    pixels = ds.pixel_array
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[0]
    if pixels.ndim == 2:
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels.astype(np.float32) - low) * (255.0 / max(high - low, 1.0))
        if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
            scaled = 255.0 - scaled
        image = Image.fromarray(scaled.astype(np.uint8), mode="L")
    else:
        image = Image.fromarray(pixels.astype(np.uint8)).convert("RGB")
    image.thumbnail((PREVIEW_PIXELS, PREVIEW_PIXELS))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


@ROUTES.post("/studies/{uid}/review")
async def review(request: web.Request) -> web.Response:
    """Confirm an image shows no identity, or mask rectangles of it (pixels of the image)."""
    session = await _sender(request, write=True)
    uid = await _own_study(request, session)
    body = await read_json_object(request)
    book = ReviewBook(request.config_dict[NODE_DIR].intake)
    image = body.get("image")
    if not isinstance(image, str):
        raise web.HTTPBadRequest(text="'image': the SOP Instance UID of the image")
    try:
        if body.get("mask"):
            boxes = rectangles(body.get("mask"))
            await asyncio.to_thread(book.mask, uid, image, boxes, now_ms=request_now(request))
            log("review: regions masked", account=session.username, regions=len(boxes))
        else:
            await asyncio.to_thread(book.confirm, uid, [image], now_ms=request_now(request))
            log("review: images confirmed", account=session.username, images=1)
    except NodeError as exc:
        raise web.HTTPUnprocessableEntity(text=say(exc, language_of(request, session))) from None
    words = texts(language_of(request, session))
    return web.json_response(await asyncio.to_thread(_study, book, uid, words))


# --- the page and the submission ----------------------------------------------------


async def measured_rate(request: web.Request) -> dict[str, Any]:
    """The uplink speed to expect, in bytes/s: the median of the last sendings' goodput,
    capped by the operator's limit; None when nothing has been sent yet and no cap set."""
    rates = await TransferStore(request.config_dict[STORE].db).recent_rates(20)
    cap_kbit = request.config_dict[CONFIG].transfer_upload_kbit_s
    measured = statistics.median(rates) if rates else None
    rate = measured
    if cap_kbit:
        rate = min(measured or float("inf"), cap_kbit * 125.0)
    return {"rate": rate, "measured": measured is not None, "samples": len(rates)}


async def routes_for(request: web.Request, person: Any, lang: str) -> dict[str, Any]:
    """The pairs this sender may send to, then groups and communities (least loaded first)."""
    service = request.config_dict[CASES]
    now = request_now(request)
    view = service.view(now)
    pairs = [
        pair
        for pair in (await listed(service, person.public.key, now))["pairs"]
        if pair["status"] == "active" and pair["sender"] == person.public.key.hex()
    ]
    readers = person_labels(view, {bytes.fromhex(p["reader"]) for p in pairs})
    for pair in pairs:
        pair["reader_name"] = readers[bytes.fromhex(pair["reader"])]
    suggestions = group_suggestions(service, now)
    named = group_labels(
        view, {PublicIdentity.from_text(g["group"]).key for g in suggestions}, lang
    )
    for g in suggestions:
        g["label"] = named[PublicIdentity.from_text(g["group"]).key]
    return {
        "pairs": pairs,
        "groups": [g for g in suggestions if g["routing"] == "group"],
        "communities": [g for g in suggestions if g["routing"] == "community"],
    }


@ROUTES.get("/new")
async def new_page(
    request: web.Request,
    *,
    error: str | NodeError | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    """A new case; with ``?case=ID``, another study for that case of the sender's (the
    same upload, no form: the case has one)."""
    session = await require(request, "sender")
    person = await person_of(request, session)
    adding = await _case_to_add_to(request, person)
    defaults = {f.name: f.default for f in FIELDS if f.default is not None}
    defaults["answer_language"] = language_of(request, session)
    return render_page(
        request,
        "new_case.html",
        session=session,
        adding=adding,
        routes=await routes_for(request, person, defaults["answer_language"]),
        speed=await measured_rate(request),
        error=error,
        values={**defaults, "age_unit": AGE_UNITS[0].name, **(values or {})},
        fields=FIELDS,
        status=status,
    )


async def _case_to_add_to(request: web.Request, person: Any) -> str | None:
    """The case (hex) named by ``?case=`` (or the URL's id), if the sender may see it."""
    named = request.match_info.get("id") or request.query.get("case")
    if not named:
        return None
    try:
        case_id = bytes.fromhex(named)
        await request.config_dict[CASES].seen(case_id, person.public.key, request_now(request))
    except (ValueError, CaseError):
        raise refusal(request, web.HTTPNotFound, N_("no_such_case")) from None
    return case_id.hex()


async def _chosen_study(
    request: web.Request, session: Session, posted: Mapping[str, Any]
) -> tuple[Path, str]:
    """The batch the form names and the study chosen in it, if this sender may use it
    (web.HTTPNotFound or FileNotFoundError: nothing uploaded yet)."""
    folder, _ = _owned_batch(request, str(posted.get("batch", "")), session.account_id)
    study = str(posted.get("study_uid", ""))
    result = json.loads((folder / "result.json").read_text())
    if study not in result["studies"]:
        raise CaseError(
            400, "choose one of the studies found in your files", key=N_("choose_study")
        )
    owners = StudyOwners(request.config_dict[NODE_DIR].intake)
    if not await asyncio.to_thread(owners.may_use, study, session.account_id):
        # its images were already on this node, brought by another account first
        raise CaseError(404, "this study is another account's", key=N_("study_not_yours"))
    return folder, study


@ROUTES.post("/new")
async def submit(request: web.Request) -> web.Response:
    session = await require(request, "sender")
    posted = await check_csrf(request, session)
    values = {k: str(v) for k, v in posted.items() if k != "csrf"}
    person = await person_of(request, session)
    try:
        folder, study = await _chosen_study(request, session, posted)
        routing, _, target = str(posted.get("route", "")).partition(":")
        made = await request.config_dict[CASES].submit(
            person,
            account=session.account_id,
            study_uid=study,
            routing=routing,
            target=target,
            form=answered_form(posted),
            over_quota=posted.get("over_quota") == "yes",
            local_reference=values.get("local_reference", ""),
            now=request_now(request),
        )
    except (web.HTTPNotFound, FileNotFoundError):
        return await new_page(
            request, error=N_("upload_first"), values=values, status=400
        )  # no files yet
    except AgeRefused as exc:
        error = exc.message(language_of(request, session))
        return await new_page(request, error=error, values=values, status=400)
    except (CaseError, NodeError) as exc:
        status = exc.status if isinstance(exc, CaseError) else 409
        return await new_page(request, error=exc, values=values, status=status)
    await asyncio.to_thread(shutil.rmtree, folder, True)
    log("web case submitted", account=session.username)
    raise web.HTTPSeeOther(f"/web/cases/{made['case_id']}?sent=1")


@ROUTES.post("/cases/{id:[0-9a-f]{32}}/images")
async def add_study(request: web.Request) -> web.Response:
    """Another study for an open case (the CT, then the photo of yesterday's film):
    sealed and sent as another bundle of the same case, to the same nodes."""
    session = await require(request, "sender")
    posted = await check_csrf(request, session)
    person = await person_of(request, session)
    case_id = bytes.fromhex(request.match_info["id"])
    try:
        folder, study = await _chosen_study(request, session, posted)
        await request.config_dict[CASES].add_images(
            case_id, person, study, request_now(request), account=session.account_id
        )
    except (web.HTTPNotFound, FileNotFoundError):
        return await new_page(request, error=N_("upload_first"), status=400)
    except (CaseError, NodeError) as exc:
        status = exc.status if isinstance(exc, CaseError) else 409
        return await new_page(request, error=exc, status=status)
    await asyncio.to_thread(shutil.rmtree, folder, True)
    log("web study added", account=session.username)
    raise done(f"/web/cases/{case_id.hex()}", "images_added")


def add_routes(app: web.Application) -> None:
    app.router.add_routes(ROUTES)
