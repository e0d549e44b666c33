"""The report back into the hospital (tsfnode/hospital/), built from a real signed report
and the pseudonym map of a real import of pydicom's CT_small: the printed report read
back with pypdf in French and in English; the Encapsulated PDF and the Basic Text SR
checked by dcmtk's ``dciodvfy`` and sent by C-STORE to dcmtk's storescp and to Orthanc
(Debian), each a hospital's PACS, in the original study; the FHIR bundle validated by
fhir.resources (R4B). The whole way across two nodes is in test_report_export_network.py.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from fhir.resources.R4B.bundle import Bundle
from pypdf import PdfReader

from protocol.documents import decode_document, encode_document
from tests.harness.data import PYDICOM_FILES, read_dicom
from tests.harness.pacs import orthanc_get, orthanc_running
from tests.protocol.helpers import NOW, identity
from tsfnode.cases.report_out import NOBODY, ReportRefused, require_original
from tsfnode.hospital.dicom import BASIC_TEXT_SR, ENCAPSULATED_PDF, basic_text_sr, encapsulated_pdf
from tsfnode.hospital.fhir import bundle_json
from tsfnode.hospital.pdf import build_pdf
from tsfnode.hospital.report import OriginalStudy, ReportOut, normalise_code, verification_code
from tsfnode.images.export import Destination, Progress, c_store
from tsfnode.intake.importer import Importer
from tsfnode.intake.pseudonyms import PseudonymMap

READER = identity("reader")
FINDINGS = (
    "Condensation du lobe inférieur droit avec bronchogramme aérique ; épanchement pleural "
    "de faible abondance. "
)


def read(path: Path) -> pydicom.Dataset:
    return read_dicom(path)


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> OriginalStudy:
    """CT_small imported by the node's intake: the study as the pseudonym map keeps it."""
    base = tmp_path_factory.mktemp("intake")
    source = base / "in" / "CT_small.dcm"
    source.parent.mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", source)
    report = Importer(base / "intake", PseudonymMap(base / "pseudonyms")).run([source])
    (taken,) = report.taken
    found = PseudonymMap(base / "pseudonyms").study_originals(taken.study_uid)
    assert found is not None
    return OriginalStudy(
        patient_name=found["patient"]["name"],
        patient_id=found["patient"]["id"],
        issuer=found["patient"]["issuer"],
        birth_date=found["patient"]["birth_date"],
        sex=found["details"].get("sex", ""),
        study_uid=found["study_uid"],
        study_date=found["details"].get("study_date", ""),
        study_time=found["details"].get("study_time", ""),
        accession=found["details"].get("accession", ""),
        study_id=found["details"].get("study_id", ""),
        instances=tuple((s, c, sop) for sop, (s, c) in found["instances"].items()),
    )


def test_the_pseudonym_map_keeps_the_study_as_the_hospital_knows_it(
    original: OriginalStudy,
) -> None:
    ct = read(PYDICOM_FILES / "CT_small.dcm")
    assert original.patient_name == str(ct.PatientName)
    assert original.study_uid == ct.StudyInstanceUID
    assert original.instances == ((ct.SeriesInstanceUID, ct.SOPClassUID, ct.SOPInstanceUID),)
    assert original.study_date == ct.StudyDate


def signed_report(original: OriginalStudy, language: str, findings: str = FINDINGS) -> ReportOut:
    raw = encode_document(
        "report",
        {
            "case_id": bytes(range(16)),
            "bundle_id": bytes(16),
            "created": NOW,
            "language": language,
            "findings": findings,
            "impression": "Pneumopathie lobaire inférieure droite.",
            "recommendations": "Contrôle à 6 semaines.",
            "image_quality": "adequate",
            "quality_reason": "",
            "supersedes": None,
        },
        READER,
    )
    doc = decode_document(raw)
    return ReportOut(
        language=language,
        hospital="Hôpital de district de Natitingou",
        original=original,
        case_id=bytes(range(16)),
        question="Pneumopathie ? Épanchement ?",
        modality="CT",
        findings=str(doc.body["findings"]),
        impression=str(doc.body["impression"]),
        recommendations=str(doc.body["recommendations"]),
        reader_name="Dr Marie Lectrice",
        reader_qualification="DES de radiologie et imagerie médicale",
        reader_registration="RPPS 10001234567",
        signer=doc.signer.key,
        digest=doc.digest,
        signed_ms=doc.created,
        verified=True,
    )


def pdf_text(pdf: bytes) -> tuple[str, PdfReader]:
    """The PDF's text, its white space as single spaces (lines wrap anywhere)."""
    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages)
    return " ".join(text.split()), reader


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("fr", ("Compte rendu de second avis", "Question clinique", "Résultats", "Conclusion",
                "Lecteur", "Signé le", "Code de vérification")),
        ("en", ("Second opinion report", "Clinical question", "Findings", "Impression",
                "Reader", "Signed on", "Verification code")),
    ],
)  # fmt: skip
def test_the_printed_report_reads_back_with_every_part_in_the_senders_language(
    original: OriginalStudy, language: str, words: tuple[str, ...]
) -> None:
    report = signed_report(original, language)
    text, reader = pdf_text(build_pdf(report))
    for word in words:
        assert word in text, word
    for part in (
        "Hôpital de district de Natitingou",
        "Pneumopathie ? Épanchement ?",
        "Condensation du lobe inférieur droit",
        "Pneumopathie lobaire inférieure droite.",
        "Dr Marie Lectrice",
        "DES de radiologie et imagerie médicale",
        report.code,
    ):
        assert part in text, part
    # The patient as the hospital knows them (CT_small: CompressedSamples^CT1).
    assert "CT1 CompressedSamples" in text
    assert original.patient_id in text
    date = "18 nov. 2026" if language == "fr" else "18 Nov 2026"
    assert date in text  # NOW, as the sender's language writes it
    assert reader.metadata is not None
    assert reader.metadata.subject == f"tsfnode verification code {report.code}"


def test_the_printed_report_gives_its_time_in_the_hospitals_zone(original: OriginalStudy) -> None:
    """Printed at Cotonou, the signature's time reads in Cotonou's zone and says so (not
    in UTC, an hour behind the clock on the ward's wall)."""
    report = signed_report(original, "fr")
    utc, _ = pdf_text(build_pdf(report))
    cotonou, _ = pdf_text(build_pdf(report, zoneinfo.ZoneInfo("Africa/Porto-Novo")))
    assert " UTC" in utc
    assert "(Porto-Novo)" not in utc
    assert "UTC+1 (Porto-Novo)" in cotonou
    moment = dt.datetime.fromtimestamp(report.signed_ms / 1000, dt.UTC)
    local = moment.astimezone(zoneinfo.ZoneInfo("Africa/Porto-Novo"))
    assert f"{moment:%H:%M} UTC" in utc
    assert f"{local:%H:%M} UTC+1" in cotonou


@pytest.mark.parametrize(
    ("language", "label"), [("fr", "Référence locale"), ("en", "Local reference")]
)
def test_a_photos_printed_report_names_the_patient_by_the_senders_own_reference(
    language: str, label: str
) -> None:
    """A photo of a film has no patient in the pseudonym map: the paper report carries
    the reference the sender typed for it (on the sender's node, where it is printed)."""
    report = replace(
        signed_report(NOBODY, language), local_reference="Dossier 2026/117 · Awa Kpadonou"
    )
    text, _ = pdf_text(build_pdf(report))
    assert label in text
    assert "Dossier 2026/117 · Awa Kpadonou" in text
    without, _ = pdf_text(build_pdf(signed_report(NOBODY, language)))
    assert label not in without


def test_long_findings_wrap_onto_more_pages_and_every_page_carries_the_code(
    original: OriginalStudy,
) -> None:
    report = signed_report(original, "fr", findings=FINDINGS * 120)
    text, reader = pdf_text(build_pdf(report))
    assert len(reader.pages) >= 3
    for n, page in enumerate(reader.pages, 1):
        assert report.code in page.extract_text()
        assert f"{n}/{len(reader.pages)}" in page.extract_text()
    assert text.count("épanchement pleural") == 120


def test_the_code_names_the_signed_report_and_a_changed_one_has_another() -> None:
    code = verification_code(b"\x01" * 32, b"\x02" * 32)
    assert normalise_code(code.lower().replace("-", " ")) == code
    assert verification_code(b"\x01" * 32, b"\x03" + b"\x02" * 31) != code
    assert verification_code(b"\x04" * 32, b"\x02" * 32) != code
    assert normalise_code("ABCD-EFGH") is None


def dciodvfy_errors(path: Path) -> list[str]:
    checked = subprocess.run(
        ["dciodvfy", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    lines = (checked.stdout + checked.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


@pytest.fixture
def objects(original: OriginalStudy, tmp_path: Path) -> list[Path]:
    report = signed_report(original, "fr")
    out = []
    for name, ds in (
        ("pdf.dcm", encapsulated_pdf(report, build_pdf(report))),
        ("sr.dcm", basic_text_sr(report)),
    ):
        path = tmp_path / "objects" / name
        path.parent.mkdir(exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def check_received(ds: pydicom.Dataset, original: OriginalStudy) -> None:
    """An object of the report as the PACS received it: in the original study, the
    patient as the hospital knows them, in a new series."""
    assert ds.StudyInstanceUID == original.study_uid
    assert str(ds.PatientName) == original.patient_name
    assert ds.PatientID == original.patient_id
    assert ds.SeriesInstanceUID not in {s for s, _, _ in original.instances}
    if ds.SOPClassUID == BASIC_TEXT_SR:
        (evidence,) = ds.CurrentRequestedProcedureEvidenceSequence
        assert evidence.StudyInstanceUID == original.study_uid
        (series,) = evidence.ReferencedSeriesSequence
        (sop,) = series.ReferencedSOPSequence
        assert (series.SeriesInstanceUID, sop.ReferencedSOPClassUID,
                sop.ReferencedSOPInstanceUID) == original.instances[0]  # fmt: skip
        assert ds.VerificationFlag == "VERIFIED"
        texts = {i.ConceptNameCodeSequence[0].CodeMeaning: i.get("TextValue") or str(
            i.get("PersonName")) for i in ds.ContentSequence}  # fmt: skip
        assert texts["Finding"].startswith("Condensation du lobe inférieur droit")
        assert texts["Impression"] == "Pneumopathie lobaire inférieure droite."
        assert texts["Person Observer Name"] == "Lectrice^Dr Marie"
    else:
        assert ds.SOPClassUID == ENCAPSULATED_PDF
        assert ds.EncapsulatedDocument.startswith(b"%PDF-")


def test_the_dicom_objects_pass_dciodvfy_and_arrive_at_storescp_in_the_original_study(
    objects: list[Path], original: OriginalStudy, storescp: Callable[..., tuple[int, Path]]
) -> None:
    for path in objects:
        assert dciodvfy_errors(path) == [], path.name
    port, out = storescp()
    progress = Progress(total=2)
    c_store(objects, Destination("PACS", "HOROS", "127.0.0.1", port, "TSFNODE"), progress)
    received = sorted(out.iterdir())
    assert len(received) == 2
    for path in received:
        assert dciodvfy_errors(path) == [], path.name
        check_received(read(path), original)


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """Orthanc as the hospital's PACS (AE PACS), which knows the node as "tsfnode"."""
    with orthanc_running(
        tmp_path / "orthanc", "PACS", {"tsfnode": ["TSFNODE", "127.0.0.1", 104]}
    ) as ports:
        yield ports


def test_the_dicom_objects_arrive_in_orthanc_in_the_original_study(
    objects: list[Path], original: OriginalStudy, orthanc: tuple[int, int], tmp_path: Path
) -> None:
    http_port, dicom_port = orthanc
    progress = Progress(total=2)
    c_store(objects, Destination("PACS", "PACS", "127.0.0.1", dicom_port, "TSFNODE"), progress)
    assert progress.sent == 2
    studies = orthanc_get(http_port, "/studies?expand")
    assert isinstance(studies, list)
    (study,) = studies
    assert study["MainDicomTags"]["StudyInstanceUID"] == original.study_uid
    assert study["PatientMainDicomTags"]["PatientID"] == original.patient_id
    instances = orthanc_get(http_port, "/instances")
    assert isinstance(instances, list)
    assert len(instances) == 2
    for n, instance in enumerate(instances):
        data = orthanc_get(http_port, f"/instances/{instance}/file")
        assert isinstance(data, bytes)
        path = tmp_path / f"from-orthanc-{n}.dcm"
        path.write_bytes(data)
        assert dciodvfy_errors(path) == []
        check_received(read(path), original)


def test_the_fhir_bundle_validates_with_the_patient_the_study_and_the_report(
    original: OriginalStudy,
) -> None:
    report = signed_report(original, "fr")
    pdf = build_pdf(report)
    bundle = bundle_json(report, pdf)
    parsed = Bundle.model_validate(bundle)  # fhir.resources (R4B): raises if invalid
    assert parsed.type == "collection"
    resources = {e.resource.get_resource_type(): e.resource for e in parsed.entry}
    assert set(resources) == {"Patient", "ImagingStudy", "DiagnosticReport"}
    diagnostic, study, patient = (
        resources["DiagnosticReport"],
        resources["ImagingStudy"],
        resources["Patient"],
    )
    assert diagnostic.status == "final"
    assert diagnostic.code.coding[0].system == "http://loinc.org"
    assert diagnostic.code.coding[0].code == "18748-4"
    assert diagnostic.conclusion == "Pneumopathie lobaire inférieure droite."
    assert diagnostic.subject.reference == f"urn:uuid:{patient.id}"
    assert diagnostic.imagingStudy[0].reference == f"urn:uuid:{study.id}"
    assert study.identifier[0].value == f"urn:oid:{original.study_uid}"
    assert patient.identifier[0].value == original.patient_id
    assert patient.name[0].family == "CompressedSamples"
    form = diagnostic.presentedForm[0]
    assert form.contentType == "application/pdf"
    assert bytes(form.data) == pdf or form.data == pdf
    # Something the model refuses is refused: a report that is not final is still valid,
    # one without a status is not.
    broken = json.loads(json.dumps(bundle))
    del broken["entry"][2]["resource"]["status"]
    with pytest.raises(ValueError, match="status"):
        Bundle.model_validate(broken)


def test_an_unverified_signer_gives_an_unverified_sr(original: OriginalStudy) -> None:
    report = replace(signed_report(original, "en"), verified=False)
    ds = basic_text_sr(report)
    assert ds.VerificationFlag == "UNVERIFIED"
    assert "VerifyingObserverSequence" not in ds


def test_photos_of_films_print_without_a_patient_and_go_to_no_pacs(
    original: OriginalStudy,
) -> None:
    """The pseudonym map knows no patient nor original study for photos of films: the
    report still prints (the sender writes the patient on it), and the PACS and the HIS
    are refused with the reason."""
    report = replace(signed_report(original, "en"), original=NOBODY)
    text, _ = pdf_text(build_pdf(report))
    assert "Patient —" in text
    assert "Pneumopathie lobaire inférieure droite." in text
    with pytest.raises(ReportRefused, match="original identifiers are not on this node"):
        require_original(report)
    assert require_original(signed_report(original, "en")).original == original
