"""A case's images for the reader's own workstation: a zip with a DICOMDIR (PS3.10 media
for OsiriX/Horos, Weasis, RadiAnt), or a C-STORE to a DICOM node (pynetdicom).

The zip is made in one of two forms: as stored (each instance in its stored transfer
syntax, JPEG-LS mostly: small, for a workstation), or "for CD" (``CD_PROFILE``: the
General Purpose CD-R Interchange profile STD-GEN-CD, PS3.11 Annex D): every instance in
Explicit VR Little Endian uncompressed (the only syntax the profile allows), file IDs of
at most 8 uppercase characters per component, 4 levels (PT/ST/SE/IM), the DICOMDIR with
its PATIENT, STUDY, SERIES and IMAGE records, and no other file: burnt as it is, any
DICOM viewer reads it.

The files are the case's de-identified instances as this node holds them. The DICOMDIR's
records need a few values that de-identification may have emptied (PS3.3 F.5: Patient
ID, Study Date, Time and ID, Series and Instance Number); the exported copies get
stand-ins for those, invented as dcmmkdir's +I does, and nothing else changes.
"""

from __future__ import annotations

import ipaddress
import socket
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread
from pydicom.fileset import FileSet
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

CD_PROFILE = "STD-GEN-CD"
STORE_OK = {0x0000, 0xB000, 0xB006, 0xB007}  # success, and the warnings of PS3.4 B.2.3


class ExportError(Exception):
    """What stopped an export, said so that the reader can act on it."""


def _stand_ins(ds: Dataset, case_tag: str, series_number: int, instance_number: int) -> bool:
    """Fill the values the DICOMDIR's records need; True if any was missing."""
    changed = False

    def fill(keyword: str, value: object) -> None:
        nonlocal changed
        if not str(ds.get(keyword, "") or "").strip():
            setattr(ds, keyword, value)
            changed = True

    fill("PatientID", f"TSF-{case_tag}")
    dates = (ds.get(k) for k in ("SeriesDate", "AcquisitionDate", "ContentDate"))
    fill("StudyDate", next((str(d) for d in dates if d), "19000101"))
    fill("StudyTime", "000000")
    fill("StudyID", "1")
    fill("Modality", "OT")
    fill("SeriesNumber", series_number)
    fill("InstanceNumber", instance_number)
    return changed


def build_zip(files: list[Path], out: Path, *, case_tag: str, profile: str = "") -> int:
    """Write ``out``: the files in a PS3.10 file-set (DICOMDIR at the top, files in
    PT*/ST*/SE*/IM*), zipped without compression (the images are compressed already).
    ``profile`` CD_PROFILE: every file decompressed to Explicit VR Little Endian
    (STD-GEN-CD). Returns the number of instances; ExportError if there is none."""
    series_numbers: dict[str, int] = {}
    in_series: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="export-", dir=out.parent) as work:
        staged = Path(work) / "staged"
        staged.mkdir()
        fs = FileSet()
        fs.ID = "TSF" + case_tag[:13].upper()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for n, path in enumerate(files):
                header = dcmread(path, stop_before_pixels=True)
                series = str(header.get("SeriesInstanceUID", ""))
                number = series_numbers.setdefault(series, len(series_numbers) + 1)
                in_series[series] = in_series.get(series, 0) + 1
                native = header.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
                changed = _stand_ins(header, case_tag, number, in_series[series])
                if changed or (profile == CD_PROFILE and not native):
                    ds = dcmread(path)  # the whole file, only for a copy that changes
                    _stand_ins(ds, case_tag, number, in_series[series])
                    if profile == CD_PROFILE:
                        _as_explicit_little_endian(ds)
                    copy = staged / f"{n:06d}.dcm"
                    ds.save_as(copy, enforce_file_format=True)
                    fs.add(copy)
                else:
                    fs.add(path)
        if not len(fs):
            raise ExportError("this case holds no DICOM image to export")
        root = Path(work) / "fileset"
        try:
            fs.write(root)
        finally:
            fs._stage["t"].cleanup()  # pydicom's staging folder, else left until collected
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
            for item in sorted(root.rglob("*")):
                if item.is_file():
                    archive.write(item, item.relative_to(root).as_posix())
        return len(files)


def _as_explicit_little_endian(ds: Dataset) -> None:
    """``ds`` decompressed (the pixels as stored, decoded) in Explicit VR Little Endian;
    ExportError naming the syntax if it cannot be decoded here."""
    stored = ds.file_meta.TransferSyntaxUID
    if "PixelData" in ds and stored.is_compressed:
        try:
            ds.decompress(generate_instance_uid=False)
        except Exception as exc:  # no decoder for the syntax, a damaged codestream
            raise ExportError(f"an image in {stored.name} cannot be decoded here: {exc}") from None
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


@dataclass(frozen=True)
class Destination:
    """A DICOM node a person sends to (their workstation, their PACS)."""

    label: str
    ae_title: str
    host: str
    port: int
    calling_ae: str


def check_destination(label: str, ae_title: str, host: str, port: str, calling: str) -> str:
    """The problem with a destination typed in a form ("" if none): AE titles of 1 to 16
    ASCII characters without backslash (PS3.5 6.2), a host name or address, a port."""
    for name, value in (("AE title", ae_title), ("calling AE title", calling)):
        text = value.strip()
        if not text or len(text) > 16 or not text.isascii() or "\\" in text:
            return f"{name} {value!r}: 1 to 16 ASCII characters, without backslash"
    if not label.strip() or len(label) > 60:
        return "name: 1 to 60 characters"
    if not host.strip() or len(host) > 253 or any(c.isspace() for c in host):
        return f"host {host!r}: a host name or an IP address"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"port {port!r}: a number from 1 to 65535"
    return ""


def allowed(host: str, port: int, networks: tuple[str, ...]) -> None:
    """ExportError unless every address of ``host`` is in ``networks`` (empty: any)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ExportError(f"{host}: cannot resolve this name ({exc.strerror})") from None
    if not networks:
        return
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not any(address in net for net in nets):
            raise ExportError(
                f"{host} ({address}) is outside the networks this node sends to "
                "([dicom] send_networks): ask the node's administrator"
            )


MAX_CONTEXTS = 128  # presentation contexts in one association (PS3.8 9.3.2.2: ids 1 to 255)
NATIVE: tuple[str, ...] = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
SENT = ("sent", "decompressed")  # the outcomes of an image that arrived
FAILURES = ("refused", "no_context", "not_decoded", "error", "not_sent")  # of one that did not


@dataclass(frozen=True)
class FileResult:
    """What became of one image of a sending: ``number`` (1-based, in the order sent),
    its SOP class, ``outcome`` (one of SENT, or one of FAILURES: "refused": a failure
    status, "no_context": the workstation takes this class in no syntax, "not_decoded": it needed
    decompressing and could not be, "error": it could not be sent, "not_sent": the
    association ended first) and ``detail`` (the status, syntax or error's name)."""

    number: int
    sop_class: str
    outcome: str
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        return {"n": self.number, "class": self.sop_class, "outcome": self.outcome,
                "detail": self.detail}  # fmt: skip


@dataclass
class Progress:
    total: int
    sent: int = 0
    failed: int = 0
    error: str = ""
    results: list[FileResult] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, result: FileResult) -> None:
        with self.lock:
            self.results.append(result)
            if result.outcome in SENT:
                self.sent += 1
            else:
                self.failed += 1

    @property
    def failures(self) -> list[FileResult]:
        with self.lock:
            return [r for r in self.results if r.outcome not in SENT]


Context = tuple[str, tuple[str, ...]]  # (SOP class, transfer syntaxes)


def plan_contexts(stored: Iterable[tuple[str, str]]) -> list[list[Context]]:
    """The presentation contexts to propose for images stored as (SOP class, transfer
    syntax), one list per association: for each class, one context per stored syntax
    that is not uncompressed little endian (each alone, so that the workstation accepts
    or refuses each), then one with Explicit and Implicit VR Little Endian, the fallback
    every image can be decompressed to. At most MAX_CONTEXTS per association, a class's
    contexts never split."""
    syntaxes: dict[str, list[str]] = {}
    for sop_class, syntax in stored:
        found = syntaxes.setdefault(sop_class, [])
        if syntax not in found and syntax not in NATIVE:
            found.append(syntax)
    plans: list[list[Context]] = [[]]
    for sop_class in sorted(syntaxes):
        contexts: list[Context] = [(sop_class, (s,)) for s in sorted(syntaxes[sop_class])]
        contexts.append((sop_class, NATIVE))
        contexts = contexts[-MAX_CONTEXTS:]  # never more than 127 syntaxes of one class
        if len(plans[-1]) + len(contexts) > MAX_CONTEXTS:
            plans.append([])
        plans[-1].extend(contexts)
    return [plan for plan in plans if plan]


def prepared(path: Path, accepted: set[str]) -> tuple[Dataset, str]:
    """The image as it can go in a context accepted for its class: its stored syntax,
    else decompressed to Explicit (or Implicit) VR Little Endian. (dataset, outcome)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(path)
        stored = ds.file_meta.TransferSyntaxUID
        if str(stored) in accepted:
            return ds, "sent"
        target = (
            ExplicitVRLittleEndian if ExplicitVRLittleEndian in accepted else ImplicitVRLittleEndian
        )
        if stored.is_compressed:
            ds.decompress(generate_instance_uid=False)
        ds.file_meta.TransferSyntaxUID = target
        return ds, "decompressed" if stored.is_compressed else "sent"


def c_store(files: list[Path], to: Destination, progress: Progress) -> None:
    """Send ``files`` (PS3.4 B.2), in as few associations as the 128 presentation
    contexts allow (``plan_contexts``): each image in its stored transfer syntax when
    the destination accepts it, else decompressed to Explicit (or Implicit) VR Little
    Endian. An image that cannot go is recorded with its reason (``progress.results``)
    and the others still go. ExportError if the first association fails, or at the end
    if any image did not arrive."""
    from pynetdicom import AE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        headers = [(p, dcmread(p, stop_before_pixels=True)) for p in files]
    numbered = {p: n for n, p in enumerate(files, 1)}
    stored = [(str(h.SOPClassUID), str(h.file_meta.TransferSyntaxUID)) for _, h in headers]
    for number, plan in enumerate(plan_contexts(stored)):
        classes = {sop_class for sop_class, _ in plan}
        batch = [(p, h) for p, h in headers if str(h.SOPClassUID) in classes]
        ae = AE(ae_title=to.calling_ae.strip())
        for sop_class, syntaxes in plan:
            ae.add_requested_context(sop_class, list(syntaxes))
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        assoc = ae.associate(to.host, to.port, ae_title=to.ae_title.strip())
        if not assoc.is_established:
            if number == 0:
                raise ExportError(
                    f"{to.ae_title} at {to.host}:{to.port} did not accept the association "
                    "(is the workstation listening, and does it know this AE title?)"
                )
            for path, header in batch:
                progress.record(
                    FileResult(numbered[path], str(header.SOPClassUID), "not_sent", "rejected")
                )
            continue
        try:
            _send_batch(assoc, batch, numbered, progress)
        finally:
            if assoc.is_established:
                assoc.release()
    failures = progress.failures
    if failures:
        raise ExportError(f"{to.ae_title} did not take {len(failures)} of {progress.total} images")


def _send_batch(
    assoc: Any, batch: Sequence[tuple[Path, Dataset]], numbered: dict[Path, int], progress: Progress
) -> None:
    for path, header in batch:
        sop_class = str(header.SOPClassUID)

        def done(outcome: str, detail: str = "", path: Path = path, cls: str = sop_class) -> None:
            progress.record(FileResult(numbered[path], cls, outcome, detail))

        if not assoc.is_established:
            done("not_sent", "association ended")
            continue
        accepted = {
            str(c.transfer_syntax[0])
            for c in assoc.accepted_contexts
            if c.abstract_syntax == sop_class
        }
        if not accepted:
            done("no_context")
            continue
        try:
            ds, outcome = prepared(path, accepted)
        except Exception as exc:  # no decoder for this syntax, damaged codestream
            done("not_decoded", f"{header.file_meta.TransferSyntaxUID.name}: {type(exc).__name__}")
            continue
        try:
            status = assoc.send_c_store(ds)
        except Exception as exc:  # pynetdicom: no context for this data set, encoding
            done("error", type(exc).__name__)
            continue
        code = int(getattr(status, "Status", -1)) if status else -1
        if code in STORE_OK:
            done(outcome)
        elif code == -1:
            done("not_sent", "no answer")
        else:
            done("refused", f"0x{code:04X}")
