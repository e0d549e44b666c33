"""Getting studies in: files, folders, zip archives, DICOMDIR media, photos of films.

Each input is either taken (de-identified and written under the intake folder, named
only by its new UIDs) or rejected with a reason that names it (a catalogue key, said in
French or English); a bad file, or a damaged member of an archive, never stops the rest
of the import. Nothing is written outside the intake folder.

Everything that comes in is de-identified here, whatever it says of itself (a file that
claims to be de-identified already is de-identified again: harmless, its pseudonymous
UIDs become this node's, consistently). The folders and files of the intake are named
only by UIDs the node made (``2.25.`` and a keyed hash, separated per uploading account:
anonymize.py ``uid_context``); a Study, Series or SOP Instance UID that is not a valid
DICOM UID is refused before anything is done with it; an import never replaces a file:
an instance already there stays as it is, and a study another account owns is never
written to.
"""

from __future__ import annotations

import io
import os
import secrets
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy
from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    generate_uid,
)

from tsfnode.config import load_config
from tsfnode.errors import NodeError
from tsfnode.i18n import N_, texts
from tsfnode.intake.anonymize import Anonymizer, Patient, Result
from tsfnode.intake.journey import Preparer
from tsfnode.intake.owners import Owner, StudyOwners
from tsfnode.intake.photos import NotAnImage, photo_to_dicom
from tsfnode.intake.profile import Profile, load_profile
from tsfnode.intake.pseudonyms import PseudonymMap
from tsfnode.intake.review import ReviewBook
from tsfnode.intake.uids import DICOM_ROOT, is_node_made, is_uid
from tsfnode.intake.written import write_file
from tsfnode.nodedir import NodeDir

MAX_FILE = 4 * 1024**3  # one DICOM file or zip member
MAX_ZIP_TOTAL = 32 * 1024**3
MAX_ZIP_RATIO = 200  # uncompressed / compressed, for members over 10 MB
MAX_DIMENSION = 65535
MAX_FRAMES = 20000
# Files in one import (an upload, a web batch, an archive): a CT or MR CD holds 1,500 to
# 3,000; the cap bounds the work one upload can ask for (config: [intake] max_files).
MAX_FILES = 5000
# Study, Series and SOP Instance UID: they name the intake's folders and files (as the
# node's new UIDs), so they must be UIDs before anything is done with them.
PATH_UIDS = (
    (0x0020000D, "StudyInstanceUID"),
    (0x0020000E, "SeriesInstanceUID"),
    (0x00080018, "SOPInstanceUID"),
)
# What reading a damaged zip member raises: bad CRC, a header that does not match the
# central directory, a lying size, an unknown compression or an encrypted member.
ZIP_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
)
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
    """An input not taken: its name (never logged) and why, as a catalogue key (with
    ``values`` for its ``{fields}``): ``reason`` in English, ``say(lang)`` in any."""

    name: str
    key: str
    values: Mapping[str, object] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return self.say("en")

    def say(self, lang: str) -> str:
        return texts(lang)(self.key, **self.values)

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
    member: bool = False  # a member of a zip archive


class Importer:
    def __init__(
        self,
        intake: Path,
        pseudonyms: PseudonymMap,
        profile: Profile | None = None,
        *,
        owner: int | None = None,
        max_files: int | None = MAX_FILES,
        prepare: bool = False,
    ) -> None:
        """``owner``: the account whose upload this is, owner of the studies it brings
        (None: the node's own inputs, the listener and the operator's import; owners.py);
        its UIDs are its own (``uid_context``). ``max_files``: the most inputs (files
        and archive members) one run takes; beyond it they are refused, named (None:
        no bound, for the operator's own import). ``prepare``: each instance written by
        a ``run`` of several files is encoded for the journey meanwhile, on the other
        cores (journey.py), so that sealing it later does not encode it again."""
        self.intake = intake
        self.owners = StudyOwners(intake)
        self.owner = owner
        self.max_files = max_files if max_files is not None else 2**62
        self._files = 0
        # The files the current run() wrote: the only ones it may replace (None between
        # runs: the listener's take() of one instance replaces nothing).
        self._made: set[Path] | None = None
        self.prepare = prepare
        self._preparer: Preparer | None = None  # during a run() that prepares
        self.pseudonyms = pseudonyms
        self.anonymizer = Anonymizer(
            profile or load_profile(),
            secret=pseudonyms.secret,
            patient_of=pseudonyms.patient_of,
            uid_context="" if owner is None else f"account:{owner}",
        )
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
                report.rejected.append(Rejected(str(path), N_("intake_no_such_file")))

    def _file_sources(self, path: Path, report: ImportReport) -> Iterator[Source]:
        if path.suffix.lower() == ".zip" or _looks_like_zip(path):
            yield from self._zip_sources(path, report)
            return
        if self._files >= self.max_files:
            report.rejected.append(
                Rejected(
                    str(path),
                    N_("intake_too_many_files"),
                    {"count": self._files + 1, "limit": self.max_files},
                )
            )
            return
        self._files += 1
        size = path.stat().st_size
        yield Source(str(path), size, path.read_bytes)

    def _zip_sources(self, path: Path, report: ImportReport) -> Iterator[Source]:
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            report.rejected.append(Rejected(str(path), N_("intake_zip_damaged")))
            return
        total = 0
        with archive:  # open for the whole walk: each member is read from it, once
            members = [info for info in archive.infolist() if not info.is_dir()]
            if self._files + len(members) > self.max_files:
                report.rejected.append(
                    Rejected(
                        str(path),
                        N_("intake_too_many_files"),
                        {"count": len(members), "limit": self.max_files},
                    )
                )
                return
            self._files += len(members)
            for info in members:
                name = f"{path}!{info.filename}"
                pure = PurePosixPath(info.filename.replace("\\", "/"))
                if pure.is_absolute() or ".." in pure.parts:
                    report.rejected.append(Rejected(name, N_("intake_zip_path")))
                    continue
                total += info.file_size
                if info.file_size > MAX_FILE or total > MAX_ZIP_TOTAL:
                    report.rejected.append(Rejected(name, N_("intake_too_large")))
                    continue
                if info.file_size > 10 * 1024**2 and info.file_size > MAX_ZIP_RATIO * max(
                    info.compress_size, 1
                ):
                    report.rejected.append(Rejected(name, N_("intake_zip_bomb")))
                    continue
                yield Source(name, info.file_size, _member_reader(archive, info), member=True)

    # --- one input -------------------------------------------------------------------

    def take(self, source: Source, report: ImportReport) -> None:
        # pydicom warns about odd values by quoting them: those warnings (and its log
        # records, see logs.py) must go nowhere, since the values may identify a patient.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._take(source, report)

    def _take(self, source: Source, report: ImportReport) -> None:
        if source.size == 0:
            report.rejected.append(Rejected(source.name, N_("intake_empty")))
            return
        try:
            data = source.read()
        except ZIP_READ_ERRORS as exc:
            key = N_("intake_zip_member_damaged") if source.member else N_("intake_unreadable")
            report.rejected.append(Rejected(source.name, key, {"error": type(exc).__name__}))
            return
        if not data:
            report.rejected.append(Rejected(source.name, N_("intake_empty")))
            return
        try:
            ds = _read_dicom(data)
        except TruncatedFile:
            report.rejected.append(Rejected(source.name, N_("intake_truncated_file")))
            return
        except InvalidDicomError:
            if source.name.lower().endswith(PHOTO_SUFFIXES) or _image_magic(data):
                self._take_photo(source.name, data, report)
            else:
                report.rejected.append(Rejected(source.name, N_("intake_not_dicom")))
            return
        except Exception as exc:  # pydicom raises many types on damaged files
            report.rejected.append(
                Rejected(source.name, N_("intake_damaged_dicom"), {"error": type(exc).__name__})
            )
            return
        try:  # elements are decoded when first read: a damaged one raises here
            index = (
                str(getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", ""))
                == DICOMDIR_CLASS
                or "DirectoryRecordSequence" in ds
            )
            sop_class = str(ds.get("SOPClassUID", ""))
        except Exception as exc:  # pydicom raises many types on damaged values
            report.rejected.append(
                Rejected(source.name, N_("intake_damaged_dicom"), {"error": type(exc).__name__})
            )
            return
        if index:
            report.skipped.append(source.name)  # the index of a CD: its files come too
            return
        if sop_class in ENCAPSULATED_DOCUMENT_CLASSES:
            report.rejected.append(
                Rejected(source.name, N_("intake_document_refused"), document=True)
            )
            return
        try:
            problem = _check_uids(ds) or _check_image(ds, len(data))
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
            problem = (N_("intake_bad_attributes"), {"error": type(exc).__name__})
        if problem:
            report.rejected.append(Rejected(source.name, problem[0], problem[1]))
            return
        try:
            result = self.anonymizer.anonymize(ds)
        except Exception as exc:  # a damaged value met while decoding it; never logged
            report.rejected.append(
                Rejected(source.name, N_("intake_not_deidentified"), {"error": type(exc).__name__})
            )
            return
        try:
            not_written, kept = self._write(ds, result)
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError, OSError) as exc:
            report.rejected.append(
                Rejected(source.name, N_("intake_not_written"), {"error": type(exc).__name__})
            )
            return
        if not_written is not None:
            report.rejected.append(Rejected(source.name, not_written))
            return
        if kept:
            report.repeated.append(Repeated(source.name, kept, result.study_uid))
            if kept == "first":
                return
        self.pseudonyms.record_study(
            result.study_uid, result.original_study_uid, result.patient, result.original
        )
        report.taken.append(result)

    def _take_photo(self, name: str, data: bytes, report: ImportReport) -> None:
        if self._photo_batch is None:
            patient = self.pseudonyms.new_patient("photos")
            self._photo_batch = (patient, generate_uid(prefix=None), generate_uid(prefix=None))
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
            report.rejected.append(Rejected(name, exc.key, exc.values))
            return
        result = Result(
            original_study_uid="",
            study_uid=study,
            series_uid=series,
            sop_uid=str(ds.SOPInstanceUID),
            patient=patient,
            burned_in=["photo of a film: its label may show the patient's name"],
        )
        problem, kept = self._write(ds, result)
        if problem is not None:
            report.rejected.append(Rejected(name, problem))
            return
        if kept:
            report.repeated.append(Repeated(name, kept, study))
            if kept == "first":
                return
        self.pseudonyms.record_study(study, "", patient)
        report.taken.append(result)

    def _write(self, ds: Dataset, result: Result) -> tuple[str | None, str]:
        """Write the de-identified instance at ``intake/STUDY/SERIES/SOP.dcm``, named by
        the UIDs the node made. Returns (why it was not written, as a catalogue key, or
        None; what a repeated SOP Instance UID kept: "" when new, "first" when the copy
        held stays and nothing is written, "lossless" when a lossy copy held was
        replaced by a lossless one). A study another owner holds is not written to; a
        file already there is replaced only if this run made it, or by a lossless copy
        of a lossy one in the owner's own study."""
        uids = (result.study_uid, result.series_uid, result.sop_uid)
        if not all(is_node_made(uid) for uid in uids):
            raise ValueError("the new UIDs are not the node's")  # never: anonymize.py made them
        self.owners.make(result.study_uid, self.owner)  # a new study: whose it is
        if self.owners.owner(result.study_uid) != Owner(self.owner):
            return N_("intake_study_not_yours"), ""
        folder = self.intake / result.study_uid / result.series_uid
        folder.mkdir(exist_ok=True)
        target = folder / f"{result.sop_uid}.dcm"
        tmp = folder / f".{result.sop_uid}.{secrets.token_hex(8)}.tmp"
        kept = ""
        if ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian:
            _to_little_endian(ds)
        try:
            with open(tmp, "wb") as f:
                write_file(ds, f)  # what ds.save_as writes, quicker: written.py
            try:
                os.link(tmp, target)  # made only if nothing is there: never replaces
            except FileExistsError:
                if self._made is not None and target in self._made:
                    os.replace(tmp, target)  # made by this run (a CD's copy in two syntaxes)
                elif not _lossy(ds) and _lossy(dcmread(target, stop_before_pixels=True)):
                    os.replace(tmp, target)  # a lossless copy of a lossy one held
                    kept = "lossless"
                else:
                    return None, "first"  # held already: the first copy stays
            if self._made is not None:
                self._made.add(target)
            if self._preparer is not None:
                self._preparer.submit(target)
        finally:
            tmp.unlink(missing_ok=True)
        if result.burned_in:
            self.review.flag(result.study_uid, result.series_uid, result.sop_uid, result.burned_in)
        return None, kept

    def run(self, paths: list[Path], progress: Callable[[int], None] | None = None) -> ImportReport:
        """Import ``paths``; ``progress`` is called with the bytes of each input done."""
        report = ImportReport()
        self._files, self._made = 0, set()
        self._preparer = Preparer() if self.prepare else None
        try:
            for source in self.sources(paths, report):
                self.take(source, report)
                if progress is not None:
                    progress(source.size)
            if self._preparer is not None:
                self._preparer.close()  # the study returned prepared
        finally:
            self._made = None
            self.pseudonyms.save()
            if self._preparer is not None:
                self._preparer.abandon()  # nothing left after close; else not waited for
                self._preparer = None
        return report


def _lossy(ds: Dataset) -> bool:
    """Whether an instance has been through lossy compression (PS3.3 C.7.6.1.1.5), or is
    stored in a lossy transfer syntax."""
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    return str(ds.get("LossyImageCompression", "")).strip() == "01" or syntax in LOSSY_SYNTAXES


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


def _member_reader(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> Callable[[], bytes]:
    """Reads ``member`` from the open ``archive`` (opening the archive again for each
    member parsed its whole central directory each time: 3,000 members took a minute)."""

    def read() -> bytes:
        with archive.open(member) as f:
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
        as_read = dict(ds._dict)
        for elem in ds.iterall():
            elem.value  # noqa: B018 - decode every value while warnings are caught
    if any("End of file" in str(w.message) or "truncat" in str(w.message).lower() for w in caught):
        raise TruncatedFile("the file ends before its data set")
    _keep_as_read(ds, as_read)
    return ds


# Elements read as text before and during de-identification (elements.text_of: the
# original UIDs, dates and numbers kept in the pseudonym map, what the burned-in check
# looks at): decoded, as they always were (the text of a decoded multi-valued element is
# not its bytes').
READ_AS_TEXT = frozenset(
    {
        0x00080016,  # SOP Class UID
        0x00080018,  # SOP Instance UID
        0x00080020,  # Study Date
        0x00080030,  # Study Time
        0x00080050,  # Accession Number
        0x00080060,  # Modality
        0x00080064,  # Conversion Type
        0x00100040,  # Patient's Sex
        0x0020000D,  # Study Instance UID
        0x0020000E,  # Series Instance UID
        0x00200010,  # Study ID
        0x00280301,  # Burned In Annotation
    }
)


def _keep_as_read(ds: Dataset, as_read: dict[BaseTag, DataElement | RawDataElement]) -> None:
    """Put back, in place of their decoded form, the top-level elements of ``ds`` whose
    bytes can be written again as read (``as_read``: its elements before decoding):
    de-identification decodes only those it changes, and writing copies the others'
    bytes instead of encoding their values again (most of an intake file's writing).
    Only where the decoded element has the VR the bytes said (or, in an implicit VR file,
    the dictionary's), so that de-identification sees the same VR (an element stored as
    UN with a known tag is decoded, as a Person Name or a date, and treated as one), not
    sequences (their items are walked), and not in a big-endian file (written little
    endian: every value encoded again)."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax == DeflatedExplicitVRLittleEndian:
        syntax = ExplicitVRLittleEndian  # read inflated, written inflated
    if syntax is None:  # no file meta: written as read (anonymize.py _new_file_meta)
        written = ds.original_encoding
    elif syntax.is_transfer_syntax:
        written = (syntax.is_implicit_VR, syntax.is_little_endian)
    else:
        return  # a syntax pydicom does not know
    if written[1] is not True:
        return  # big endian: made little endian, every value encoded again
    for tag, raw in as_read.items():
        if not isinstance(raw, RawDataElement) or raw.VR in ("SQ", "UN") or tag in READ_AS_TEXT:
            continue
        if (raw.is_implicit_VR, raw.is_little_endian) != written:
            continue  # bytes in another encoding than the file says (pydicom read them)
        decoded = ds._dict.get(tag)
        if decoded is None or decoded.VR == "SQ":
            continue
        if decoded.VR == (raw.VR or _dictionary_vr(int(tag))):
            ds._dict[tag] = raw


def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


Problem = tuple[str, dict[str, object]]  # a catalogue key and its values


def _check_uids(ds: Dataset) -> Problem | None:
    """A reason to refuse an instance whose Study, Series or SOP Instance UID is missing
    or is not a DICOM UID (PS3.5 §9.1), or is one of DICOM's own (kept as they are by
    de-identification: they would name the same folder for everyone)."""
    if "SOPInstanceUID" not in ds or "StudyInstanceUID" not in ds:
        return N_("intake_not_an_instance"), {}
    for tag, keyword in PATH_UIDS:
        element = ds.get(tag)
        value = "" if element is None else element.value
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        text = value.strip("\x00 ") if isinstance(value, str) else None
        if not text or not is_uid(text) or text.startswith(DICOM_ROOT):
            return N_("intake_invalid_uid"), {"attribute": keyword}
    return None


def _check_image(ds: Dataset, size: int) -> Problem | None:
    """A reason to refuse an image whose dimensions or pixel data make no sense."""
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        image_class = str(ds.get("SOPClassUID", "")) in IMAGE_STORAGE_CLASSES
        if image_class or ("Rows" in ds and "Columns" in ds):
            return N_("intake_no_pixels"), {}
        return None
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if not (0 < rows <= MAX_DIMENSION and 0 < cols <= MAX_DIMENSION and 0 < frames <= MAX_FRAMES):
        return N_("intake_absurd_dimensions"), {"rows": rows, "columns": cols, "frames": frames}
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    compressed = bool(syntax is not None and syntax.is_compressed)
    if not compressed:
        bits = int(ds.get("BitsAllocated", 8) or 8)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        expected = rows * cols * frames * samples * bits // 8
        if len(ds.PixelData) < expected:
            return N_("intake_truncated_pixels"), {"size": len(ds.PixelData), "expected": expected}
    return None


def importer_for(directory: Path, *, owner: int | None = None, prepare: bool = False) -> Importer:
    """The importer of a node directory, with the profile and the limits its config asks
    for; the studies it makes are ``owner``'s (an account's id; None: the node's, whose
    operator's import is not bounded in files: ``[intake] max_files`` is for uploads);
    ``prepare``: encode what it writes for the journey meanwhile (``Importer``)."""
    node = NodeDir(directory)
    if not node.config.exists():
        raise NodeError(f"{directory} is not a node directory: create one with 'tsfnode init'")
    config = load_config(node.config)
    profile = load_profile(safe_private=config.intake_keep_private)
    return Importer(
        node.intake,
        PseudonymMap(node.pseudonyms),
        profile,
        owner=owner,
        max_files=config.intake_max_files if owner is not None else None,
        prepare=prepare,
    )
