"""Getting studies in: files, folders, zip archives, DICOMDIR media, photos of films.

Each input is either taken (de-identified and written under the intake folder, named
only by its new UIDs) or rejected with a reason that names it; a bad file never stops
the rest of the import. Nothing is written outside the intake folder.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, generate_uid

from tsfnode.config import load_config
from tsfnode.errors import NodeError
from tsfnode.intake.anonymize import Anonymizer, Patient, Result
from tsfnode.intake.owners import StudyOwners
from tsfnode.intake.photos import NotAnImage, photo_to_dicom
from tsfnode.intake.profile import Profile, load_profile
from tsfnode.intake.pseudonyms import PseudonymMap
from tsfnode.intake.review import ReviewBook
from tsfnode.nodedir import NodeDir

MAX_FILE = 4 * 1024**3  # one DICOM file or zip member
MAX_ZIP_TOTAL = 32 * 1024**3
MAX_ZIP_RATIO = 200  # uncompressed / compressed, for members over 10 MB
MAX_DIMENSION = 65535
MAX_FRAMES = 20000
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
# Storage SOP classes whose instances always carry pixel data (PS3.4 B.5): CR, CT, MR,
# US, SC, DX, MG, IO, XA, RF, NM, PET, enhanced CT/MR/US/XA, VL endoscopic/photographic.
IMAGE_STORAGE_CLASSES = frozenset(
    "1.2.840.10008.5.1.4.1.1." + suffix
    for suffix in (
        "1",
        "1.1",
        "1.1.1",
        "1.2",
        "1.2.1",
        "1.3",
        "1.3.1",
        "2",
        "2.1",
        "3.1",
        "4",
        "4.1",
        "6.1",
        "6.2",
        "7",
        "7.1",
        "7.2",
        "7.3",
        "7.4",
        "12.1",
        "12.1.1",
        "12.2",
        "12.2.1",
        "20",
        "128",
        "130",
        "77.1.1.1",
        "77.1.4",
    )
)


# Encapsulated documents (PS3.3 A.45: PDF, CDA, STL, OBJ, MTL): free content that may
# name the patient anywhere in it, which de-identification cannot find; refused.
ENCAPSULATED_DOCUMENT_CLASSES = frozenset(
    "1.2.840.10008.5.1.4.1.1.104." + n for n in ("1", "2", "3", "4", "5")
)
DOCUMENT_REFUSED = (
    "an encapsulated document (PDF, CDA...): its text may identify the patient and cannot"
    " be de-identified (refused)"
)
# Transfer syntaxes that lose information (JPEG baseline and extended, JPEG-LS near
# lossless, JPEG 2000, HTJ2K).
LOSSY_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.203",
    }
)


@dataclass(frozen=True)
class Rejected:
    name: str
    reason: str
    document: bool = False  # an encapsulated document, refused by rule


@dataclass(frozen=True)
class Repeated:
    """An instance whose SOP Instance UID the intake holds already: never replaced
    silently. ``kept``: "first" (the copy held stays; the new one is dropped) or
    "lossless" (the copy held was lossy, the new one is not: the new one replaces it)."""

    name: str
    kept: str
    study_uid: str = ""  # the study (new UID) the instance belongs to


@dataclass
class ImportReport:
    taken: list[Result] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # DICOMDIR indexes and the like
    repeated: list[Repeated] = field(default_factory=list)

    @property
    def studies(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.taken:
            series = out.setdefault(r.study_uid, {})
            series[r.series_uid] = series.get(r.series_uid, 0) + 1
        return out


@dataclass(frozen=True)
class Source:
    """One input: a display name (never logged) and how to read its bytes."""

    name: str
    size: int
    read: Callable[[], bytes]


class Importer:
    def __init__(
        self,
        intake: Path,
        pseudonyms: PseudonymMap,
        profile: Profile | None = None,
        *,
        trust_deidentified: bool = False,
        owner: int | None = None,
    ) -> None:
        """``trust_deidentified``: instances that say tsfnode de-identified them (on the
        sender's computer, with its own pseudonym map) are stored as they are.
        ``owner``: the account whose upload this is, owner of the studies it brings
        (None: the node's own inputs, the listener and the operator's import; owners.py)."""
        self.intake = intake
        self.owners = StudyOwners(intake)
        self.owner = owner
        self.pseudonyms = pseudonyms
        self.anonymizer = Anonymizer(
            profile or load_profile(), secret=pseudonyms.secret, patient_of=pseudonyms.patient_of
        )
        self.trust_deidentified = trust_deidentified
        self.review = ReviewBook(intake)
        self._photo_batch: tuple[Patient, str, str] | None = None
        self._photo_count = 0

    # --- sources ---------------------------------------------------------------------

    def sources(self, paths: list[Path], report: ImportReport) -> Iterator[Source]:
        for path in paths:
            if path.is_dir():
                for root, _dirs, files in os.walk(path):
                    for name in sorted(files):
                        yield from self._file_sources(Path(root) / name, report)
            elif path.exists():
                yield from self._file_sources(path, report)
            else:
                report.rejected.append(Rejected(str(path), "no such file or folder"))

    def _file_sources(self, path: Path, report: ImportReport) -> Iterator[Source]:
        if path.suffix.lower() == ".zip" or _looks_like_zip(path):
            yield from self._zip_sources(path, report)
            return
        size = path.stat().st_size
        yield Source(str(path), size, path.read_bytes)

    def _zip_sources(self, path: Path, report: ImportReport) -> Iterator[Source]:
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            report.rejected.append(Rejected(str(path), "damaged zip archive"))
            return
        total = 0
        with archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                name = f"{path}!{info.filename}"
                pure = PurePosixPath(info.filename.replace("\\", "/"))
                if pure.is_absolute() or ".." in pure.parts:
                    report.rejected.append(Rejected(name, "path leaves the archive (refused)"))
                    continue
                total += info.file_size
                if info.file_size > MAX_FILE or total > MAX_ZIP_TOTAL:
                    report.rejected.append(Rejected(name, "too large once unpacked (refused)"))
                    continue
                if info.file_size > 10 * 1024**2 and info.file_size > MAX_ZIP_RATIO * max(
                    info.compress_size, 1
                ):
                    report.rejected.append(
                        Rejected(name, "compressed too well to be real data (zip bomb?)")
                    )
                    continue
                yield Source(name, info.file_size, _member_reader(path, info.filename))

    # --- one input -------------------------------------------------------------------

    def take(self, source: Source, report: ImportReport) -> None:
        # pydicom warns about odd values by quoting them: those warnings (and its log
        # records, see logs.py) must go nowhere, since the values may identify a patient.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._take(source, report)

    def _take(self, source: Source, report: ImportReport) -> None:
        if source.size == 0:
            report.rejected.append(Rejected(source.name, "empty file"))
            return
        data = source.read()
        try:
            ds = _read_dicom(data)
        except TruncatedFile:
            report.rejected.append(Rejected(source.name, "truncated file (ends too early)"))
            return
        except InvalidDicomError:
            if source.name.lower().endswith(PHOTO_SUFFIXES) or _image_magic(data):
                self._take_photo(source.name, data, report)
            else:
                report.rejected.append(Rejected(source.name, "not a DICOM file or a photo"))
            return
        except Exception as exc:  # pydicom raises many types on damaged files
            report.rejected.append(
                Rejected(source.name, f"damaged DICOM file ({type(exc).__name__})")
            )
            return
        if (
            str(getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", ""))
            == (DICOMDIR_CLASS)
            or "DirectoryRecordSequence" in ds
        ):
            report.skipped.append(source.name)  # the index of a CD: its files come too
            return
        if str(ds.get("SOPClassUID", "")) in ENCAPSULATED_DOCUMENT_CLASSES:
            report.rejected.append(Rejected(source.name, DOCUMENT_REFUSED, document=True))
            return
        try:
            problem = _check_image(ds, len(data))
        except (ValueError, TypeError) as exc:
            problem = f"invalid image attributes ({type(exc).__name__})"
        if problem:
            report.rejected.append(Rejected(source.name, problem))
            return
        try:
            if self.trust_deidentified and _deidentified_by_tsfnode(ds):
                result = _as_is(ds)
            else:
                result = self.anonymizer.anonymize(ds)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            report.rejected.append(Rejected(source.name, f"cannot be de-identified: {exc}"))
            return
        try:
            kept = self._write(ds, result)
        except (ValueError, TypeError, AttributeError, OSError) as exc:
            report.rejected.append(Rejected(source.name, f"cannot be written: {exc}"))
            return
        if kept:
            report.repeated.append(Repeated(source.name, kept, result.study_uid))
            if kept == "first":
                return
        self.pseudonyms.record_study(result.study_uid, result.original_study_uid, result.patient)
        report.taken.append(result)

    def _take_photo(self, name: str, data: bytes, report: ImportReport) -> None:
        if self._photo_batch is None:
            patient = self.pseudonyms.new_patient("photos")
            self._photo_batch = (patient, generate_uid(), generate_uid())
        patient, study, series = self._photo_batch
        self._photo_count += 1
        try:
            ds = photo_to_dicom(
                data,
                patient=patient,
                study_uid=study,
                series_uid=series,
                instance_number=self._photo_count,
            )
        except NotAnImage as exc:
            self._photo_count -= 1
            report.rejected.append(Rejected(name, str(exc)))
            return
        result = Result(
            original_study_uid="",
            study_uid=study,
            series_uid=series,
            sop_uid=str(ds.SOPInstanceUID),
            patient=patient,
            burned_in=["photo of a film: its label may show the patient's name"],
        )
        self.pseudonyms.record_study(study, "", patient)
        self._write(ds, result)
        report.taken.append(result)

    def _write(self, ds: Dataset, result: Result) -> str:
        """Write the instance; "" if new, else what a repeated SOP Instance UID kept
        ("first": nothing written; "lossless": a lossy copy replaced)."""
        if not (self.intake / result.study_uid).is_dir():
            self.owners.make(result.study_uid, self.owner)  # a new study: whose it is
        folder = self.intake / result.study_uid / result.series_uid
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{result.sop_uid}.dcm"
        kept = ""
        if target.exists():
            if _lossy(ds) or not _lossy(dcmread(target, stop_before_pixels=True)):
                return "first"
            kept = "lossless"
        tmp = target.with_suffix(".tmp")
        if ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian:
            _to_little_endian(ds)
        try:
            ds.save_as(tmp, enforce_file_format=True)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, target)
        if result.burned_in:
            self.review.flag(result.study_uid, result.series_uid, result.sop_uid, result.burned_in)
        return kept

    def run(self, paths: list[Path], progress: Callable[[int], None] | None = None) -> ImportReport:
        """Import ``paths``; ``progress`` is called with the bytes of each input done."""
        report = ImportReport()
        try:
            for source in self.sources(paths, report):
                self.take(source, report)
                if progress is not None:
                    progress(source.size)
        finally:
            self.pseudonyms.save()
        return report


def _lossy(ds: Dataset) -> bool:
    """Whether an instance has been through lossy compression (PS3.3 C.7.6.1.1.5), or is
    stored in a lossy transfer syntax."""
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    return str(ds.get("LossyImageCompression", "")).strip() == "01" or syntax in LOSSY_SYNTAXES


def _deidentified_by_tsfnode(ds: Dataset) -> bool:
    return ds.get("PatientIdentityRemoved") == "YES" and str(
        ds.get("DeidentificationMethod", "")
    ).startswith("tsfnode:")


def _as_is(ds: Dataset) -> Result:
    from tsfnode.intake.burnedin import burned_in_reasons

    return Result(
        original_study_uid="",
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        sop_uid=str(ds.SOPInstanceUID),
        patient=Patient(str(ds.get("PatientID", "")), 0),
        burned_in=burned_in_reasons(ds),
    )


def _to_little_endian(ds: Dataset) -> None:
    """Explicit VR Big Endian (retired) becomes Explicit VR Little Endian: the pixel
    values are decoded and written back in little-endian order."""
    bits = int(ds.get("BitsAllocated", 8) or 8)
    if "PixelData" in ds and bits in (16, 32, 64):
        raw = bytes(ds.PixelData)
        raw = raw[: len(raw) - len(raw) % (bits // 8)]
        ds.PixelData = (
            numpy.frombuffer(raw, dtype=f">u{bits // 8}").astype(f"<u{bits // 8}").tobytes()
        )
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.set_original_encoding(False, True)


def _member_reader(path: Path, member: str) -> Callable[[], bytes]:
    def read() -> bytes:
        with zipfile.ZipFile(path) as archive, archive.open(member) as f:
            return f.read(MAX_FILE + 1)[:MAX_FILE]

    return read


def _looks_like_zip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _image_magic(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"


class TruncatedFile(ValueError):
    """The file ends before its data set does."""


def _read_dicom(data: bytes) -> Dataset:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = dcmread(io.BytesIO(data))
        except InvalidDicomError:
            ds = dcmread(io.BytesIO(data), force=True)  # no preamble, as on old CDs
            if "SOPClassUID" not in ds and "DirectoryRecordSequence" not in ds:
                raise
        for elem in ds.iterall():
            elem.value  # noqa: B018 - decode every value while warnings are caught
    if any("End of file" in str(w.message) or "truncat" in str(w.message).lower() for w in caught):
        raise TruncatedFile("the file ends before its data set")
    return ds


def _check_image(ds: Dataset, size: int) -> str | None:
    """A reason to refuse an image whose dimensions or pixel data make no sense."""
    if "SOPInstanceUID" not in ds or "StudyInstanceUID" not in ds:
        return "not an image or document of a study (no SOP Instance or Study UID)"
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        image_class = str(ds.get("SOPClassUID", "")) in IMAGE_STORAGE_CLASSES
        if image_class or ("Rows" in ds and "Columns" in ds):
            return "an image without pixel data (cut short, or a header only)"
        return None
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if not (0 < rows <= MAX_DIMENSION and 0 < cols <= MAX_DIMENSION and 0 < frames <= MAX_FRAMES):
        return f"absurd image dimensions ({rows} x {cols}, {frames} frames)"
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    compressed = bool(syntax is not None and syntax.is_compressed)
    if not compressed:
        bits = int(ds.get("BitsAllocated", 8) or 8)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        expected = rows * cols * frames * samples * bits // 8
        if len(ds.PixelData) < expected:
            return f"truncated pixel data ({len(ds.PixelData)} of {expected} bytes)"
    return None


def importer_for(
    directory: Path, *, trust_deidentified: bool = False, owner: int | None = None
) -> Importer:
    """The importer of a node directory, with the profile its config asks for; the
    studies it makes are ``owner``'s (an account's id; None: the node's)."""
    node = NodeDir(directory)
    if not node.config.exists():
        raise NodeError(f"{directory} is not a node directory: create one with 'tsfnode init'")
    config = load_config(node.config)
    profile = load_profile(safe_private=config.intake_keep_private)
    return Importer(
        node.intake,
        PseudonymMap(node.pseudonyms),
        profile,
        trust_deidentified=trust_deidentified,
        owner=owner,
    )
