"""A case's signed report put together for the hospital (``hospital.ReportOut``), on the
sender's node, for the case's sender only: the latest report (the first or its last
addendum), the reader as the directory attests them, the hospital's name, and the study
as the hospital knows it, from the pseudonym map. The reader's node never has a
pseudonym map for the case, so it cannot make one (``ReportRefused``).

Also the report a verification code names (``find_by_code``), for ``tsfnode verify``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from protocol.cases import Role
from protocol.documents import Document, decode_document
from protocol.errors import ProtocolError
from tsfnode.cases import policy
from tsfnode.cases.reader_images import READER_CLASSES
from tsfnode.cases.service import CaseService
from tsfnode.errors import CaseError
from tsfnode.hospital.report import OriginalStudy, ReportOut, verification_code
from tsfnode.i18n import N_
from tsfnode.intake.pseudonyms import PseudonymMap
from tsfnode.store.cases import CaseStore

READERS = ("reader", "coordinator")


class ReportRefused(CaseError):
    """A report cannot go back into the hospital from here: said why."""


NOBODY = OriginalStudy("", "", "", "", "", "", "", "", "", "", ())


def _original(found: dict[str, Any] | None) -> OriginalStudy:
    """The study as the pseudonym map knows it; for photos of films, nobody (the map
    holds only a placeholder: the sender writes the patient on the printed report)."""
    if found is None:
        return NOBODY
    patient, details, instances = found["patient"], found["details"], found["instances"]
    patient_id = str(patient.get("id", ""))
    return OriginalStudy(
        patient_name=str(patient.get("name", "")),
        patient_id="" if patient_id.startswith("photos:") else patient_id,
        issuer=str(patient.get("issuer", "")),
        birth_date=str(patient.get("birth_date", "")),
        sex=str(details.get("sex", "")),
        study_uid=str(found["study_uid"]),
        study_date=str(details.get("study_date", "")),
        study_time=str(details.get("study_time", "")),
        accession=str(details.get("accession", "")),
        study_id=str(details.get("study_id", "")),
        instances=tuple(sorted((str(v[0]), str(v[1]), str(sop)) for sop, v in instances.items())),
    )


async def report_out(
    service: CaseService, case_id: bytes, person: bytes, language: str, now: int
) -> ReportOut:
    """The case's latest report as the hospital gets it; 404 if ``person`` may not see
    the case, ReportRefused if it is not theirs as sender here or has no report yet.
    The study as the hospital knows it comes from the pseudonym map (``NOBODY`` for
    photos of films: see ``require_original``)."""
    row = await service.seen(case_id, person, now)
    view = service.view(now)
    if row.role != "sender" or Role.SENDER not in policy.roles(row.case, person, view):
        raise ReportRefused(
            403,
            "only the case's sender, on their own node, can take its report into the hospital",
            key=N_("report_out_not_sender"),
        )
    reports = await service.documents(case_id, "report")
    if not reports:
        raise ReportRefused(409, "no report has come back yet", key=N_("report_out_no_report"))
    found = await asyncio.to_thread(
        PseudonymMap(service.node_dir.pseudonyms).study_originals, row.study_uid
    )
    latest = reports[-1]
    member = view.members.get(latest.signer.key)
    body = member.body if member is not None else {}
    sender = view.members.get(row.case.sender)
    facility = str(sender.body.get("facility", "")) if sender is not None else ""
    form = row.form
    references = await service.rows.local_references([case_id])
    return ReportOut(
        language=language,
        hospital=facility or service.config.institution or service.config.name,
        original=_original(found),
        case_id=case_id,
        question=str(form.get("question") or ""),
        modality=str(form.get("modality") or ""),
        findings=str(latest.body["findings"]),
        impression=str(latest.body["impression"]),
        recommendations=str(latest.body["recommendations"]),
        reader_name=str(body.get("display_name", "")) or latest.signer.text,
        reader_qualification=str(body.get("diploma", "")),
        reader_registration=str(body.get("registration", "")),
        signer=latest.signer.key,
        digest=latest.digest,
        signed_ms=latest.created,
        verified=member is not None and body.get("role") in READERS,
        addenda=len(reports) - 1,
        local_reference=references.get(case_id, ""),
        reader_images=tuple(
            READER_CLASSES.get(i.sop_class, N_("sop_other"))
            for i in await service.reader_images.of_case(case_id)
        ),
    )


def require_original(report: ReportOut) -> ReportOut:
    """``report`` if it knows the original study (for the PACS and the HIS, which file
    it there); ReportRefused if not (photos of films, a study the map does not hold)."""
    if not report.original.study_uid:
        raise ReportRefused(
            409,
            "the study's original identifiers are not on this node (pseudonym map)",
            key=N_("report_out_no_original"),
        )
    return report


@dataclass(frozen=True)
class Found:
    """The report a verification code names: intact (its signature checks again) or why
    it is not."""

    case_id: bytes
    document: Document | None
    problem: str


async def find_by_code(rows: CaseStore, code: str) -> Found | None:
    """The report of this node whose verification code is ``code`` (written form), its
    signature checked again; None if no report here has it."""
    for case_id, signer, digest, raw in await rows.signed_documents("report"):
        if verification_code(signer, digest) != code:
            continue
        try:
            doc = decode_document(raw)
        except ProtocolError as exc:
            return Found(case_id, None, f"{exc} ({type(exc).__name__})")
        if doc.digest != digest or doc.signer.key != signer:
            return Found(case_id, None, "the stored report is not the one this code names")
        return Found(case_id, doc, "")
    return None
