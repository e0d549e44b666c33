"""PS3.15 E.3.5 Clean Descriptors Option: the descriptions a radiologist reads ("ABDOMEN
PELVIS 5mm") are kept, cleaned of what identifies the patient, instead of removed.

Cleaning removes from each descriptor, before the rest of the dataset is de-identified:
the names the dataset holds (every Person Name's components, as whole words), its
identifiers and places (Patient ID, other ids, accession number, study id, institution,
its address and department, station name, as written), and, whatever the dataset holds,
any date-like text and any run of six digits or more (an id typed by hand). What is left
is the description; spaces are tidied. Only the descriptors of ``CLEANED`` at the top
level of a dataset are kept this way; elsewhere the profile's action applies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydicom.dataset import Dataset

# (0008,1030) Study Description, (0008,103E) Series Description, (0018,1030) Protocol
# Name, (0032,1060) Requested Procedure Description, (0040,0254) Performed Procedure Step
# Description: technical labels, the ones a viewer shows (each "C" in E.3.5's column).
# Free-text comments are not kept.
CLEANED = (0x00081030, 0x0008103E, 0x00181030, 0x00321060, 0x00400254)

# Identifiers and places removed as written (LO, SH, LT...), by tag.
IDENTIFYING_TEXTS = (
    0x00100020,  # Patient ID
    0x00101000,  # Other Patient IDs
    0x00080050,  # Accession Number
    0x00200010,  # Study ID
    0x00080080,  # Institution Name
    0x00080081,  # Institution Address
    0x00081040,  # Institutional Department Name
    0x00081010,  # Station Name
    0x00101040,  # Patient's Address
    0x00102154,  # Patient's Telephone Numbers
    0x00101080,  # Military Rank
    0x00101081,  # Branch of Service
    0x00102180,  # Occupation
    0x00102150,  # Country of Residence
    0x00102152,  # Region of Residence
    0x001021F0,  # Patient's Religious Preference
    0x00101090,  # Medical Record Locator
    0x00380300,  # Current Patient Location
    0x00380010,  # Admission ID
)
# Person Names whose components are removed as whole words.
NAMES = (
    0x00100010,  # Patient's Name
    0x00101001,  # Other Patient Names
    0x00101005,  # Patient's Birth Name
    0x00101060,  # Patient's Mother's Birth Name
    0x00080090,  # Referring Physician's Name
    0x00081048,  # Physician(s) of Record
    0x00081050,  # Performing Physician's Name
    0x00081060,  # Name of Physician(s) Reading Study
    0x00081070,  # Operators' Name
    0x00321032,  # Requesting Physician
)
_ALWAYS = re.compile(
    r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}"  # a date as people write it
    r"|\d{6,}",  # a date as DICOM writes it, an id: six digits or more
)
_SPACES = re.compile(r"\s{2,}")
_NAME_SPLIT = re.compile(r"[\^=\s,]+")


def _texts(value: object) -> Iterable[str]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]  # type: ignore[attr-defined]
    return (str(value),)


def identifying_words(ds: Dataset) -> list[str]:
    """What a descriptor of ``ds`` may not carry: names' components, ids, places."""
    words: set[str] = set()
    for tag in NAMES:
        if tag in ds._dict:
            for text in _texts(ds[tag].value):
                words.update(w for w in _NAME_SPLIT.split(text) if len(w) >= 2)
    for tag in IDENTIFYING_TEXTS:
        if tag in ds._dict:
            for text in _texts(ds[tag].value):
                if len(text.strip()) >= 2:
                    words.add(text.strip())
    return sorted(words, key=len, reverse=True)  # the longest first: "Smith Jr" before "Smith"


def cleaned(text: str, words: list[str]) -> str:
    """``text`` without ``words`` (whole words, any case), dates and long numbers."""
    if words:
        pattern = "|".join(re.escape(w) for w in words)
        text = re.sub(rf"(?<![0-9A-Za-z])(?:{pattern})(?![0-9A-Za-z])", " ", text, flags=re.I)
    text = _ALWAYS.sub(" ", text)
    return _SPACES.sub(" ", text).strip(" -_^,;:/")


def clean_descriptors(ds: Dataset) -> list[tuple[int, str, str]]:
    """The cleaned descriptors of ``ds`` (tag, VR, value), read before de-identification
    changes the names and ids they are cleaned of; empty ones are left out."""
    present = [tag for tag in CLEANED if tag in ds._dict]
    if not present:
        return []
    words = identifying_words(ds)
    out = []
    for tag in present:
        elem = ds[tag]
        value = elem.value
        if not isinstance(value, str) or not value.strip():
            continue
        text = cleaned(value, words)
        if text:
            out.append((tag, elem.VR, text))
    return out
