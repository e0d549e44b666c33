"""Pixel data that may show the patient's identity: the sender must look and confirm,
or mask, before the case can be sent."""

from __future__ import annotations

import re

from pydicom.dataset import Dataset

from tsfnode.i18n import N_, Texts
from tsfnode.intake.elements import has, text_of

SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
# Modalities whose images commonly carry burned-in text: ultrasound, endoscopy, external
# camera photography, screen captures and other.
RISKY_MODALITIES = {"US", "ES", "XC", "GM", "SM", "OT", "DOC"}


def burned_in_reasons(ds: Dataset) -> list[str]:
    """Why this image may carry burned-in identity (empty: no known reason)."""
    # Pixel Data, Float and Double Float Pixel Data
    if not any(has(ds, tag) for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009)):
        return []
    reasons = []
    if text_of(ds, 0x00280301).upper() == "YES":  # Burned In Annotation
        reasons.append("Burned In Annotation is YES")
    modality = text_of(ds, 0x00080060).upper()
    if modality in RISKY_MODALITIES:
        reasons.append(f"modality {modality} often shows text in the image")
    if text_of(ds, 0x00080016).startswith(SECONDARY_CAPTURE_PREFIX):
        reasons.append("secondary capture (a screen or a photo)")
    conversion = text_of(ds, 0x00080064)  # Conversion Type
    if conversion in ("DF", "DV", "DI", "SD", "SI"):
        reasons.append(f"digitised film or document (Conversion Type {conversion})")
    return reasons


# Each reason as the review book keeps it (in English, as the CLI prints it), and the
# catalogue key that says it on a page; named groups are the text's values.
REASON_TEXTS = (
    (re.compile(r"Burned In Annotation is YES"), N_("burned_in_annotation")),
    (
        re.compile(r"modality (?P<modality>\S+) often shows text in the image"),
        N_("burned_in_modality"),
    ),
    (re.compile(r"secondary capture \(a screen or a photo\)"), N_("burned_in_capture")),
    (
        re.compile(r"digitised film or document \(Conversion Type (?P<conversion>\S+)\)"),
        N_("burned_in_digitised"),
    ),
    (re.compile(r"photo of a film: its label may show the patient's name"), N_("burned_in_photo")),
)


def said_reason(reason: str, words: Texts) -> str:
    """A reason of the review book in the page's language (one it does not know, from an
    older version, as it is)."""
    for pattern, key in REASON_TEXTS:
        if found := pattern.fullmatch(reason):
            return words(key, **found.groupdict())
    return reason


def mask_regions(ds: Dataset, rectangles: list[tuple[int, int, int, int]]) -> None:
    """Black out ``rectangles`` (x, y, width, height, in pixels) on every frame, in place.

    The pixel data is decoded, masked and stored uncompressed (the journey's compression
    comes later); Burned In Annotation then says NO, since what showed is gone."""
    import numpy
    from pydicom.uid import ExplicitVRLittleEndian

    if not rectangles:
        return
    pixels = ds.pixel_array.copy()
    rows, cols = int(ds.Rows), int(ds.Columns)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    view = pixels if frames > 1 else pixels[numpy.newaxis, ...]
    for x, y, width, height in rectangles:
        if width <= 0 or height <= 0 or x >= cols or y >= rows or x < 0 or y < 0:
            raise ValueError(f"mask ({x}, {y}, {width}, {height}) lies outside the image")
        view[:, y : min(rows, y + height), x : min(cols, x + width), ...] = 0
    if str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
        ds.PhotometricInterpretation = "RGB"  # pydicom decoded to RGB
    if int(ds.get("SamplesPerPixel", 1)) > 1:
        ds.PlanarConfiguration = 0
    ds.PixelData = pixels.tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds["PixelData"].is_undefined_length = False
    ds["PixelData"].VR = "OW" if int(ds.BitsAllocated) > 8 else "OB"
    ds.BurnedInAnnotation = "NO"
