"""Pixel data that may show the patient's identity: the sender must look and confirm,
or mask, before the case can be sent."""

from __future__ import annotations

from pydicom.dataset import Dataset

SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
# Modalities whose images commonly carry burned-in text: ultrasound, endoscopy, external
# camera photography, screen captures and other.
RISKY_MODALITIES = {"US", "ES", "XC", "GM", "SM", "OT", "DOC"}


def burned_in_reasons(ds: Dataset) -> list[str]:
    """Why this image may carry burned-in identity (empty: no known reason)."""
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        return []
    reasons = []
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        reasons.append("Burned In Annotation is YES")
    modality = str(ds.get("Modality", "")).upper()
    if modality in RISKY_MODALITIES:
        reasons.append(f"modality {modality} often shows text in the image")
    if str(ds.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE_PREFIX):
        reasons.append("secondary capture (a screen or a photo)")
    if ds.get("ConversionType") in ("DF", "DV", "DI", "SD", "SI"):
        reasons.append(f"digitised film or document (Conversion Type {ds.ConversionType})")
    return reasons
