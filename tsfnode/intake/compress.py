"""Making studies small for the journey.

Lossless: JPEG-LS (CharLS through pyjpegls), kept only where it makes the pixel data
smaller, with a pixel-exact round trip; SOP Instance UIDs are kept (pydicom's compress
would change them unless told not to). Lossy (for plain films, when the sender chooses
it): JPEG 2000 at a compression ratio, with Lossy Image Compression, its ratio and
method set so that the reader sees the images are lossy.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEGLSLossless,
)

LOSSLESS_BITS = (8, 16)
AS_STORED, JPEG_LS, DEFLATE = "as stored", "jpeg-ls", "deflate"
SAMPLE, SAMPLES = 16 * 1024, 4  # deflate tried on these pieces of the pixel data
SMALL = 64 * 1024  # files this small are tried both ways
MARGIN = 1.5  # deflate is tried when its estimate is within this of JPEG-LS's size
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


def transport_encoding(ds: Dataset) -> str:
    """Which lossless encoding ``ds`` is first tried in, chosen by what it is rather than
    by encoding it every way and keeping the smallest: ``"as stored"`` when its pixel
    data is already compressed (JPEG, JPEG 2000...), ``"jpeg-ls"`` when JPEG-LS applies
    to its images (118 kB against deflate's 253 kB for a 512x512 CT slice), ``"deflate"``
    (Deflated Explicit VR Little Endian) when no image codec applies (an SR, a waveform,
    32-bit pixels)."""
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed or not syntax.is_little_endian:
        return AS_STORED
    return JPEG_LS if _compressible(ds) else DEFLATE


def encode_for_transport(ds: Dataset, as_stored: bytes | None = None) -> bytes:
    """The smallest lossless encoding of ``ds`` for the journey, of: as it is stored
    (``as_stored``: the file's bytes when the caller has them); the standard Deflated
    Explicit VR Little Endian transfer syntax (what gzip gives, yet readable by any DICOM
    tool); JPEG-LS lossless when the images allow it. Each is encoded only where it may
    win (``transport_encoding``): deflate is tried beside a JPEG-LS only when deflating
    samples of the pixel data (``deflated_estimate``) says it could be smaller (palette,
    colour and synthetic images), for files of ``SMALL`` bytes at most (their header
    counts, which deflate packs too), or when JPEG-LS gained nothing. ``ds`` may
    be changed."""
    if as_stored is None:
        as_stored = _encode(ds)
    kind = transport_encoding(ds)
    if kind == AS_STORED:
        return as_stored
    best = as_stored
    if kind == JPEG_LS:
        native = ds.PixelData
        stored_syntax = ds.file_meta.TransferSyntaxUID
        estimate = deflated_estimate(native)
        if compress_lossless(ds):
            spliced = (
                _spliced(ds, as_stored, native) if stored_syntax == ExplicitVRLittleEndian else None
            )
            best = min(best, spliced or _encode(ds), key=len)
            if estimate >= MARGIN * len(ds.PixelData) and len(as_stored) > SMALL:
                return best
        ds = _read(as_stored)  # deflate may still win: from the stored bytes
    return min(best, _deflated(ds), key=len)


def deflated_estimate(pixels: bytes) -> int:
    """What deflate would make of ``pixels``, from pieces of ``SAMPLE`` bytes spread
    over them, ``SAMPLES`` or one in a hundred of their bytes (all of it when small):
    at deflate's fastest level (its best packs tighter, hence ``MARGIN``): under a
    millisecond for a CT slice, where deflating the whole instance takes 20 (pieces of
    32 KiB took twice as long, a tenth of the slice's JPEG-LS encoding, and led to the
    same encodings of pydicom's and pydicom-data's images)."""
    size = len(pixels)
    count = max(SAMPLES, size // (100 * SAMPLE))
    if size <= SAMPLE * count:
        pieces = [pixels]
    else:
        step = (size - SAMPLE) // (count - 1)
        pieces = [pixels[i * step : i * step + SAMPLE] for i in range(count)]
    taken = sum(map(len, pieces))
    packed = sum(len(zlib.compress(p, 1)) for p in pieces)
    return size * packed // max(taken, 1)


PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), the sequence's end


def _spliced(ds: Dataset, as_stored: bytes, native: bytes) -> bytes | None:
    """``ds`` just compressed (its Pixel Data encapsulated, its file meta's syntax
    changed, nothing else: pydicom's ``compress``) written by putting its new file meta
    and Pixel Data in place of the old ones in ``as_stored``, the Explicit VR Little
    Endian bytes it was read from, whose other elements are copied as they are rather
    than encoded again element by element (a fifth of a CT slice's encoding time).
    None when the stored Pixel Data element is not found whole (``native``: its value)
    or the dataset gained other elements (an extended offset table): then it is
    written by pydicom."""
    if "ExtendedOffsetTable" in ds or not ds["PixelData"].is_undefined_length:
        return None
    length = len(native)
    head = PIXEL_DATA_TAG + b"OW\0\0" + struct.pack("<I", length)
    meta_end = 132 + 12 + struct.unpack_from("<I", as_stored, 140)[0] if len(as_stored) > 144 else 0
    if as_stored[128:132] != b"DICM" or as_stored[132:136] != b"\x02\x00\x00\x00":
        return None  # no preamble or no group length first: pydicom writes it
    start = as_stored.find(head, meta_end)
    if start < 0:
        start = as_stored.find(PIXEL_DATA_TAG + b"OB\0\0" + struct.pack("<I", length), meta_end)
    end = start + len(head) + length
    if start < 0 or as_stored[start + len(head) : end] != native:
        return None
    out = io.BytesIO()
    out.write(ds.preamble or b"\0" * 128)
    out.write(b"DICM")
    write_file_meta_info(out, ds.file_meta, enforce_standard=True)  # type: ignore[arg-type]
    out.write(as_stored[meta_end:start])
    out.write(PIXEL_DATA_TAG + b"OB\0\0\xff\xff\xff\xff")
    out.write(ds.PixelData)
    out.write(DELIMITER)
    out.write(as_stored[end:])
    return out.getvalue()


def _deflated(ds: Dataset) -> bytes:
    syntax = ds.file_meta.TransferSyntaxUID
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    try:
        return _encode(ds, implicit_vr=False, little_endian=True)
    finally:
        ds.file_meta.TransferSyntaxUID = syntax


def _read(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings may quote values
        return dcmread(io.BytesIO(data))


def encode_file_for_transport(path: Path, data: bytes | None = None) -> bytes:
    """``encode_for_transport`` of the DICOM file at ``path`` (``data``: its bytes, when
    the caller has read them): what sealing and the import's preparation (journey.py)
    run on every core, a file in, its bytes for the journey out."""
    if data is None:
        data = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings may quote values
        return encode_for_transport(_read(data), as_stored=data)


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
