"""The report back into the hospital, from the case page at the sender's node, for the
case's sender once a report is back (``cases.report_out`` decides who may):

    GET  /web/cases/{id}/report.pdf        the printed report, in the sender's language
    GET  /web/cases/{id}/report.fhir.json  a FHIR R4 Bundle: Patient, ImagingStudy,
                                           DiagnosticReport (the PDF inside)
    POST /web/cases/{id}/report/pacs       an Encapsulated PDF and a Basic Text SR in the
                                           original study, sent by C-STORE to one of the
                                           person's DICOM destinations (web.tools)

Each export is in the audit log with the report's verification code (never the patient).

A sender may also have every report that comes back sent by itself to a destination
(the tools page: ``reports_auto``): ``auto_send``, hooked to the case service
(``CaseService.report_hooks``) by ``install_auto_send``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import tempfile
import zoneinfo
from pathlib import Path

from aiohttp import web
from aiohttp.helpers import ChainMapProxy

from tsfnode.appkeys import CASES, CONFIG, NODE_DIR, STORE
from tsfnode.auth.sessions import Session, posted_form, require
from tsfnode.cases.report_out import ReportRefused, report_out, require_original
from tsfnode.clock import CLOCK, request_now
from tsfnode.errors import CaseError
from tsfnode.hospital.report import ReportOut
from tsfnode.i18n import N_, zone_named
from tsfnode.logs import log
from tsfnode.routes import Routes
from tsfnode.store.destinations import DestinationStore
from tsfnode.web.common import http_error, language_of, seen_case, zone_of
from tsfnode.web.tools import SENDING, Sendings, destinations_of, send_in_background, start_sending

PEOPLE = ("sender", "reader", "coordinator")
ROUTES = Routes()


async def _report(
    request: web.Request, session: Session, *, original: bool = False
) -> tuple[bytes, bytes, ReportOut]:
    """The case's report for the hospital; ``original``: only if this node knows the
    study as the hospital does (the PACS and the HIS file it there)."""
    case_id, person, _ = await seen_case(request, session)
    try:
        found = await report_out(
            request.config_dict[CASES],
            case_id,
            person,
            language_of(request, session),
            request_now(request),
        )
        if original:
            require_original(found)
    except CaseError as exc:
        raise http_error(request, exc) from None
    return case_id, person, found


async def _audit(
    request: web.Request, person: bytes, case_id: bytes, action: str, detail: str
) -> None:
    await request.config_dict[CASES].audit.append(
        actor=person, case_id=case_id, action=action, detail=detail, now=request_now(request)
    )


@ROUTES.get("/cases/{id:[0-9a-f]{32}}/report.pdf")
async def printed(request: web.Request) -> web.Response:
    session = await require(request, *PEOPLE)
    case_id, person, found = await _report(request, session)
    pdf = await asyncio.to_thread(_pdf, found, zone_of(request, session))
    await _audit(request, person, case_id, "report pdf", found.code)
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="report-{found.code}.pdf"'},
    )


@ROUTES.get("/cases/{id:[0-9a-f]{32}}/report.fhir.json")
async def fhir(request: web.Request) -> web.Response:
    session = await require(request, *PEOPLE)
    case_id, person, found = await _report(request, session, original=True)
    bundle = await asyncio.to_thread(_fhir, found, zone_of(request, session))
    await _audit(request, person, case_id, "report fhir", found.code)
    return web.Response(
        text=json.dumps(bundle, ensure_ascii=False, indent=1),
        content_type="application/fhir+json",
        headers={"Content-Disposition": f'attachment; filename="report-{found.code}.fhir.json"'},
    )


def _pdf(found: ReportOut, zone: zoneinfo.ZoneInfo) -> bytes:
    # fpdf2, fhir.resources and the DICOM builders are imported when first used: they
    # take seconds to import on a loaded machine, which a node's start need not wait for.
    from tsfnode.hospital.pdf import build_pdf

    return build_pdf(found, zone)


def _fhir(found: ReportOut, zone: zoneinfo.ZoneInfo) -> dict[str, object]:
    from tsfnode.hospital.fhir import bundle_json

    return bundle_json(found, _pdf(found, zone))


def _write_objects(found: ReportOut, folder: Path, zone: zoneinfo.ZoneInfo) -> list[Path]:
    from tsfnode.hospital.dicom import basic_text_sr, encapsulated_pdf

    pdf = _pdf(found, zone)
    files = []
    for name, ds in (("pdf.dcm", encapsulated_pdf(found, pdf)), ("sr.dcm", basic_text_sr(found))):
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


@ROUTES.post("/cases/{id:[0-9a-f]{32}}/report/pacs")
async def to_pacs(request: web.Request) -> web.Response:
    session, form = await posted_form(request, *PEOPLE)
    case_id, person, found = await _report(request, session, original=True)
    mine = {str(d.id): d for d in await destinations_of(request, session.account_id)}
    chosen = mine.get(str(form.get("destination", "")))
    if chosen is None:
        refused = ReportRefused(
            400, "choose one of your DICOM destinations", key=N_("report_out_no_destination")
        )
        raise http_error(request, refused)
    exports = request.config_dict[NODE_DIR].root / "exports"
    exports.mkdir(mode=0o700, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="report-", dir=exports))
    files = await asyncio.to_thread(_write_objects, found, folder, zone_of(request, session))
    send_id = await start_sending(
        request,
        session.account_id,
        case_id,
        person,
        chosen,
        files,
        action="report to pacs",
        what=f"report objects ({found.code})",
        then=lambda: shutil.rmtree(folder, ignore_errors=True),
    )
    raise web.HTTPSeeOther(f"/web/tools?sending={send_id}#sends")


async def auto_send(app: ChainMapProxy, sendings: Sendings, case_id: bytes) -> None:
    """A report came back: send it to each destination where its sender sends every
    report (none chosen: nothing is done). Each sending is recorded as one from the
    case page; a failure is on the tools page, and the report stays here."""
    service = app[CASES]
    row = await service.row(case_id)
    if row is None or row.role != "sender":
        return
    sender = row.case.sender
    now = app[CLOCK].now_ms()
    for chosen in await DestinationStore(app[STORE].db).report_destinations(sender):
        try:
            found = require_original(
                await report_out(service, case_id, sender, chosen.language, now)
            )
        except CaseError as exc:  # no original identifiers here: said on the case page
            log("report not sent by itself", case=case_id.hex()[:8], why=str(exc)[:200])
            return
        exports = app[NODE_DIR].root / "exports"
        exports.mkdir(mode=0o700, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="report-", dir=exports))
        zone = zone_named("", app[CONFIG].timezone)  # sent by itself: the node's zone
        files = await asyncio.to_thread(_write_objects, found, folder, zone)
        await send_in_background(
            app,
            sendings,
            chosen.account_id,
            case_id,
            sender,
            chosen.destination,
            files,
            action="report to pacs (automatic)",
            what=f"report objects ({found.code})",
            then=functools.partial(shutil.rmtree, folder, ignore_errors=True),
            now=now,
        )


def install_auto_send(root: web.Application, web_app: web.Application) -> None:
    """Hook ``auto_send`` to the case service once the node has started."""

    async def install(_: web.Application) -> None:
        config = ChainMapProxy([web_app, root])
        sendings = web_app[SENDING]

        def hook(case_id: bytes) -> None:
            task = asyncio.ensure_future(auto_send(config, sendings, case_id))
            sendings.tasks.add(task)
            task.add_done_callback(sendings.tasks.discard)

        root[CASES].report_hooks.append(hook)

    root.on_startup.append(install)


def add_routes(app: web.Application) -> None:
    app.router.add_routes(ROUTES)
