"""The bytes of a DICOM file as pydicom's ``save_as(..., enforce_file_format=True)``
writes them, without encoding again the elements still held as read.

The importer decodes only the elements de-identification changes (importer.py
``_keep_as_read``): the others are still the bytes read (pydicom's ``RawDataElement``),
which pydicom's writer copies too, but through its general path for each element (a
buffer, a tag, a length, per element: most of an intake file's writing). Here those of a
defined length are copied with their header as they are, in one pass; everything else
(the file meta information, the elements decoded, sequences, undefined lengths) is
written by pydicom's own functions, and the whole is pydicom's output byte for byte
(``tests/tsfnode/intake/test_written.py``, on every real file of the test data). Where
pydicom would encode the elements again (the data set read in another encoding or
character set than it is written in), or for syntaxes it handles apart (deflate,
private), it is pydicom's ``save_as`` itself.
"""

from __future__ import annotations

import copy
import io
import struct
from typing import BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import dcmwrite, write_data_element, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

# Explicit VR: these VRs have 2 reserved bytes and a 4-byte length (PS3.5 7.1.2).
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
UNDEFINED = 0xFFFFFFFF


def write_file(ds: Dataset, f: BinaryIO) -> None:
    """Write ``ds`` (with its file meta information) as a DICOM file into ``f`` (a file
    opened for writing: the values are written to it as they are, never copied into one
    buffer, so a large Pixel Data is not copied again)."""
    meta = getattr(ds, "file_meta", None)
    syntax = None if meta is None else meta.get("TransferSyntaxUID", None)
    if (
        meta is None
        or syntax is None
        or syntax == DeflatedExplicitVRLittleEndian
        or syntax.is_private
        or not syntax.is_transfer_syntax
        or not syntax.is_little_endian
        or ds.original_encoding != (syntax.is_implicit_VR, syntax.is_little_endian)
        or ds.original_character_set != ds._character_set
        or str(ds.get("SOPClassUID", "")) != str(meta.get("MediaStorageSOPClassUID", ""))
        or str(ds.get("SOPInstanceUID", "")) != str(meta.get("MediaStorageSOPInstanceUID", ""))
        or len(getattr(ds, "preamble", None) or b"\0" * 128) != 128
        or any(tag >> 16 in (0, 2) for tag in ds._dict)  # refused by pydicom
    ):
        dcmwrite(f, ds, enforce_file_format=True)
        return
    implicit = syntax.is_implicit_VR
    if "PixelData" in ds._dict:  # as dcmwrite: encapsulated pixel data has no length
        pixels = ds._dict[0x7FE00010]  # type: ignore[index]
        if (
            isinstance(pixels, RawDataElement)
            and (pixels.length == UNDEFINED) != syntax.is_compressed
        ):
            ds["PixelData"].is_undefined_length = syntax.is_compressed
        elif not isinstance(pixels, RawDataElement):
            pixels.is_undefined_length = syntax.is_compressed
    out = DicomFileLike(f)
    out.is_implicit_VR, out.is_little_endian = implicit, True
    out.write(getattr(ds, "preamble", None) or b"\0" * 128)
    out.write(b"DICM")
    # on a copy, as dcmwrite: writing it adds its group length and version to it
    write_file_meta_info(out, copy.deepcopy(meta), enforce_standard=True)
    encodings = ds.get("SpecificCharacterSet", "iso8859")
    pack = struct.pack
    for tag in sorted(ds._dict):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # no retired group lengths (PS3.5 7.2), as pydicom
        elem = ds._dict[tag]
        if (
            isinstance(elem, RawDataElement)
            and elem.length != UNDEFINED
            and isinstance(elem.value, bytes)
            and len(elem.value) == elem.length
            and (elem.is_implicit_VR, elem.is_little_endian) == (implicit, True)
            and (implicit or elem.VR is not None)
        ):
            group, element, vr = tag >> 16, tag & 0xFFFF, (elem.VR or "").encode()
            if implicit:
                out.write(pack("<HHI", group, element, elem.length))
            elif elem.VR in LONG_VRS:
                out.write(pack("<HH2sHI", group, element, vr, 0, elem.length))
            else:
                out.write(pack("<HH2sH", group, element, vr, elem.length))
            out.write(elem.value)
        else:
            write_data_element(out, ds.get_item(tag), encodings)


def file_bytes(ds: Dataset) -> bytes:
    """``write_file`` into bytes."""
    out = io.BytesIO()
    write_file(ds, out)
    return out.getvalue()
