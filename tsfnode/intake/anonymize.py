"""De-identification of DICOM datasets: PS3.15 Annex E, Basic Application Level
Confidentiality Profile, with the options of profile.py.

Every attribute, at every depth of sequences, gets the action of Table E.1-1; attributes
the table does not list are kept, except that any Person Name is emptied and any date is
shifted (the table is extended as the standard grows: handling by VR is the safety net
PS3.15 E.1.1 note 4 suggests). UIDs are replaced by ``2.25.`` UIDs derived with a keyed
hash (the node's secret): consistent across a study, its series, its references and
later studies of the same patient, irreversible without the secret. The patient becomes
a pseudonym (PatientID and PatientName) that the sender's node maps back, and only there.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from tsfnode import __version__
from tsfnode.intake.descriptors import clean_descriptors
from tsfnode.intake.elements import has, text_of
from tsfnode.intake.profile import Profile

IMPLEMENTATION_VERSION = f"TSFNODE_{__version__}"[:16]
# tsfnode's Implementation Class UID: 2.25 and uuid5(DNS, "tsfnode.implementation").
IMPLEMENTATION_CLASS_UID = "2.25.38392962507484353409772743367485203958"
DATE_VRS = ("DA", "DT")
CLEANED_TEXT_VRS = ("LO", "SH", "ST", "LT", "UT", "UC")
# "X unless required" (Type 3 versus 2 versus 1): without the IOD at hand, keep the
# attribute with an empty or dummy value, which every Type allows. C (clean) dummies.
COMPOUND_ACTIONS = {"Z/D": "D", "X/D": "D", "X/Z": "Z", "X/Z/D": "D", "C": "D"}
# VRs looked at even when the table does not list the attribute (the safety net).
WATCHED_VRS = frozenset({"SQ", "PN", "DA", "DT", "UI"})
CODED_KEYWORDS = frozenset(
    {
        "CodeValue",
        "CodingSchemeDesignator",
        "CodingSchemeVersion",
        "CodeMeaning",
        "LongCodeValue",
        "URNCodeValue",
        "MappingResource",
        "ContextIdentifier",
        "ContextGroupVersion",
        "MappingResourceName",
        "ContextGroupIdentificationSequence",
    }
)
# Responsible Person and Organization: Type 2C when the patient is an animal.
RESPONSIBLE_FOR_ANIMAL = frozenset({0x00102297, 0x00102299})
DICOM_ROOT = "1.2.840.10008."
TEXT_DUMMY = "ANONYMIZED"

_DUMMY: dict[str, Any] = {
    "AE": "ANONYMOUS",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "FD": 0.0,
    "FL": 0.0,
    "IS": "0",
    "LO": TEXT_DUMMY,
    "LT": TEXT_DUMMY,
    "PN": "ANONYMIZED",
    "SH": TEXT_DUMMY,
    "SL": 0,
    "SS": 0,
    "ST": TEXT_DUMMY,
    "TM": "000000",
    "UC": TEXT_DUMMY,
    "UL": 0,
    "UR": "",
    "US": 0,
    "UT": TEXT_DUMMY,
}


@dataclass(frozen=True)
class Patient:
    """The pseudonym of a patient on this node, and the shift of their dates."""

    pseudonym: str
    shift_days: int


@dataclass
class Result:
    """What anonymisation did to one dataset (no identifying value in it)."""

    original_study_uid: str
    study_uid: str
    series_uid: str
    sop_uid: str
    patient: Patient
    removed: int = 0
    replaced: int = 0
    burned_in: list[str] = field(default_factory=list)
    # The instance as the hospital knows it, for the pseudonym map only (a report sent
    # back into the hospital's PACS references these): never logged, never sealed.
    original: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class _Pass:
    """One dataset's de-identification: whose it is, and what was removed or replaced."""

    patient: Patient
    removed: int = 0
    replaced: int = 0


class Anonymizer:
    def __init__(
        self,
        profile: Profile,
        *,
        secret: bytes,
        patient_of: Callable[[Dataset], Patient],
        uid_context: str = "",
    ) -> None:
        """``secret`` keys the UID mapping; ``patient_of`` gives the pseudonym and date
        shift of the patient of a dataset (from the pseudonym map). ``uid_context``
        separates the UIDs of one source from another's (an account's uploads from
        another account's and from the node's own inputs): the same original UID gives
        a different new UID in each, so one can never name, and so never reach, a study
        or an instance of another. Empty: the node's own inputs (as before contexts)."""
        self.profile = profile
        self._secret = secret
        self._uid_prefix = f"{uid_context}\x00".encode() if uid_context else b""
        self._patient_of = patient_of
        codes = []
        for value, meaning in profile.codes:
            code = Dataset()
            code.CodeValue = value
            code.CodingSchemeDesignator = "DCM"
            code.CodeMeaning = meaning
            codes.append(code)
        # Built once and shared by every output (written, never modified).
        self._codes = Sequence(codes)
        self._method = profile.description[:64]
        self._actions: dict[int, Any] = {}

    def new_uid(self, uid: str) -> str:
        message = self._uid_prefix + uid.strip().encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return f"2.25.{int.from_bytes(digest[:16], 'big')}"

    def anonymize(self, ds: FileDataset | Dataset) -> Result:
        """De-identify ``ds`` in place (file meta and preamble included)."""
        from tsfnode.intake.burnedin import burned_in_reasons

        patient = self._patient_of(ds)
        reasons = burned_in_reasons(ds)
        original_study = text_of(ds, 0x0020000D)
        original = {
            name: text_of(ds, tag)
            for name, tag in (
                ("series", 0x0020000E),
                ("sop", 0x00080018),
                ("sop_class", 0x00080016),
                ("study_date", 0x00080020),
                ("study_time", 0x00080030),
                ("accession", 0x00080050),
                ("study_id", 0x00200010),
                ("sex", 0x00100040),
            )
        }
        run = _Pass(patient)
        descriptors = clean_descriptors(ds) if self.profile.clean_descriptors else []
        self._walk(ds, run)
        for tag, vr, text in descriptors:  # E.3.5: kept, cleaned (removed by the walk)
            ds._dict[BaseTag(tag)] = _element(tag, vr, text)
        if self.profile.safe_private:
            _drop_orphan_creators(ds)
        # Set as elements (VRs known): cheaper than attribute assignment, on every file.
        for tag, vr, value in (
            (0x00100020, "LO", patient.pseudonym),  # Patient ID
            (0x00100010, "PN", f"TSF^{patient.pseudonym}"),  # Patient's Name
            (0x00120062, "CS", "YES"),  # Patient Identity Removed
            (0x00120063, "LO", self._method),  # De-identification Method
            (0x00120064, "SQ", self._codes),  # De-identification Method Code Sequence
        ):
            ds._dict[BaseTag(tag)] = _element(tag, vr, value)
        if self.profile.modified_dates:
            ds._dict[BaseTag(0x00280303)] = _element(0x00280303, "CS", "MODIFIED")
        if "SOPInstanceUID" not in ds and "StudyInstanceUID" not in ds:
            raise ValueError("not a composite instance: no SOP Instance UID")
        self._new_file_meta(ds)
        return Result(
            original_study_uid=original_study,
            study_uid=text_of(ds, 0x0020000D),
            series_uid=text_of(ds, 0x0020000E),
            sop_uid=text_of(ds, 0x00080018),
            patient=patient,
            removed=run.removed,
            replaced=run.replaced,
            burned_in=reasons,
            original=original,
        )

    # --- the walk --------------------------------------------------------------------

    def _walk(self, ds: Dataset, run: _Pass, clean: bool = False) -> None:
        """Apply the profile to ``ds``. ``clean``: inside a sequence the table replaces
        as a whole (D); its structure is kept for the IOD's sake, and every text in it
        that the table does not list becomes a dummy (codes and enumerations stay)."""
        # Patient Species Description (0010,2201) or Code Sequence (0010,2202)
        animal = has(ds, 0x00102201) or has(ds, 0x00102202)
        # Walk the tags, and decode an element only when something is done to it: most
        # are kept as read, which keeps de-identification close to a plain copy.
        elements = ds._dict  # read without pydicom's per-access conversions
        for tag in list(elements):
            group = tag >> 16
            if 0x6000 <= group <= 0x60FF and group % 2 == 0:
                del elements[tag]  # overlays are graphics that can show identity: removed
                run.removed += 1
                continue
            if group % 2 == 1:  # private
                if not self.profile.safe_private or not self._safe_private(ds, ds[tag]):
                    del elements[tag]
                    run.removed += 1
                continue
            if animal and tag in RESPONSIBLE_FOR_ANIMAL:
                ds[tag].value = ""  # Type 2C for animals: present, empty
                run.replaced += 1
                continue
            action = self._actions.get(tag, _UNKNOWN)
            if action is _UNKNOWN:
                action = self._actions[tag] = self.profile.action(tag)
            if self._fast_text(ds, elements[tag], action, run):
                continue
            if action is None:
                vr = _vr_of(ds, tag)
                if vr in WATCHED_VRS or (clean and vr in CLEANED_TEXT_VRS):
                    self._unlisted(ds, ds[tag], run, clean)
                continue
            if self._replace_without_reading(ds, tag, action, run):
                continue
            self._apply(ds, ds[tag], action, run, clean)

    def _safe_private(self, ds: Dataset, elem: DataElement) -> bool:
        if not self.profile.safe_private or elem.tag.is_private_creator:
            return bool(self.profile.safe_private) and elem.tag.is_private_creator
        creator_tag = (elem.tag.group << 16) | (elem.tag.element >> 8)
        creator = ds.get(creator_tag)
        return creator is not None and (str(creator.value), elem.tag.element & 0xFF) in (
            self.profile.safe_private
        )

    def _unlisted(self, ds: Dataset, elem: DataElement, run: _Pass, clean: bool = False) -> None:
        if elem.VR == "SQ":
            for item in elem.value:
                self._walk(item, run, clean)
        elif elem.VR == "PN" and elem.value:
            elem.value = _DUMMY["PN"] if clean else ""
            run.replaced += 1
        elif clean and elem.VR in CLEANED_TEXT_VRS and elem.value:
            if (elem.keyword or "") not in CODED_KEYWORDS:
                elem.value = _DUMMY[elem.VR]
                run.replaced += 1
        elif elem.VR in DATE_VRS and elem.value:
            self._shift_or_dummy(elem, run)
        elif elem.VR == "UI" and elem.value and not _structural_uid(elem):
            self._replace_uids(elem)  # instance UIDs the table does not list yet
            run.replaced += 1

    def _apply(
        self, ds: Dataset, elem: DataElement, action: str, run: _Pass, clean: bool = False
    ) -> None:
        vr = elem.VR
        if vr == "SQ":
            self._apply_sequence(ds, elem, action, run, clean)
            return
        if action == "K":
            return
        if self.profile.modified_dates and action != "X":
            if vr in DATE_VRS:
                self._shift_or_dummy(elem, run)
                return
            if vr == "TM":
                return  # whole-day shifts leave the time of day as it was (E.3.6)
        if action == "U":
            self._replace_uids(elem)
            run.replaced += 1
            return
        simple = COMPOUND_ACTIONS.get(action, action)
        if simple == "X":
            del ds[elem.tag]
            run.removed += 1
        elif simple == "Z":
            elem.value = None
            run.replaced += 1
        elif simple == "D":
            if vr == "UI":
                self._replace_uids(elem)
            elif vr in _DUMMY:
                elem.value = _DUMMY[vr]
            else:
                elem.value = b"" if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN") else None
            run.replaced += 1

    def _fast_text(
        self, ds: Dataset, raw: DataElement | RawDataElement, action: str | None, run: _Pass
    ) -> bool:
        """UIDs and dates straight from their bytes, for the elements not yet decoded
        (most of them): a new UID or a shifted date without pydicom's conversion."""
        if not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes):
            return False
        tag = int(raw.tag)
        vr = raw.VR or _vr_of(ds, tag)
        if vr == "UI" and action in (None, "U", "D", "Z/D", "X/D", "X/Z/D", "C"):
            if action is None and _structural_keyword(tag):
                return True  # a class or transfer syntax UID: kept as read
            values = _split(raw.value)
            if not values:
                return action is None
            new = [_keep_or(self.new_uid, v) for v in values]
            ds._dict[raw.tag] = _element(tag, "UI", new if len(new) > 1 else new[0])
            run.replaced += 1
            return True
        if vr in DATE_VRS and self.profile.modified_dates and action != "X":
            values = [shift_date(v, vr, run.patient.shift_days) for v in _split(raw.value)]
            ds._dict[raw.tag] = _element(
                tag, vr, values if len(values) > 1 else (values[0] if values else None)
            )
            run.replaced += 1
            return True
        return False

    def _replace_without_reading(self, ds: Dataset, tag: BaseTag, action: str, run: _Pass) -> bool:
        """Remove, empty or dummy an element without decoding what it held (the common
        case, and the costly part of de-identifying many small files)."""
        vr = _vr_of(ds, tag)
        if vr in ("SQ", "UI") or action in ("K", "U", "X/Z/U*"):
            return False
        if vr in DATE_VRS and self.profile.modified_dates and action != "X":
            return False
        if vr == "TM" and self.profile.modified_dates and action != "X":
            return True  # kept as it is, undecoded
        simple = COMPOUND_ACTIONS.get(action, action)
        if simple == "X":
            del ds._dict[tag]
            run.removed += 1
            return True
        if simple == "Z" or (simple == "D" and vr not in _DUMMY):
            empty: Any = b"" if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN") else None
            ds._dict[tag] = _element(tag, vr, empty)
        elif simple == "D":
            ds._dict[tag] = _element(tag, vr, _DUMMY[vr])
        else:
            return False
        run.replaced += 1
        return True

    def _apply_sequence(
        self, ds: Dataset, elem: DataElement, action: str, run: _Pass, clean: bool
    ) -> None:
        if action in ("X", "X/Z", "X/Z/D") and not _type2_sequence(ds, int(elem.tag)):
            del ds[elem.tag]  # sequences of Type 3 mostly: removed
            run.removed += 1
        elif action in ("X", "X/Z", "X/Z/D"):
            elem.value = Sequence()  # Type 2 in this IOD: present and empty
            run.replaced += 1
        elif action == "Z":
            elem.value = Sequence()  # Type 2: present and empty
            run.replaced += 1
        else:  # K, U, X/Z/U* (remap references), D, Z/D, X/D, C (clean in place)
            cleaning = clean or action in ("D", "Z/D", "X/D", "C")
            for item in elem.value:
                self._walk(item, run, cleaning)

    def _replace_uids(self, elem: DataElement) -> None:
        if elem.VR != "UI" or elem.value in (None, ""):
            return
        if elem.VM > 1:
            elem.value = [_keep_or(self.new_uid, str(v)) for v in elem.value]
        else:
            elem.value = _keep_or(self.new_uid, str(elem.value))

    def _shift_or_dummy(self, elem: DataElement, run: _Pass) -> None:
        if not self.profile.modified_dates:
            elem.value = _DUMMY[elem.VR]
            run.replaced += 1
            return
        values = elem.value if elem.VM > 1 else [elem.value]
        shifted = [shift_date(str(v), elem.VR, run.patient.shift_days) for v in values if v]
        elem.value = shifted if elem.VM > 1 else (shifted[0] if shifted else None)
        run.replaced += 1

    def _new_file_meta(self, ds: Dataset) -> None:
        """PS3.15 E.1.1 (7): the file meta information and preamble describe us now."""
        old = getattr(ds, "file_meta", None)
        meta = FileMetaDataset()
        syntax: str | None = getattr(old, "TransferSyntaxUID", None)
        if syntax == DeflatedExplicitVRLittleEndian:
            syntax = ExplicitVRLittleEndian  # written inflated: every reader takes it
        if syntax is None:  # a file without meta information: as it was read
            implicit, little = ds.original_encoding
            if not little:
                syntax = ExplicitVRBigEndian
            else:
                syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        for tag, vr, value in (
            (0x00020002, "UI", text_of(ds, 0x00080016)),  # Media Storage SOP Class UID
            (0x00020003, "UI", text_of(ds, 0x00080018)),  # ... SOP Instance UID
            (0x00020010, "UI", UID(syntax)),  # Transfer Syntax UID
            (0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
            (0x00020013, "SH", IMPLEMENTATION_VERSION),
        ):
            meta._dict[BaseTag(tag)] = _element(tag, vr, value)
        ds.file_meta = meta
        if isinstance(ds, FileDataset):
            ds.preamble = b"\x00" * 128


_UNKNOWN = object()


def _element(tag: int, vr: str, value: Any) -> DataElement:
    """An element whose value this module made (valid by construction: not re-checked).
    Texts of the VRs pydicom writes from plain ``str`` are stored as they are."""
    plain = vr in _PLAIN_TEXT_VRS and (
        isinstance(value, str) or (isinstance(value, list) and bool(value))
    )
    return DataElement(
        tag, vr, value, already_converted=plain, validation_mode=pydicom_config.IGNORE
    )


_PLAIN_TEXT_VRS = frozenset({"UI", "DA", "DT", "TM", "CS", "LO", "SH"})


def _vr_of(ds: Dataset, tag: int) -> str:
    """The VR of an element without decoding its value."""
    raw = ds._dict.get(tag)  # type: ignore[call-overload]
    vr = getattr(raw, "VR", None)
    if vr:
        return str(vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _type2_sequence(ds: Dataset, tag: int) -> bool:
    """Sequences the table removes (X) but that some IODs require present (Type 2):
    the Acquisition Context Sequence, and in SR documents the Referenced Performed
    Procedure Step Sequence."""
    if tag == 0x00400555:
        return True
    return tag == 0x00081111 and str(ds.get("Modality", "")) == "SR"


def _split(value: bytes) -> list[str]:
    text = value.decode("ascii", "replace").strip("\x00 ")
    return [v.strip("\x00 ") for v in text.split("\\")] if text else []


def _structural_keyword(tag: int) -> bool:
    try:
        keyword = keyword_for_tag(tag)
    except KeyError:
        return False
    return keyword.endswith("ClassUID") or keyword.endswith("TransferSyntaxUID")


def _structural_uid(elem: DataElement) -> bool:
    """UIDs that name kinds of things (SOP classes, transfer syntaxes), not instances."""
    keyword = elem.keyword or ""
    return (
        keyword.endswith("ClassUID")
        or keyword.endswith("TransferSyntaxUID")
        or all(str(v).startswith(DICOM_ROOT) for v in (elem.value if elem.VM > 1 else [elem.value]))
    )


def _keep_or(new_uid: Callable[[str], str], uid: str) -> str:
    """UIDs defined by DICOM itself stay; any other is replaced."""
    return uid if uid.startswith(DICOM_ROOT) else new_uid(uid)


def shift_date(value: str, vr: str, days: int) -> str:
    """Shift a DA or DT value by ``days``; a value that does not parse is emptied."""
    text = value.strip()
    moved = _shift_day(text[:8], days)
    if not moved:
        return ""
    if vr == "DA":
        return moved
    return moved + text[8:]


@functools.lru_cache(maxsize=4096)
def _shift_day(day: str, days: int) -> str:
    """YYYYMMDD plus ``days``; empty when ``day`` is not a date."""
    if len(day) != 8 or not day.isdigit():
        return ""
    try:
        date = dt.date(int(day[:4]), int(day[4:6]), int(day[6:]))
    except ValueError:
        return ""
    return (date + dt.timedelta(days=days)).strftime("%Y%m%d")


def _drop_orphan_creators(ds: Dataset) -> None:
    """Remove private creators whose block kept no element (top level)."""
    used = {(t >> 16, (t & 0xFFFF) >> 8) for t in ds.keys() if (t >> 16) % 2 and t & 0xFF00}
    for tag in [t for t in ds.keys() if (t >> 16) % 2 and 0x10 <= t & 0xFFFF <= 0xFF]:
        if (tag >> 16, tag & 0xFF) not in used:
            del ds[tag]
