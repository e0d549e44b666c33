"""The report as DICOM objects for the hospital's PACS, in the original study (its
Study Instance UID and patient as the hospital knows them, from the pseudonym map at the
sender's node), each in a new series:

- an Encapsulated PDF (PS3.3 A.45.1, SOP Class 1.2.840.10008.5.1.4.1.1.104.1): the
  printed report (``pdf.build_pdf``), to show as it is;
- a Basic Text SR (PS3.3 A.35.1, SOP Class 1.2.840.10008.5.1.4.1.1.88.11): the question,
  findings, impression and recommendations as text, the reader as the person observer,
  the study's original instances in the Current Requested Procedure Evidence Sequence;
  VERIFIED with the reader as verifying observer when the signature checks and its
  signer is an attested reader, else UNVERIFIED.

Their UIDs are derived from the report's digest: the same report sent twice is the same
instances, which a PACS keeps once.
"""

from __future__ import annotations

import datetime as dt

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from tsfnode.hospital.report import ReportOut

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
MANUFACTURER = "tsfnode"
SERIES_NUMBERS = {ENCAPSULATED_PDF: 9901, BASIC_TEXT_SR: 9902}


def _uid(report: ReportOut, what: str) -> str:
    return str(generate_uid(prefix=None, entropy_srcs=[report.digest.hex(), what]))


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue = value
    code.CodingSchemeDesignator = scheme
    code.CodeMeaning = meaning
    return code


def _moment(ms: int) -> tuple[str, str]:
    at = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return at.strftime("%Y%m%d"), at.strftime("%H%M%S")


def _person(name: str) -> str:
    """A display name ("Dr Marie Lectrice") as a DICOM person name, best effort: its
    last word as the family name, the rest as given names (PS3.5 6.2.1), at most 64
    characters."""
    words = name.replace("^", " ").replace("\\", " ").replace("=", " ").split()
    if len(words) < 2:
        return " ".join(words)[:64]
    return f"{words[-1]}^{' '.join(words[:-1])}"[:64]


def _common(report: ReportOut, sop_class: str, what: str, modality: str) -> Dataset:
    """Patient, General Study, the series, General Equipment and SOP Common modules."""
    original = report.original
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _uid(report, what + "/instance")
    date, time = _moment(report.signed_ms)
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    # Patient (C.7.1.1), as the hospital knows them
    ds.PatientName = original.patient_name
    ds.PatientID = original.patient_id
    if original.issuer:
        ds.IssuerOfPatientID = original.issuer
    ds.PatientBirthDate = original.birth_date
    ds.PatientSex = original.sex if original.sex in ("M", "F", "O") else ""
    # General Study (C.7.2.1): the original study
    ds.StudyInstanceUID = original.study_uid
    ds.StudyDate = original.study_date
    ds.StudyTime = original.study_time
    ds.ReferringPhysicianName = ""
    ds.StudyID = original.study_id
    ds.AccessionNumber = original.accession
    # The new series
    ds.Modality = modality
    ds.SeriesInstanceUID = _uid(report, what + "/series")
    ds.SeriesNumber = SERIES_NUMBERS[sop_class]
    ds.InstanceNumber = 1 + report.addenda
    ds.SeriesDescription = "Second opinion (tsfnode)"
    # General Equipment (C.7.5.1)
    ds.Manufacturer = MANUFACTURER
    ds.ContentDate, ds.ContentTime = date, time
    return ds


def _file_meta(ds: Dataset) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta


def encapsulated_pdf(report: ReportOut, pdf: bytes) -> Dataset:
    """The printed report as an Encapsulated PDF instance (PS3.3 A.45.1)."""
    ds = _common(report, ENCAPSULATED_PDF, "pdf", "DOC")
    # SC Equipment (C.8.6.1)
    ds.ConversionType = "WSD"
    # Encapsulated Document (C.24.2)
    ds.AcquisitionDateTime = ds.ContentDate + ds.ContentTime
    ds.BurnedInAnnotation = "YES"  # the patient's name is printed on it
    ds.RecognizableVisualFeatures = "NO"
    ds.DocumentTitle = "Second opinion report"
    ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic imaging study")])
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    if len(pdf) % 2:
        pdf += b"\x00"  # OB values have an even length (PS3.5 7.1.1)
    ds.EncapsulatedDocument = pdf
    ds.EncapsulatedDocumentLength = len(pdf) - (1 if pdf.endswith(b"\x00") else 0)
    _file_meta(ds)
    return ds


def _text_item(value: str, meaning: str, text: str, relationship: str = "CONTAINS") -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = Sequence([_code(value, "DCM", meaning)])
    item.TextValue = text
    return item


def _evidence(report: ReportOut) -> Sequence:
    """The study's original instances (Hierarchical SOP Instance Reference Macro,
    PS3.3 C.17.2.1)."""
    by_series: dict[str, list[Dataset]] = {}
    for series, sop_class, sop in report.original.instances:
        ref = Dataset()
        ref.ReferencedSOPClassUID = sop_class
        ref.ReferencedSOPInstanceUID = sop
        by_series.setdefault(series, []).append(ref)
    study = Dataset()
    study.StudyInstanceUID = report.original.study_uid
    items = []
    for series, refs in sorted(by_series.items()):
        item = Dataset()
        item.SeriesInstanceUID = series
        item.ReferencedSOPSequence = Sequence(refs)
        items.append(item)
    study.ReferencedSeriesSequence = Sequence(items)
    return Sequence([study])


def basic_text_sr(report: ReportOut) -> Dataset:
    """The report as a Basic Text SR (PS3.3 A.35.1)."""
    ds = _common(report, BASIC_TEXT_SR, "sr", "SR")
    # SR Document Series (C.17.1)
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    # SR Document General (C.17.2)
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED" if report.verified else "UNVERIFIED"
    if report.verified:
        observer = Dataset()
        observer.VerifyingObserverName = _person(report.reader_name)
        observer.VerifyingOrganization = "Teleradiology (tsfnode)"
        observer.VerificationDateTime = ds.ContentDate + ds.ContentTime
        observer.VerifyingObserverIdentificationCodeSequence = Sequence()
        ds.VerifyingObserverSequence = Sequence([observer])
    ds.PerformedProcedureCodeSequence = Sequence()
    if report.original.instances:
        ds.CurrentRequestedProcedureEvidenceSequence = _evidence(report)
    # SR Document Content (C.17.3): the root container and its items
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic Imaging Report")])
    ds.ContinuityOfContent = "SEPARATE"
    observer_name = Dataset()
    observer_name.RelationshipType = "HAS OBS CONTEXT"
    observer_name.ValueType = "PNAME"
    observer_name.ConceptNameCodeSequence = Sequence(
        [_code("121008", "DCM", "Person Observer Name")]
    )
    observer_name.PersonName = _person(report.reader_name)
    items = [observer_name]
    if report.question:
        items.append(_text_item("121062", "Request", report.question))
    if report.findings:
        items.append(_text_item("121071", "Finding", report.findings))
    if report.impression:
        items.append(_text_item("121073", "Impression", report.impression))
    if report.recommendations:
        items.append(_text_item("121075", "Recommendation", report.recommendations))
    ds.ContentSequence = Sequence(items)
    _file_meta(ds)
    return ds
