"""A person's own tools in the web application: how to connect their viewer (OHIF,
Weasis) to this node's DICOMweb, with the exact URL and their tokens (made, listed,
revoked here); the DICOM nodes they send studies to by C-STORE; a case's study as a zip
with a DICOMDIR, or sent to one of those nodes.

    GET  /web/tools                               the page
    POST /web/tools/tokens                        a new DICOMweb token (shown once)
    POST /web/tools/tokens/revoke
    POST /web/tools/destinations                  a DICOM node to send to
    POST /web/tools/destinations/delete
    GET  /web/cases/{id}/export.zip               the case's study, for a workstation
    POST /web/cases/{id}/send                     sent by C-STORE, in the background

Exports and sendings are in the audit log, as the viewer's and DICOMweb's retrievals.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import web
from aiohttp.helpers import ChainMapProxy
from pydicom.uid import UID

from tsfnode.appkeys import CASES, CONFIG, NODE_DIR, STORE
from tsfnode.auth.accounts import DICOMWEB_TOKEN, create_token
from tsfnode.auth.sessions import Session, check_csrf, posted_form, require
from tsfnode.cases.images import image_folders
from tsfnode.clock import CLOCK, request_now
from tsfnode.errors import NodeError
from tsfnode.i18n import N_, texts
from tsfnode.images.export import (
    Destination,
    ExportError,
    Progress,
    allowed,
    build_zip,
    c_store,
    check_destination,
)
from tsfnode.info import dicomweb_base_url
from tsfnode.web.common import language_of, render_page, seen_case, when

PEOPLE = ("sender", "reader", "coordinator")


@dataclass
class Sendings:
    """The sendings running now: their progress by id, and their tasks."""

    progress: dict[int, Progress] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


SENDING = web.AppKey("dicom_sending", Sendings)
SHOWN_SENDS = 20


def dicomweb_url(request: web.Request) -> str:
    return dicomweb_base_url(request)


async def _tokens(request: web.Request, account_id: int) -> list[dict[str, Any]]:
    cursor = await request.config_dict[STORE].db.execute(
        "SELECT rowid, label, created_ms, expires_ms, last_used_ms, revoked FROM api_tokens"
        " WHERE account_id = ? AND purpose = ? ORDER BY created_ms DESC",
        (account_id, DICOMWEB_TOKEN),
    )
    now = request_now(request)
    return [
        {
            "id": r[0],
            "label": r[1],
            "created_ms": r[2],
            "expires_ms": r[3],
            "last_used_ms": r[4],
            "state": "revoked" if r[5] else "expired" if r[3] <= now else "valid",
        }
        for r in await cursor.fetchall()
    ]


async def destinations_of(request: web.Request, account_id: int) -> list[dict[str, Any]]:
    cursor = await request.config_dict[STORE].db.execute(
        "SELECT id, label, ae_title, host, port, calling_ae FROM dicom_destinations"
        " WHERE account_id = ? ORDER BY label",
        (account_id,),
    )
    keys = ("id", "label", "ae_title", "host", "port", "calling_ae")
    return [dict(zip(keys, r, strict=True)) for r in await cursor.fetchall()]


async def _sends(request: web.Request, account_id: int) -> list[dict[str, Any]]:
    cursor = await request.config_dict[STORE].db.execute(
        "SELECT s.id, s.case_id, d.label, s.started_ms, s.done_ms, s.total, s.sent, s.state,"
        " s.error FROM dicom_sends s LEFT JOIN dicom_destinations d ON d.id = s.destination_id"
        " WHERE s.account_id = ? ORDER BY s.id DESC LIMIT ?",
        (account_id, SHOWN_SENDS),
    )
    running = request.app[SENDING].progress
    out = []
    for r in await cursor.fetchall():
        send = {
            "id": r[0],
            "case": bytes(r[1]).hex(),
            "destination": r[2] or "?",
            "started_ms": r[3],
            "done_ms": r[4],
            "total": r[5],
            "sent": r[6],
            "state": r[7],
            "error": r[8],
        }
        send["failures"] = []
        if str(send["error"]).startswith("{"):  # per image (images/export.py FileResult)
            recorded = json.loads(send["error"])
            send["error"], send["failures"] = "", recorded.get("files", [])
            for failure in send["failures"]:
                failure["kind"] = UID(str(failure.get("class", ""))).name
        if send["state"] == "sending":
            progress = running.get(send["id"])
            if progress is None:  # the node restarted while it ran
                send["state"], send["error"] = "failed", "interrupted"
            else:
                send["sent"] = progress.sent
        out.append(send)
    return out


async def tools_page(
    request: web.Request,
    *,
    error: str | NodeError | None = None,
    new_token: str | None = None,
    status: int = 200,
) -> web.Response:
    session = await require(request, *PEOPLE)
    lang = language_of(request, session)
    url = dicomweb_url(request)
    tokens = await _tokens(request, session.account_id)
    sends = await _sends(request, session.account_id)
    for item in (*tokens, *sends):
        for key in [k for k in item if k.endswith("_ms")]:
            item[key[:-3]] = when(item[key], lang)
    config = request.config_dict[CONFIG]
    ohif = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "tsfnode",
        "configuration": {
            "friendlyName": config.name,
            "name": "tsfnode",
            "wadoUriRoot": url,
            "qidoRoot": url,
            "wadoRoot": url,
            "qidoSupportsIncludeField": True,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "requestOptions": {"auth": f"{session.username}:{new_token or 'TOKEN'}"},
        },
    }
    page = render_page(
        request,
        "tools.html",
        session=session,
        url=url,
        tokens=tokens,
        new_token=new_token,
        ohif=json.dumps(ohif, indent=2, ensure_ascii=False),
        origins=config.dicomweb_cors_origins,
        destinations=await destinations_of(request, session.account_id),
        sends=sends,
        ae_title=config.dicom_ae_title,
        error=error,
    )
    page.set_status(status)
    return page


async def show(request: web.Request) -> web.Response:
    return await tools_page(request)


async def new_token(request: web.Request) -> web.Response:
    session, form = await posted_form(request, *PEOPLE)
    label = str(form.get("label", "")).strip()[:60]
    try:
        days = int(str(form.get("days", "90")))
        token = await create_token(
            request.config_dict[STORE],
            username=session.username,
            purpose=DICOMWEB_TOKEN,
            days=days,
            now=request_now(request),
            label=label,
        )
    except (ValueError, NodeError):
        return await tools_page(request, error=N_("token_days"), status=400)
    return await tools_page(request, new_token=token)


async def revoke_token(request: web.Request) -> web.Response:
    session, form = await posted_form(request, *PEOPLE)
    db = request.config_dict[STORE].db
    await db.execute(
        "UPDATE api_tokens SET revoked = 1 WHERE rowid = ? AND account_id = ? AND purpose = ?",
        (str(form.get("token", "")), session.account_id, DICOMWEB_TOKEN),
    )
    await db.commit()
    raise web.HTTPSeeOther("/web/tools#tokens")


async def add_destination(request: web.Request) -> web.Response:
    session = await require(request, *PEOPLE)
    form = {k: str(v).strip() for k, v in (await check_csrf(request, session)).items()}
    fields = [form.get(k, "") for k in ("label", "ae_title", "host", "port", "calling_ae")]
    problem = check_destination(*fields)
    if problem:
        refused = NodeError(problem, key=N_("destination_invalid"), values={"problem": problem})
        return await tools_page(request, error=refused, status=400)
    db = request.config_dict[STORE].db
    await db.execute(
        "INSERT INTO dicom_destinations (account_id, label, ae_title, host, port, calling_ae)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (session.account_id, fields[0], fields[1], fields[2], int(fields[3]), fields[4]),
    )
    await db.commit()
    raise web.HTTPSeeOther("/web/tools#destinations")


async def delete_destination(request: web.Request) -> web.Response:
    session, form = await posted_form(request, *PEOPLE)
    db = request.config_dict[STORE].db
    await db.execute(
        "DELETE FROM dicom_destinations WHERE id = ? AND account_id = ?",
        (str(form.get("destination", "")), session.account_id),
    )
    await db.commit()
    raise web.HTTPSeeOther("/web/tools#destinations")


async def _case_files(request: web.Request, session: Session) -> tuple[bytes, bytes, list[Path]]:
    """(case id, person key, the case's DICOM files) if the person may see the case
    (404 if not, as for no such case)."""
    case_id, person, _ = await seen_case(request, session)
    folders = await image_folders(request.config_dict[CASES], case_id)
    files = sorted(p for f in folders if f.exists() for p in f.rglob("*.dcm"))
    return case_id, person, files


async def export_zip(request: web.Request) -> web.StreamResponse:
    session = await require(request, *PEOPLE)
    case_id, person, files = await _case_files(request, session)
    exports = request.config_dict[NODE_DIR].root / "exports"
    exports.mkdir(mode=0o700, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="case-", suffix=".zip", dir=exports)
    os.close(handle)
    out = Path(name)
    try:
        count = await asyncio.to_thread(build_zip, files, out, case_tag=case_id.hex()[:8])
        archive = await asyncio.to_thread(_open_unlinked, out)
    except ExportError:
        await asyncio.to_thread(out.unlink, missing_ok=True)
        _ = texts(language_of(request, session))
        raise web.HTTPNotFound(text=_("nothing_to_export")) from None
    await request.config_dict[CASES].audit.append(
        actor=person,
        case_id=case_id,
        action="export zip",
        detail=f"{count} images",
        now=request_now(request),
    )
    with archive:
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/zip",
                "Content-Disposition": f'attachment; filename="case-{case_id.hex()[:8]}.zip"',
                "Content-Length": str(os.fstat(archive.fileno()).st_size),
            }
        )
        await response.prepare(request)
        while piece := await asyncio.to_thread(archive.read, 1 << 20):
            await response.write(piece)
        await response.write_eof()
        return response


def _open_unlinked(path: Path) -> BinaryIO:
    """The file, open, and no longer in any folder: the copy is the reader's now, none
    is kept here even if the download breaks off."""
    f = path.open("rb")
    path.unlink()
    return f


async def send(request: web.Request) -> web.Response:
    session, form = await posted_form(request, *PEOPLE)
    case_id, person, files = await _case_files(request, session)
    mine = {str(d["id"]): d for d in await destinations_of(request, session.account_id)}
    chosen = mine.get(str(form.get("destination", "")))
    if chosen is None:
        raise web.HTTPSeeOther("/web/tools#destinations")
    to = Destination(
        chosen["label"], chosen["ae_title"], chosen["host"], chosen["port"], chosen["calling_ae"]
    )
    db = request.config_dict[STORE].db
    cursor = await db.execute(
        "INSERT INTO dicom_sends (account_id, case_id, destination_id, started_ms, total)"
        " VALUES (?, ?, ?, ?, ?)",
        (session.account_id, case_id, chosen["id"], request_now(request), len(files)),
    )
    send_id = int(cursor.lastrowid or 0)
    await db.commit()
    progress = Progress(total=len(files))
    request.app[SENDING].progress[send_id] = progress
    detail = f"{len(files)} images to {to.ae_title}@{to.host}:{to.port}"
    await request.config_dict[CASES].audit.append(
        actor=person, case_id=case_id, action="dicom send", detail=detail, now=request_now(request)
    )
    task = asyncio.ensure_future(_run_send(request.config_dict, send_id, files, to, progress))
    request.app[SENDING].tasks.add(task)
    task.add_done_callback(request.app[SENDING].tasks.discard)
    raise web.HTTPSeeOther(f"/web/tools?sending={send_id}#sends")


async def _run_send(
    app: ChainMapProxy, send_id: int, files: list[Path], to: Destination, progress: Progress
) -> None:
    """Send, then record the outcome. Cancelled (the node stopping): nothing recorded,
    and the page shows the sending as interrupted."""
    state, error = "done", ""
    try:
        if not files:
            raise ExportError("this case holds no DICOM image to send")
        await asyncio.to_thread(allowed, to.host, to.port, app[CONFIG].dicom_send_networks)
        await asyncio.to_thread(c_store, files, to, progress)
    except ExportError as exc:
        state, error = "failed", str(exc)
        if progress.failures:  # each image that did not arrive, named on the page
            error = json.dumps({"files": [f.as_json() for f in progress.failures]})
    except Exception as exc:
        state, error = "failed", f"{type(exc).__name__}: {exc}"
    db = app[STORE].db
    await db.execute(
        "UPDATE dicom_sends SET state = ?, error = ?, sent = ?, done_ms = ? WHERE id = ?",
        (state, error, progress.sent, app[CLOCK].now_ms(), send_id),
    )
    await db.commit()
    app[SENDING].progress.pop(send_id, None)


async def _stop_sends(app: web.Application) -> None:
    for task in list(app[SENDING].tasks):
        task.cancel()


def add_routes(app: web.Application) -> None:
    app[SENDING] = Sendings()
    app.on_shutdown.append(_stop_sends)
    app.router.add_get("/tools", show)
    app.router.add_post("/tools/tokens", new_token)
    app.router.add_post("/tools/tokens/revoke", revoke_token)
    app.router.add_post("/tools/destinations", add_destination)
    app.router.add_post("/tools/destinations/delete", delete_destination)
    app.router.add_get("/cases/{id:[0-9a-f]{32}}/export.zip", export_zip)
    app.router.add_post("/cases/{id:[0-9a-f]{32}}/send", send)
