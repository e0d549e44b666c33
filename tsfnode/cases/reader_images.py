"""The reader's images: DICOM instances a reader made at the workstation for a case (key
object selections, presentation states, SR, secondary captures, an encapsulated PDF),
sent back to the reader's node by STOW-RS (dicomweb/stow.py) or by C-STORE from an AE
title bound to the reader's account (dicomweb/qr.py, through intake/listener.py).

What is decided here, the same for both ways in:
- ``parse_instance``: the bytes are a DICOM file (Part 10, or a bare data set) of one of
  ``READER_CLASSES``, with UIDs the intake would accept; anything else is refused with a
  DIMSE failure status (``Refusal.status``: C000H not DICOM, 0122H a SOP class a reader
  does not make, A900H a UID missing or malformed) and a catalogue key naming why;
- the instance is **not de-identified again**: it was made from the pseudonymised study
  the reader's node holds, and it is kept byte for byte, so that the sender's node gets
  exactly what the reader signed (its BLAKE3 is in the report, SPEC.md §5);
- files live in ``DIR/reader_images/CASE/HASH.dcm`` (named by the node's own hash, never
  by a received value), rows in ``reader_images`` (store/reader_images.py).

Which case, and whether the reader may attach to it, is ``CaseService.attach`` (the
case table's ``report``/``addendum`` rule, roles from cases/policy.py).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import blake3
from pydicom import dcmread

from protocol.documents import MAX_ATTACHMENT_SIZE, MAX_ATTACHMENTS
from tsfnode.i18n import N_
from tsfnode.intake.uids import is_uid

# The SOP classes a reader makes at a workstation (PS3.4 Annex B), each with the
# catalogue key of its name as people read it.
READER_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.88.59": N_("sop_key_object_selection"),
    "1.2.840.10008.5.1.4.1.1.11.1": N_("sop_grayscale_presentation_state"),
    "1.2.840.10008.5.1.4.1.1.11.2": N_("sop_color_presentation_state"),
    "1.2.840.10008.5.1.4.1.1.88.11": N_("sop_basic_text_sr"),
    "1.2.840.10008.5.1.4.1.1.88.22": N_("sop_enhanced_sr"),
    "1.2.840.10008.5.1.4.1.1.88.33": N_("sop_comprehensive_sr"),
    "1.2.840.10008.5.1.4.1.1.7": N_("sop_secondary_capture"),
    "1.2.840.10008.5.1.4.1.1.7.4": N_("sop_secondary_capture"),  # multi-frame true colour
    "1.2.840.10008.5.1.4.1.1.104.1": N_("sop_encapsulated_pdf"),
}
MAX_INSTANCE_BYTES = MAX_ATTACHMENT_SIZE
MAX_PER_CASE = MAX_ATTACHMENTS
FOLDER = "reader_images"
# Where STOW-RS writes each part as it comes, before it is read as an instance: the
# node's own directory (the same file system as its images), never the machine's /tmp.
INCOMING = ".incoming"
# DIMSE failure statuses (PS3.4 B.2.3, PS3.7 C), also the FailureReason of STOW-RS.
NOT_AUTHORIZED = 0x0124
SOP_CLASS_NOT_SUPPORTED = 0x0122
CANNOT_UNDERSTAND = 0xC000
DOES_NOT_MATCH = 0xA900
DUPLICATE = 0x0111
OUT_OF_RESOURCES = 0xA700


@dataclass(frozen=True)
class ReaderInstance:
    """An instance of the reader's, read: its UIDs and its exact bytes."""

    sop_uid: str
    sop_class: str
    study_uid: str
    data: bytes

    @property
    def digest(self) -> bytes:
        return blake3.blake3(self.data).digest()


@dataclass
class Refusal(Exception):
    """An instance not attached: the DIMSE status (the STOW FailureReason, the C-STORE
    status), the catalogue key saying why, and its values."""

    status: int
    key: str
    values: dict[str, object] = field(default_factory=dict)
    sop_uid: str = ""
    sop_class: str = ""

    def __str__(self) -> str:
        return f"{self.key} ({self.status:04X})"


def parse_instance(data: bytes) -> ReaderInstance:
    """``data`` as an instance of the reader's; Refusal otherwise (nothing is kept)."""
    if len(data) > MAX_INSTANCE_BYTES:
        raise Refusal(OUT_OF_RESOURCES, N_("reader_image_too_large"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings may quote values
            # force: a workstation may send the file meta without the preamble and
            # "DICM" (dicomweb-client does), or a bare data set (a C-STORE's)
            ds = dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
            sop_class = _text(ds.get("SOPClassUID"))
            sop_uid = _text(ds.get("SOPInstanceUID"))
            study_uid = _text(ds.get("StudyInstanceUID"))
    except Exception:  # any bytes pydicom cannot read are not DICOM
        raise Refusal(CANNOT_UNDERSTAND, N_("reader_image_not_dicom")) from None
    if not sop_class or not sop_uid:
        raise Refusal(CANNOT_UNDERSTAND, N_("reader_image_not_dicom"))
    if not (is_uid(sop_class) and is_uid(sop_uid)):
        raise Refusal(DOES_NOT_MATCH, N_("reader_image_bad_uid"))
    if sop_class not in READER_CLASSES:
        raise Refusal(
            SOP_CLASS_NOT_SUPPORTED, N_("reader_image_class"), {"sop_class": sop_class},
            sop_uid=sop_uid, sop_class=sop_class,
        )  # fmt: skip
    if not is_uid(study_uid):
        raise Refusal(DOES_NOT_MATCH, N_("reader_image_no_study"), sop_uid=sop_uid,
                      sop_class=sop_class)  # fmt: skip
    return ReaderInstance(sop_uid, sop_class, study_uid, as_part10(data))


def as_part10(data: bytes) -> bytes:
    """A file meta group sent without its preamble and prefix (dicomweb-client sends
    them so) given both (PS3.10 §7.1), so that the file kept is a DICOM file any
    workstation opens; its bytes are otherwise kept as they came."""
    if data[128:132] != b"DICM" and data[:2] == b"\x02\x00":
        return bytes(128) + b"DICM" + data
    return data


def study_of(data: bytes) -> str:
    """The Study Instance UID ``data`` names, whatever its SOP class ("" when none can
    be read): how the listener tells an instance of a case's study from a new study."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings may quote values
            ds = dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
            return _text(ds.get("StudyInstanceUID"))
    except Exception:  # not DICOM: the intake says so
        return ""


def named_in(path: Path) -> tuple[str, str]:
    """(SOP Class UID, SOP Instance UID) named in the head of the file at ``path`` ("",
    "" when they cannot be read), without reading its large values: how a part refused
    for its size is named in the answer."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings may quote values
            ds = dcmread(path, stop_before_pixels=True, force=True, defer_size=4096,
                         specific_tags=["SOPClassUID", "SOPInstanceUID"])  # fmt: skip
            sop_class, sop_uid = _text(ds.get("SOPClassUID")), _text(ds.get("SOPInstanceUID"))
    except Exception:  # not DICOM, or cut short: unnamed
        return "", ""
    return (sop_class, sop_uid) if is_uid(sop_class) and is_uid(sop_uid) else ("", "")


def incoming_dir(root: Path) -> Path:
    """Where the parts of STOW-RS requests are written as they come (``root``: the
    node's directory)."""
    return root / FOLDER / INCOMING


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def image_path(root: Path, case_id: bytes, digest: bytes) -> Path:
    """Where an instance of the reader's is kept on a node (``root``: its directory)."""
    return root / FOLDER / case_id.hex() / f"{digest.hex()}.dcm"


def bundle_name(digest: bytes) -> str:
    """The instance's file name in the report's bundle (SPEC.md §5)."""
    return f"reader/{digest.hex()}.dcm"


def write_image(path: Path, data: bytes) -> None:
    """Write an instance's file once (a file of that hash holds those bytes already)."""
    if path.exists() and path.stat().st_size == len(data):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)


def read_if_matches(path: Path, digest: bytes, size: int) -> bytes | None:
    """The bytes of a received file if they are the size and hash the report signed."""
    try:
        if path.stat().st_size != size:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return data if blake3.blake3(data).digest() == digest else None
