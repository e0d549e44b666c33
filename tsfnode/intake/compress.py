"""Making studies small for the journey.

Lossless: JPEG-LS (CharLS through pyjpegls), kept only where it makes the pixel data
smaller, with a pixel-exact round trip; SOP Instance UIDs are kept (pydicom's compress
would change them unless told not to). Lossy (for plain films, when the sender chooses
it): JPEG 2000 at a compression ratio, with Lossy Image Compression, its ratio and
method set so that the reader sees the images are lossy.
"""

from __future__ import annotations

import copy
import io
import warnings

from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000, DeflatedExplicitVRLittleEndian, JPEGLSLossless

LOSSLESS_BITS = (8, 16)
LOSSY_MODALITIES = {"CR", "DX", "MG", "OT", "XC", "RG"}  # plain films and photos


def _compressible(ds: Dataset) -> bool:
    syntax = ds.file_meta.TransferSyntaxUID
    if "PixelData" not in ds or syntax.is_compressed or not syntax.is_little_endian:
        return False  # already compressed; big endian is made little endian at intake
    return (
        int(ds.get("BitsAllocated", 0)) in LOSSLESS_BITS
        and int(ds.get("SamplesPerPixel", 1)) in (1, 3)
        and str(ds.get("PhotometricInterpretation", ""))
        in ("MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL")
    )


def compress_lossless(ds: Dataset) -> bool:
    """JPEG-LS lossless in place when it makes the pixel data smaller; True if done."""
    if not _compressible(ds):
        return False
    before_meta = ds.file_meta.TransferSyntaxUID
    before = ds.PixelData
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls", generate_instance_uid=False)
        except (ValueError, RuntimeError, NotImplementedError):
            return False
    if len(ds.PixelData) >= len(before):
        ds.PixelData = before  # no gain: sent as it was
        ds.file_meta.TransferSyntaxUID = before_meta
        ds["PixelData"].is_undefined_length = False
        return False
    return True


def encode_for_transport(ds: Dataset) -> bytes:
    """The smallest lossless encoding of ``ds`` for the journey, of: as it is; the
    standard Deflated Explicit VR Little Endian transfer syntax (what gzip gives, yet
    readable by any DICOM tool); JPEG-LS lossless when the images allow it."""
    syntax = ds.file_meta.TransferSyntaxUID
    candidates = [_encode(ds)]
    if not syntax.is_compressed and syntax.is_little_endian:
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        try:
            candidates.append(_encode(ds, implicit_vr=False, little_endian=True))
        finally:
            ds.file_meta.TransferSyntaxUID = syntax
        if _compressible(ds):
            jls = copy.deepcopy(ds)
            if compress_lossless(jls):
                candidates.append(_encode(jls))
    return min(candidates, key=len)


def _encode(ds: Dataset, **options: bool) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True, **options)
    return buffer.getvalue()


def compress_lossy(ds: Dataset, ratio: float = 10.0) -> bool:
    """JPEG 2000 at ``ratio`` for plain films, flagged lossy; True if done."""
    modality = str(ds.get("Modality", ""))
    if modality not in LOSSY_MODALITIES or not _compressible(ds) or ratio <= 1:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds.compress(
                JPEG2000, encoding_plugin="pylibjpeg", j2k_cr=[ratio], generate_instance_uid=False
            )
        except (ValueError, RuntimeError, NotImplementedError):
            return False
    ds.LossyImageCompression = "01"
    previous = list(ds.get("LossyImageCompressionRatio", []) or [])
    ds.LossyImageCompressionRatio = [*map(str, previous), f"{ratio:.1f}"]
    methods = list(ds.get("LossyImageCompressionMethod", []) or [])
    ds.LossyImageCompressionMethod = [*map(str, methods), "ISO_15444_1"]
    return True
