"""The report as FHIR R4 for a hospital's information system: a Bundle (collection) of
the Patient (as the sender's node knows them), the ImagingStudy (the original Study
Instance UID as identifier ``urn:oid:``) and the DiagnosticReport (final, LOINC 18748-4,
the conclusion, the printed report as ``presentedForm``), validated by building it with
fhir.resources' models.

fhir.resources 8 is FHIR R5 at its top level; its ``R4B`` subpackage is FHIR 4.3, the
technical correction of R4 (4.0.1), whose Patient, ImagingStudy, DiagnosticReport and
Bundle have the same elements as R4's: what it validates is R4 JSON.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from tsfnode.hospital.pdf import patient_name
from tsfnode.hospital.report import ReportOut

LOINC = "http://loinc.org"
GENDER = {"M": "male", "F": "female", "O": "other"}


def _date(value: str) -> str | None:
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:8]}"
    return None


def _human_name(dicom_name: str) -> dict[str, Any]:
    parts = [p.strip() for p in dicom_name.split("=")[0].split("^")] + [""] * 5
    name: dict[str, Any] = {"text": patient_name(dicom_name)}
    if parts[0]:
        name["family"] = parts[0]
    given = [p for p in parts[1:3] if p]
    if given:
        name["given"] = given
    return name


def bundle_json(report: ReportOut, pdf: bytes) -> dict[str, Any]:
    """The Bundle as JSON, validated by fhir.resources (R4B); ValueError if it does not
    validate (pydantic's ValidationError is one)."""
    original = report.original
    # Ids derived from the report: the same report gives the same bundle. Within the
    # collection, entries are named by urn:uuid and referenced by it.
    patient_id, study_id, report_id = (
        str(uuid.uuid5(uuid.NAMESPACE_OID, f"{report.digest.hex()}/{kind}"))
        for kind in ("Patient", "ImagingStudy", "DiagnosticReport")
    )
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [{"value": original.patient_id}] if original.patient_id else [],
        "name": [_human_name(original.patient_name)] if original.patient_name else [],
        "gender": GENDER.get(original.sex, "unknown"),
    }
    if original.issuer and patient["identifier"]:
        patient["identifier"][0]["assigner"] = {"display": original.issuer}
    birth = _date(original.birth_date)
    if birth:
        patient["birthDate"] = birth
    study: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": study_id,
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{original.study_uid}"}],
        "status": "available",
        "subject": {"reference": f"urn:uuid:{patient_id}"},
    }
    started = _date(original.study_date)
    if started:
        study["started"] = started
    if original.accession:
        study["identifier"].append(
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "ACSN",
                        }
                    ]
                },
                "value": original.accession,
            }
        )
    signed = dt.datetime.fromtimestamp(report.signed_ms / 1000, dt.UTC)
    conclusion = report.impression or report.findings
    diagnostic: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": report_id,
        "identifier": [{"system": "urn:tsfnode:report-code", "value": report.code}],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                        "code": "RAD",
                        "display": "Radiology",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}]
        },
        "subject": {"reference": f"urn:uuid:{patient_id}"},
        "issued": signed.isoformat().replace("+00:00", "Z"),
        "resultsInterpreter": [{"display": report.reader_name}],
        "imagingStudy": [{"reference": f"urn:uuid:{study_id}"}],
        "conclusion": conclusion,
        "presentedForm": [
            {
                "contentType": "application/pdf",
                "language": report.language,
                "data": base64.b64encode(pdf).decode(),
                "title": f"report-{report.code}.pdf",
            }
        ],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": signed.isoformat().replace("+00:00", "Z"),
        "entry": [
            {"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in (patient, study, diagnostic)
        ],
    }
    validated = Bundle.model_validate(bundle)
    out: dict[str, Any] = json.loads(validated.model_dump_json(exclude_none=True))
    return out
