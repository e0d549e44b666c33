"""Transcoding an instance, or one of its frames, to the transfer syntax a viewer asks
for (WADO-RS, PS3.18 8.7.3.5; the "for CD" export, images/export.py).

What the node can produce depends on the image (PS3.5 8.2 and Annex A.4):

    Explicit / Implicit VR Little Endian, Deflated Explicit VR LE          any instance
    RLE Lossless (pydicom)                                     any image, 1-16 bits, 1 or 3 samples
    JPEG-LS Lossless, Near-Lossless (pyjpegls)                 2-16 bits stored, 1 or 3 samples
    JPEG 2000 Lossless, JPEG 2000 (pylibjpeg-openjpeg)         1-16 bits stored, 1 or 3 samples
    JPEG Baseline (Pillow)                                     8 bits unsigned, 1 or 3 samples

JPEG Baseline is 8 bits by definition (ISO 10918-1 process 1): a CT or MR of 12 or 16
bits is never sent in it; 406 says so. The 12-bit JPEG processes (Extended, Lossless)
have no encoder here. An instance with no pixel data (a report, a presentation state)
goes in any syntax: its data set is Explicit VR Little Endian under every compressed one.

Lossy syntaxes (JPEG Baseline, JPEG 2000, JPEG-LS Near-Lossless) are produced only
when asked for by their UID, never for ``*`` or a media type alone; the result says so
(PS3.3 C.7.6.1.1.5: Lossy Image Compression "01", its ratio and method), and keeps its
SOP Instance UID so that a viewer finds it under the metadata it read.

Every function reads one instance (a CT is transcoded slice by slice as it is sent);
none keeps anything.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.multival import MultiValue
from pydicom.pixels.encoders.base import get_encoder
from pydicom.pixels.utils import pixel_array
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

NATIVE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
ANY_INSTANCE = (*NATIVE, DeflatedExplicitVRLittleEndian)
# Explicit VR Big Endian was retired from the standard (PS3.5, 2004) and pydicom does
# not write it: asked for, it is refused (406) like any syntax the node cannot produce.
LOSSY: dict[str, str] = {  # Lossy Image Compression Method (PS3.3 C.7.6.1.1.5.1)
    JPEGBaseline8Bit: "ISO_10918_1",
    JPEG2000: "ISO_15444_1",
    JPEGLSNearLossless: "ISO_14495_1",
}
JPEG2000_RATIO = 10  # compression ratio asked of a lossy JPEG 2000
JPEG_QUALITY = 90  # Pillow's quality for baseline JPEG
JLS_ERROR = 2  # NEAR of JPEG-LS near-lossless (each pixel within 2 of the original)
PIXEL_DATA = "7FE00010"


class CannotTranscode(ValueError):
    """The instance cannot be produced in the syntax asked for; the message says why."""


def _value(meta: Mapping[str, Any], tag: str, default: Any = None) -> Any:
    values = meta.get(tag, {}).get("Value", [])
    return values[0] if values else default


def _encoder_ready(syntax: str) -> bool:
    if syntax == JPEGBaseline8Bit:
        return True  # Pillow, a dependency of the node's renderer
    try:
        return bool(get_encoder(syntax).is_available)
    except (NotImplementedError, ValueError):
        return False


def producible(meta: Mapping[str, Any]) -> dict[str, str]:
    """{transfer syntax: ""} for those this instance (its DICOM JSON) can be sent in,
    and {syntax: why not} for the compressed ones it cannot."""
    out: dict[str, str] = dict.fromkeys(ANY_INSTANCE, "")
    if PIXEL_DATA not in meta:
        for syntax in (RLELossless, JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless,
                       JPEG2000, JPEGBaseline8Bit):  # fmt: skip
            out[syntax] = ""  # no pixel data: the data set alone, as Explicit VR LE
        return out
    allocated = int(_value(meta, "00280100", 16) or 16)
    stored = int(_value(meta, "00280101", allocated) or allocated)
    samples = int(_value(meta, "00280002", 1) or 1)
    signed = int(_value(meta, "00280103", 0) or 0)
    photometric = str(_value(meta, "00280004", "") or "")
    rules = {
        RLELossless: (allocated in (8, 16), "RLE: 8 or 16 bits allocated"),
        JPEGLSLossless: (2 <= stored <= 16, "JPEG-LS: 2 to 16 bits stored"),
        JPEGLSNearLossless: (2 <= stored <= 16 and not signed,
                             "JPEG-LS near-lossless: 2 to 16 bits stored, unsigned"),
        JPEG2000Lossless: (1 <= stored <= 16, "JPEG 2000: 1 to 16 bits stored"),
        JPEG2000: (1 <= stored <= 16, "JPEG 2000: 1 to 16 bits stored"),
        JPEGBaseline8Bit: (
            allocated == stored == 8 and not signed,
            f"JPEG Baseline is for 8-bit images (ISO 10918-1 process 1); this one has "
            f"{stored} bits stored{', signed' if signed else ''}",
        ),
    }  # fmt: skip
    for syntax, (fits, why) in rules.items():
        if samples not in (1, 3):
            out[syntax] = f"{samples} samples per pixel: only 1 or 3 can be compressed"
        elif photometric == "PALETTE COLOR" and syntax in LOSSY:
            out[syntax] = "a palette colour image is not compressed with loss"
        elif not fits:
            out[syntax] = why
        elif not _encoder_ready(syntax):
            out[syntax] = f"no encoder for {UID(syntax).name} is installed on this node"
        else:
            out[syntax] = ""
    return out


def can_produce(meta: Mapping[str, Any]) -> set[str]:
    return {syntax for syntax, why in producible(meta).items() if not why}


def _read(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(path)


def _lossy_history(ds: Dataset) -> tuple[list[str], list[str]]:
    """(methods, ratios) of the lossy steps the image went through already."""

    def values(keyword: str) -> list[str]:
        found = ds.get(keyword)
        if found in (None, ""):
            return []
        return [str(v) for v in found] if isinstance(found, (list, MultiValue)) else [str(found)]

    return values("LossyImageCompressionMethod"), values("LossyImageCompressionRatio")


def _mark_lossy(
    ds: Dataset, syntax: str, ratio: float, before: tuple[list[str], list[str]]
) -> None:
    """PS3.3 C.7.6.1.1.5: the image has been compressed with loss, by how much, how;
    the earlier lossy steps (``before``) are kept before this one."""
    methods, ratios = before
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = [*methods, LOSSY[syntax]]
    ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.2f}"[:16]]


def _jpeg_baseline(frame: np.ndarray, samples: int) -> bytes:
    """One frame of 8-bit data as a baseline JPEG (Pillow: YCbCr 4:2:2 for colour)."""
    image = Image.fromarray(frame.astype(np.uint8), "RGB" if samples == 3 else "L")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, subsampling=1)
    return out.getvalue()


def _decompressed(ds: Dataset) -> Dataset:
    """``ds`` with native pixel data (its own if it has them already)."""
    if "PixelData" in ds and ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress(generate_instance_uid=False)
    return ds


def transcoded(path: Path, syntax: str) -> Dataset:
    """The instance at ``path`` in ``syntax``; CannotTranscode says why it cannot be."""
    ds = _read(path)
    stored = str(ds.file_meta.TransferSyntaxUID)
    if syntax == stored:
        return ds
    if "PixelData" not in ds:
        ds.file_meta.TransferSyntaxUID = UID(syntax)
        return ds
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise CannotTranscode("float pixel data: sent as stored or Explicit VR Little Endian")
    try:
        _decompressed(ds)
    except Exception as exc:  # no decoder for the stored syntax, damaged codestream
        raise CannotTranscode(f"{UID(stored).name} cannot be decoded here: {exc}") from None
    if syntax in ANY_INSTANCE:
        ds.file_meta.TransferSyntaxUID = UID(syntax)
        return ds
    if syntax in LOSSY and ds.get("PhotometricInterpretation") == "PALETTE COLOR":
        raise CannotTranscode("a palette colour image is not compressed with loss")
    size, before = len(ds.PixelData), _lossy_history(ds)
    try:
        if syntax == JPEGBaseline8Bit:
            _compress_baseline(ds)
        else:
            options: dict[str, Any] = {}
            if syntax == JPEG2000:
                options["j2k_cr"] = [JPEG2000_RATIO]
            if syntax == JPEGLSNearLossless:
                options["jls_error"] = JLS_ERROR
            ds.compress(syntax, generate_instance_uid=False, **options)
    except CannotTranscode:
        raise
    except Exception as exc:  # the encoder refused this image
        raise CannotTranscode(f"{UID(syntax).name}: {exc}") from None
    if syntax in LOSSY:
        _mark_lossy(ds, syntax, size / max(1, len(ds.PixelData)), before)
    return ds


def _compress_baseline(ds: Dataset) -> None:
    from pydicom.encaps import encapsulate

    if int(ds.BitsAllocated) != 8 or int(ds.BitsStored) != 8 or int(ds.PixelRepresentation):
        raise CannotTranscode("JPEG Baseline is for 8-bit unsigned images (ISO 10918-1)")
    samples = int(ds.get("SamplesPerPixel", 1))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    arr = ds.pixel_array.reshape((frames, int(ds.Rows), int(ds.Columns), samples))
    ds.PixelData = encapsulate([_jpeg_baseline(f.squeeze(axis=-1) if samples == 1 else f,
                                               samples) for f in arr])  # fmt: skip
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if samples == 3:
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PlanarConfiguration = 0
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit


def file_bytes(path: Path, stored: str, syntax: str) -> bytes:
    """The instance's file (PS3.10) in ``syntax``: byte for byte when it is ``stored``."""
    if syntax == stored:
        return path.read_bytes()
    ds = transcoded(path, syntax)
    out = io.BytesIO()
    ts = UID(syntax)
    ds.save_as(
        out,
        enforce_file_format=True,
        implicit_vr=ts.is_implicit_VR,
        little_endian=ts.is_little_endian,
    )
    return out.getvalue()


def frame_bytes(ds: Dataset, numbers: list[int], syntax: str) -> list[bytes]:
    """Frames (1-based) of ``ds``, each decoded then encoded alone in ``syntax`` (native:
    little-endian pixel bytes, colour as stored; compressed: colour as RGB)."""
    samples = int(ds.get("SamplesPerPixel", 1))
    out = []
    for n in numbers:
        native = syntax in ANY_INSTANCE  # the pixels as stored (YBR stays YBR), else RGB
        arr = np.ascontiguousarray(pixel_array(ds, index=n - 1, raw=native))
        if native:
            out.append(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
        elif syntax == JPEGBaseline8Bit:
            if int(ds.BitsStored) != 8 or int(ds.PixelRepresentation):
                raise CannotTranscode("JPEG Baseline is for 8-bit unsigned images")
            out.append(_jpeg_baseline(arr, samples))
        else:
            options: dict[str, Any] = {
                "rows": int(ds.Rows), "columns": int(ds.Columns),
                "samples_per_pixel": samples, "bits_allocated": int(ds.BitsAllocated),
                "bits_stored": int(ds.BitsStored),
                "pixel_representation": int(ds.PixelRepresentation),
                "photometric_interpretation": "RGB" if samples == 3 else str(
                    ds.PhotometricInterpretation),
                "number_of_frames": 1, "planar_configuration": 0,
            }  # fmt: skip
            if syntax == JPEG2000:
                options["j2k_cr"] = [JPEG2000_RATIO]
            if syntax == JPEGLSNearLossless:
                options["jls_error"] = JLS_ERROR
            try:
                out.append(get_encoder(syntax).encode(arr, **options))
            except Exception as exc:
                raise CannotTranscode(f"{UID(syntax).name}: {exc}") from None
    return out
