"""The DICOM JSON model (PS3.18 Annex F) of an instance's header, as pydicom's
``Dataset.to_json_dict(threshold, handler, suppress_invalid_tags=True)`` makes it, in a
fraction of its time.

The listing made as a bundle is opened (``listing.py``) holds every instance's JSON
model for DICOMweb's metadata. pydicom makes each element a ``DataElement`` first (its
hooks, its character sets, its value classes, its validation), about 0.1 ms an element:
for pydicom-data's 20 small studies that was half of the reading node's work from the
first chunk to the receipt (bench delivery_small_studies, py-spy). Here the common
elements of an explicit-VR header go straight from their bytes to their JSON value:
text in the default repertoire (ASCII bytes, no escape: the same in every character
set), UIDs, codes, dates and times, integer and decimal strings of the usual forms,
binary numbers, and binary values (inline or bulk). Each value is checked as pydicom
checks it when it reads strictly (``validate_value``, mode RAISE), and an element that
pydicom would drop is dropped. Anything else (person names, tags, sequences' own
elements when not simple, private elements of unknown VR, other character sets, odd
lengths, LUT descriptors, unusual numbers) is made by pydicom itself, element by
element. ``tests/tsfnode/images/test_dicomjson.py`` checks the result equals pydicom's
for every file of pydicom's test files, pydicom-data and deid-data.
"""

from __future__ import annotations

import base64
import re
import struct
from typing import Any

from pydicom import config
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import _LUT_DESCRIPTOR_TAGS
from pydicom.valuerep import MAX_VALUE_LEN, validate_value

# VRs whose bytes are in the default repertoire (ISO 646, read as ISO 8859-1 by pydicom)
_DEFAULT_STRINGS = frozenset({"AS", "CS", "DA", "DT", "TM"})
_TEXT_MULTI = frozenset({"SH", "LO", "UC"})  # charset-dependent, split on backslash
_TEXT_SINGLE = frozenset({"ST", "LT", "UT"})  # charset-dependent, never split
_NUMBERS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_BINARY = frozenset({"OB", "OW", "OD", "OF", "OL", "OV"})
_IS = re.compile(r"[+-]?[0-9]+")
_DS = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT32 = 2**31
_LUT_DESCRIPTORS = frozenset(int(t) for t in _LUT_DESCRIPTOR_TAGS)  # pydicom fixes their sign


class _Slow(Exception):
    """This element is left to pydicom."""


def to_json_dict(ds: Dataset, threshold: int, bulk_prefix: str) -> dict[str, Any]:
    """``ds.to_json_dict(threshold, handler, suppress_invalid_tags=True)`` where
    ``handler(element)`` is ``bulk_prefix`` followed by the element's tag (8 hex
    digits, upper case)."""
    with config.strict_reading():  # as pydicom's own: an invalid value drops its element
        return _dataset(ds, threshold, bulk_prefix, suppress=True)


def _dataset(ds: Dataset, threshold: int, prefix: str, *, suppress: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    raw_dict = ds._dict  # the raw elements, in the order pydicom lists them
    for tag in list(raw_dict):
        key = f"{tag:08X}"
        try:
            element = raw_dict[tag]
            made = None
            if isinstance(element, RawDataElement):
                try:
                    made = _fast(element, threshold, prefix)
                except _Slow:
                    made = None
            if made is None:
                made = _slow(ds, tag, threshold, prefix)
            out[key] = made
        except Exception:
            if not suppress:
                raise
    return out


def _slow(ds: Dataset, tag: int, threshold: int, prefix: str) -> dict[str, Any]:
    element = ds[tag]
    if element.VR == "SQ":
        return {
            "vr": "SQ",
            "Value": [_dataset(item, threshold, prefix, suppress=False) for item in element.value],
        }
    made: dict[str, Any] = element.to_json_dict(lambda e: f"{prefix}{e.tag:08X}", threshold)
    return made


def _fast(raw: RawDataElement, threshold: int, prefix: str) -> dict[str, Any]:
    """The element's JSON, or _Slow when pydicom must make it."""
    vr = raw.VR
    value = raw.value
    if vr is None or value is None or int(raw.tag) in _LUT_DESCRIPTORS:
        raise _Slow
    if not value:  # length 0: no value
        if vr == "SQ" or vr not in _KNOWN:
            raise _Slow
        return {"vr": vr}
    if vr in _NUMBERS:
        return _numbers(raw, vr, value)
    if vr in _BINARY:
        if len(value) > (threshold // 4) * 3:
            return {"vr": vr, "BulkDataURI": f"{prefix}{raw.tag:08X}"}
        return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("ascii")}
    if not value.isascii() or b"\x1b" in value:
        raise _Slow  # another character set's bytes, or escapes: pydicom decodes them
    text = value.decode("ascii")
    if vr == "UI":
        items = text.rstrip("\0 ").split("\\")
    elif vr in _DEFAULT_STRINGS:
        items = text.rstrip(" \x00").split("\\")
    elif vr in _TEXT_MULTI:
        items = [_checked_length(vr, item).rstrip("\0 ") for item in text.split("\\")]
    elif vr in _TEXT_SINGLE:
        items = [_checked_length(vr, text).rstrip("\0 ")]
    elif vr == "IS":
        return _numbers_as_text(vr, text, _IS, 12, int)
    elif vr == "DS":
        return _numbers_as_text(vr, text, _DS, 16, float)
    else:
        raise _Slow
    if vr == "UI":
        for item in items:
            validate_value(vr, item, config.RAISE)
    if len(items) == 1 and not items[0]:
        return {"vr": vr}
    return {"vr": vr, "Value": items}


_KNOWN = _DEFAULT_STRINGS | _TEXT_MULTI | _TEXT_SINGLE | _BINARY | {*_NUMBERS, "UI", "IS", "DS"}


def _checked_length(vr: str, text: str) -> str:
    """``text``, if no longer than its VR allows (pydicom's only check of these VRs,
    ``validate_type_and_length``); raises as pydicom does when reading strictly."""
    if len(text) > MAX_VALUE_LEN.get(vr, len(text)):
        raise ValueError(f"a value longer than VR {vr} allows")
    return text


def _numbers(raw: RawDataElement, vr: str, value: bytes) -> dict[str, Any]:
    code = _NUMBERS[vr]
    size = struct.calcsize("<" + code)  # standard sizes, as DICOM's
    if len(value) % size:
        raise _Slow  # pydicom raises, or makes it UN
    endian = "<" if raw.is_little_endian else ">"
    numbers = struct.unpack(f"{endian}{len(value) // size}{code}", value)
    cast = float if vr in ("FL", "FD") else int
    return {"vr": vr, "Value": [cast(n) for n in numbers]}


def _numbers_as_text(
    vr: str, text: str, form: re.Pattern[str], longest: int, cast: type[int] | type[float]
) -> dict[str, Any]:
    """IS and DS of the usual forms; anything else (empty items, other spellings,
    too long, beyond 32 bits) is pydicom's."""
    items = text.rstrip(" \x00").split("\\")
    values: list[int | float] = []
    for item in items:
        stripped = item.strip(" ")
        if len(item) > longest or not form.fullmatch(stripped):
            raise _Slow
        number = cast(stripped)
        if cast is int and not -_INT32 <= number < _INT32:
            raise _Slow
        values.append(number)
    return {"vr": vr, "Value": values}
