"""Reading a few coded values (UIDs, code strings) of a dataset as text, straight from
the bytes read, without pydicom's conversion of the element (the costly part of
looking at many small files)."""

from __future__ import annotations

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset


def text_of(ds: Dataset, tag: int) -> str:
    """The value of an ASCII element (UI, CS, ...) as text; empty when absent."""
    elem = ds._dict.get(tag)  # type: ignore[call-overload]
    if elem is None:
        return ""
    if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
        return elem.value.decode("ascii", "replace").strip("\x00 ")
    value = ds[tag].value
    return "" if value is None else str(value)


def has(ds: Dataset, tag: int) -> bool:
    return tag in ds._dict
