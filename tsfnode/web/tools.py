"""A person's own tools in the web application: how to connect their viewer (OHIF,
Weasis) to this node's DICOMweb, with the exact URL and their tokens (made, listed,
revoked here); the workstations bound to them for Query/Retrieve (dicomweb/qr.py); the
DICOM nodes they send studies to by C-STORE; a case's study as a zip with a DICOMDIR,
or sent to one of those nodes.

    GET  /web/tools                               the page
    POST /web/tools/tokens                        a new DICOMweb token (shown once)
    POST /web/tools/tokens/revoke
    POST /web/tools/bindings                      a workstation bound, for Q/R
    POST /web/tools/bindings/delete
    POST /web/tools/destinations                  a DICOM node to send to
    POST /web/tools/destinations/delete
    POST /web/tools/destinations/reports          every report back sent there, or not
    GET  /web/cases/{id}/export.zip               the case's study, for a workstation
                                    ?profile=cd   ... for a CD (STD-GEN-CD, uncompressed)
    POST /web/cases/{id}/send                     sent by C-STORE, in the background

Exports and sendings are in the audit log, as the viewer's and DICOMweb's retrievals.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from aiohttp import web
from aiohttp.helpers import ChainMapProxy
from pydicom.uid import UID

from tsfnode.appkeys import CASES, CONFIG, NODE_DIR, STORE
from tsfnode.auth.accounts import DICOMWEB_TOKEN, bind_workstation, create_token
from tsfnode.auth.sessions import Session, check_csrf, posted_form, require
from tsfnode.cases.images import image_folders
from tsfnode.clock import CLOCK, request_now
from tsfnode.errors import NodeError
from tsfnode.i18n import N_, texts
from tsfnode.images.export import (
    CD_PROFILE,
    Destination,
    ExportError,
    Progress,
    allowed,
    build_zip,
    c_store,
    check_destination,
)
from tsfnode.info import dicomweb_base_url
from tsfnode.routes import Routes
from tsfnode.store.accounts import AccountStore
from tsfnode.store.bindings import BindingStore
from tsfnode.store.destinations import DestinationStore, DicomDestination
from tsfnode.web.common import language_of, render_page, seen_case, when, zone_of

ROUTES = Routes()

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
    tokens = await AccountStore(request.config_dict[STORE].db).tokens_of(account_id, DICOMWEB_TOKEN)
    now = request_now(request)
    return [
        {
            "id": token.id,
            "label": token.label,
            "created_ms": token.created_ms,
            "expires_ms": token.expires_ms,
            "last_used_ms": token.last_used_ms,
            "state": "revoked"
            if token.revoked
            else "expired"
            if token.expires_ms <= now
            else "valid",
        }
        for token in tokens
    ]


def _destinations(app: web.Application | ChainMapProxy) -> DestinationStore:
    return DestinationStore(app[STORE].db)


async def destinations_of(request: web.Request, account_id: int) -> list[DicomDestination]:
    return await _destinations(request.config_dict).destinations_of(account_id)


async def _sends(request: web.Request, account_id: int) -> list[dict[str, Any]]:
    running = request.app[SENDING].progress
    out = []
    for sending in await _destinations(request.config_dict).sends_of(account_id, SHOWN_SENDS):
        send = {
            "id": sending.id,
            "case": sending.case_id.hex(),
            "destination": sending.destination or "?",
            "started_ms": sending.started_ms,
            "done_ms": sending.done_ms,
            "total": sending.total,
            "sent": sending.sent,
            "state": sending.state,
            "error": sending.error,
        }
        failures: list[dict[str, Any]] = []
        if sending.error.startswith("{"):  # per image (images/export.py FileResult)
            failures = json.loads(sending.error).get("files", [])
            send["error"] = ""
            for failure in failures:
                failure["kind"] = UID(str(failure.get("class", ""))).name
        send["failures"] = failures
        if send["state"] == "sending":
            progress = running.get(sending.id)
            if progress is None:  # the node restarted while it ran
                send["state"], send["error"] = "failed", "interrupted"
            else:
                send["sent"] = progress.sent
        out.append(send)
    return out


# The page's help (ohif_help, in the person's language) says what it is and why; the file
# itself says nothing a person reads.
OHIF_APP_CONFIG = """\
window.config = ({{ servicesManager }}) => ({{
  routerBasename: null,
  extensions: [],
  modes: [],
  showStudyList: true,
  defaultDataSourceName: 'tsfnode',
  dataSources: [
    {{
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'tsfnode',
      configuration: {{
        friendlyName: {name},
        name: 'tsfnode',
        qidoRoot: {url},
        wadoRoot: {url},
        qidoSupportsIncludeField: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        omitQuotationForMultipartRequest: true,
        dicomUploadEnabled: false,
        bulkDataURI: {{ enabled: true }},
        onConfiguration: (configuration) => {{
          servicesManager.services.userAuthenticationService.setServiceImplementation({{
            getAuthorizationHeader: () => ({{ Authorization: {bearer} }}),
          }});
          return configuration;
        }},
      }},
    }},
  ],
}});
"""


def ohif_app_config(url: str, node: str, token: str | None) -> str:
    """OHIF 3.x's app-config.js for this node's DICOMweb at ``url``, signed in with
    ``token`` (``TOKEN`` where none was just made). OHIF 3 ignores ``requestOptions.auth``
    and sends the header of its ``userAuthenticationService``; the stock app takes a
    configuration that is a function of its ``servicesManager``, and the DICOMweb data
    source calls ``onConfiguration`` as it starts, before its first search: there the
    header is set, for every search and retrieval. No ``wadoUriRoot``: the node serves
    no WADO-URI, and ``imageRendering: 'wadors'`` needs none."""
    return OHIF_APP_CONFIG.format(
        name=json.dumps(node, ensure_ascii=False),
        url=json.dumps(url),
        bearer=json.dumps(f"Bearer {token or 'TOKEN'}"),
    )


@ROUTES.get("/tools")  # the page as it is, or drawn again with an error
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
            item[key[:-3]] = when(item[key], lang, zone_of(request, session))
    config = request.config_dict[CONFIG]
    ohif = ohif_app_config(url, config.name, new_token)
    return render_page(
        request,
        "tools.html",
        session=session,
        url=url,
        tokens=tokens,
        new_token=new_token,
        ohif=ohif,
        origins=config.dicomweb_cors_origins,
        destinations=await destinations_of(request, session.account_id),
        sends=sends,
        ae_title=config.dicom_ae_title,
        dicom_host=(
            config.http_host
            if config.http_host not in ("0.0.0.0", "::")  # noqa: S104 - compared, not bound
            else request.url.host
        ),
        dicom_port=config.dicom_port,
        bindings=await BindingStore(request.config_dict[STORE].db).bindings_of(session.account_id),
        error=error,
        status=status,
    )


@ROUTES.post("/tools/tokens")
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


@ROUTES.post("/tools/tokens/revoke")
async def revoke_token(request: web.Request) -> web.Response:
    session, form = await posted_form(request, *PEOPLE)
    token_id = _number(form.get("token"))
    if token_id is not None:
        await AccountStore(request.config_dict[STORE].db).revoke_token(
            token_id, account_id=session.account_id, purpose=DICOMWEB_TOKEN
        )
    raise web.HTTPSeeOther("/web/tools#tokens")


@ROUTES.post("/tools/bindings")
async def add_binding(request: web.Request) -> web.Response:
    session, form = await posted_form(request, *PEOPLE)
    try:
        await bind_workstation(
            request.config_dict[STORE],
            account_id=session.account_id,
            ae_title=str(form.get("ae_title", "")),
            host=str(form.get("host", "")),
            port=str(form.get("port", "")).strip(),
            now=request_now(request),
        )
    except NodeError as exc:
        return await tools_page(request, error=exc, status=400)
    raise web.HTTPSeeOther("/web/tools#bindings")


@ROUTES.post("/tools/bindings/delete")
async def delete_binding(request: web.Request) -> web.Response:
    session, form = await posted_form(request, *PEOPLE)
    await BindingStore(request.config_dict[STORE].db).unbind(
        str(form.get("ae_title", "")), account_id=session.account_id
    )
    raise web.HTTPSeeOther("/web/tools#bindings")


@ROUTES.post("/tools/destinations")
async def add_destination(request: web.Request) -> web.Response:
    session = await require(request, *PEOPLE)
    form = {k: str(v).strip() for k, v in (await check_csrf(request, session)).items()}
    fields = [form.get(k, "") for k in ("label", "ae_title", "host", "port", "calling_ae")]
    problem = check_destination(*fields)
    if problem:
        refused = NodeError(problem, key=N_("destination_invalid"), values={"problem": problem})
        return await tools_page(request, error=refused, status=400)
    await _destinations(request.config_dict).add_destination(
        session.account_id,
        label=fields[0],
        ae_title=fields[1],
        host=fields[2],
        port=int(fields[3]),
        calling_ae=fields[4],
    )
    raise web.HTTPSeeOther("/web/tools#destinations")


def _to_destinations() -> NoReturn:
    """Back to the tools page, at its destinations."""
    raise web.HTTPSeeOther("/web/tools#destinations")


@ROUTES.post("/tools/destinations/reports")
async def reports_auto(request: web.Request) -> web.Response:
    """Send every report that comes back to this destination by itself, or no longer."""
    session, form = await posted_form(request, *PEOPLE)
    destination_id = _number(form.get("destination"))
    if destination_id is not None:
        on = form.get("on") == "yes"
        await _destinations(request.config_dict).set_reports_auto(
            destination_id, account_id=session.account_id, on=on
        )
    _to_destinations()


@ROUTES.post("/tools/destinations/delete")
async def delete_destination(request: web.Request) -> web.Response:
    session, form = await posted_form(request, *PEOPLE)
    destination = _number(form.get("destination"))
    if destination is not None:
        await _destinations(request.config_dict).delete_destination(
            destination, account_id=session.account_id
        )
    _to_destinations()


def _number(value: object) -> int | None:
    """A row's id from a form ('' or anything else: None, and nothing is done)."""
    try:
        return int(str(value))
    except ValueError:
        return None


async def _case_files(request: web.Request, session: Session) -> tuple[bytes, bytes, list[Path]]:
    """(case id, person key, the case's DICOM files) if the person may see the case
    (404 if not, as for no such case)."""
    case_id, person, _ = await seen_case(request, session)
    folders = await image_folders(request.config_dict[CASES], case_id)
    files = sorted(p for f in folders if f.exists() for p in f.rglob("*.dcm"))
    return case_id, person, files


@ROUTES.get("/cases/{id:[0-9a-f]{32}}/export.zip")
async def export_zip(request: web.Request) -> web.StreamResponse:
    session = await require(request, *PEOPLE)
    _ = texts(language_of(request, session))
    asked = request.query.get("profile", "")
    if asked not in ("", "cd"):
        raise web.HTTPBadRequest(text=_("export_profile_unknown", profile=asked[:20]))
    profile = CD_PROFILE if asked == "cd" else ""
    case_id, person, files = await _case_files(request, session)
    exports = request.config_dict[NODE_DIR].root / "exports"
    exports.mkdir(mode=0o700, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="case-", suffix=".zip", dir=exports)
    os.close(handle)
    out = Path(name)
    try:
        count = await asyncio.to_thread(
            build_zip, files, out, case_tag=case_id.hex()[:8], profile=profile
        )
        archive = await asyncio.to_thread(_open_unlinked, out)
    except ExportError as exc:
        await asyncio.to_thread(out.unlink, missing_ok=True)
        if not files:
            raise web.HTTPNotFound(text=_("nothing_to_export")) from None
        raise web.HTTPUnprocessableEntity(text=_("export_not_decoded", detail=exc)) from None
    await request.config_dict[CASES].audit.append(
        actor=person,
        case_id=case_id,
        action="export zip",
        detail=f"{count} images" + (f" ({profile})" if profile else ""),
        now=request_now(request),
    )
    with archive:
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/zip",
                "Content-Disposition": (
                    f'attachment; filename="case-{case_id.hex()[:8]}{"-cd" if profile else ""}.zip"'
                ),
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


@ROUTES.post("/cases/{id:[0-9a-f]{32}}/send")
async def send(request: web.Request) -> web.Response:
    session, form = await posted_form(request, *PEOPLE)
    case_id, person, files = await _case_files(request, session)
    mine = {str(d.id): d for d in await destinations_of(request, session.account_id)}
    chosen = mine.get(str(form.get("destination", "")))
    if chosen is None:
        raise web.HTTPSeeOther("/web/tools#destinations")
    send_id = await start_sending(
        request, session.account_id, case_id, person, chosen, files, action="dicom send"
    )
    raise web.HTTPSeeOther(f"/web/tools?sending={send_id}#sends")


async def start_sending(
    request: web.Request, account_id: int, case_id: bytes, person: bytes, *what: Any, **how: Any
) -> int:
    """``send_in_background`` (``what``: the destination and the files; ``how``: action,
    what, then) for this request's node, now: the sending's id."""
    return await send_in_background(
        request.config_dict, request.app[SENDING], account_id, case_id, person, *what,
        now=request_now(request), **how,
    )  # fmt: skip


async def send_in_background(
    app: ChainMapProxy,
    sendings: Sendings,
    account_id: int,
    case_id: bytes,
    person: bytes,
    chosen: DicomDestination,
    files: list[Path],
    *,
    action: str,
    now: int,
    what: str = "images",
    then: Callable[[], None] | None = None,
) -> int:
    """Send ``files`` to ``chosen`` by C-STORE in the background, recorded as a sending
    (shown on the tools page) and in the audit log as ``action``; ``then`` runs once it
    ends, however it ends. The sending's id. (``start_sending`` from a request.)"""
    to = Destination(chosen.label, chosen.ae_title, chosen.host, chosen.port, chosen.calling_ae)
    send_id = await _destinations(app).start_send(
        account_id, case_id=case_id, destination_id=chosen.id, now=now, total=len(files)
    )
    progress = Progress(total=len(files))
    sendings.progress[send_id] = progress
    detail = f"{len(files)} {what} to {to.ae_title}@{to.host}:{to.port}"
    await app[CASES].audit.append(
        actor=person, case_id=case_id, action=action, detail=detail, now=now
    )
    task = asyncio.ensure_future(_run_send(app, sendings, send_id, files, to, progress))
    sendings.tasks.add(task)
    task.add_done_callback(sendings.tasks.discard)
    if then is not None:
        task.add_done_callback(lambda _: then())
    return send_id


async def _run_send(
    app: ChainMapProxy,
    sendings: Sendings,
    send_id: int,
    files: list[Path],
    to: Destination,
    progress: Progress,
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
    await _destinations(app).finish_send(
        send_id, state=state, error=error, sent=progress.sent, now=app[CLOCK].now_ms()
    )
    sendings.progress.pop(send_id, None)


async def _stop_sends(app: web.Application) -> None:
    for task in list(app[SENDING].tasks):
        task.cancel()


def add_routes(app: web.Application) -> None:
    app[SENDING] = Sendings()
    app.on_shutdown.append(_stop_sends)
    app.router.add_routes(ROUTES)
