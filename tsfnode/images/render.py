"""Rendering DICOM images for the viewer, on the node (pydicom, numpy, Pillow).

A frame is decoded once (every transfer syntax pydicom's decoders support here: JPEG,
JPEG-LS, JPEG 2000, RLE, deflate, native), taken through the Modality LUT (PS3.3
C.11.1: rescale or LUT), kept in a small cache, then windowed to 8 bits as asked (the
linear VOI function of PS3.3 C.11.2.1.2.1, or the image's own VOI LUT), inverted for
MONOCHROME1, and sent as JPEG sized to the reader's link. Colour images (RGB, YBR,
palette colour) are converted to RGB and sent as they are.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.pixels.utils import pixel_array
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
)

LOSSY_SYNTAXES = {JPEGBaseline8Bit, JPEGExtended12Bit, JPEG2000, JPEGLSNearLossless}
FULL = 4096  # the largest side ever sent
MAX_FRAME_CACHE = 256 * 1024 * 1024
MIN_FRAME_CACHE = 16 * 1024 * 1024
CACHE_SHARE = 8  # the frame cache takes at most this fraction of the node's memory
HEADER_SHARE = 512 * 1024  # bytes of frame cache per header kept beside it
HEADERS_MIN = 64


def memory_limit() -> int | None:
    """The memory this process may use: its cgroup's limit (v1 ``memory.limit_in_bytes``
    or v2 ``memory.max``, as systemd's ``MemoryMax=`` sets it) or the machine's RAM,
    whichever is smaller; None if neither can be read."""
    limits = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if "memory" in names.split(","):
                found = Path("/sys/fs/cgroup/memory", path.lstrip("/"), "memory.limit_in_bytes")
            elif names == "":
                found = Path("/sys/fs/cgroup", path.lstrip("/"), "memory.max")
            else:
                continue
            text = found.read_text().strip() if found.exists() else "max"
            if text.isdigit():
                limits.append(int(text))
    except (OSError, ValueError):
        pass
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


def frame_cache_budget() -> int:
    """Bytes of decoded frames kept: 256 MB, or an eighth of the memory the node may use
    when that is less (a node in a 256 MB box keeps 32 MB: a 500-slice CT paged through
    is decoded again rather than kept whole)."""
    limit = memory_limit()
    if limit is None:
        return MAX_FRAME_CACHE
    return max(MIN_FRAME_CACHE, min(MAX_FRAME_CACHE, limit // CACHE_SHARE))


PRESETS = {  # (centre, width) in Hounsfield units, for CT
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "abdomen": (60.0, 400.0),
}


@dataclass(frozen=True)
class Window:
    centre: float
    width: float


@dataclass
class Values:
    """A decoded frame after the Modality LUT: ``mono`` (float32) or ``rgb`` (uint8)."""

    mono: np.ndarray | None
    rgb: np.ndarray | None
    photometric: str
    low: float = 0.0
    high: float = 0.0

    @property
    def nbytes(self) -> int:
        array = self.mono if self.mono is not None else self.rgb
        return 0 if array is None else int(array.nbytes)


def read_header(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(path, stop_before_pixels=True)


def header_of_bytes(data: bytes) -> Dataset:
    """The header of the file whose bytes are ``data``, as ``read_header`` reads it from
    disk (the opener of a bundle holds the bytes it writes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(io.BytesIO(data), stop_before_pixels=True)


def frame_count(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def decode(path: Path, index: int, ds: Dataset | None = None) -> Values:
    """Frame ``index`` of the file, through the Modality LUT (or to RGB for colour).
    Only that frame is read and decoded; ``ds`` is the file's header, if already read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = ds if ds is not None else read_header(path)
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
        arr = pixel_array(_source(path, ds), index=index)
        if photometric == "PALETTE COLOR":
            rgb = apply_color_lut(arr, ds)
            if rgb.dtype != np.uint8:
                rgb = (rgb >> 8).astype(np.uint8)
            return Values(None, rgb, photometric)
        if arr.ndim == 3:  # RGB, or YBR already converted to RGB by pydicom
            rgb = arr if arr.dtype == np.uint8 else _to_uint8(arr)
            return Values(None, rgb, photometric)
        mono = np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
        return Values(mono, None, photometric, float(mono.min()), float(mono.max()))


def _source(path: Path, ds: Dataset) -> str | Dataset:
    """Where ``decode`` reads the pixels: the file itself (only the frame asked for is
    read), except for a Deflated Explicit VR Little Endian file (a masked photo of a
    film is stored so), whose whole stream must be inflated to reach its Pixel Data."""
    if str(ds.file_meta.get("TransferSyntaxUID", "")) == DeflatedExplicitVRLittleEndian:
        return dcmread(path)
    return str(path)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    low, high = float(arr.min()), float(arr.max())
    return ((arr - low) * (255.0 / max(high - low, 1.0))).astype(np.uint8)


def default_window(ds: Dataset) -> Window | None:
    """The image's own window (its first Window Center/Width), else None."""
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    try:
        c = float(centre[0] if _many(centre) else centre)
        w = float(width[0] if _many(width) else width)
    except (TypeError, ValueError, IndexError):
        return None
    return Window(c, w) if w >= 1 else None


def _many(value: Any) -> bool:
    return hasattr(value, "__len__") and not isinstance(value, str | bytes)


def linear_window(values: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, the linear function, to 0..255."""
    c, w = window.centre, max(window.width, 1.0)
    scaled = ((values - (c - 0.5)) / (w - 1.0) + 0.5) if w > 1 else (values > c - 0.5) * 1.0
    return np.clip(np.rint(np.asarray(scaled) * 255.0), 0, 255).astype(np.uint8)


def to_8bit(values: Values, ds: Dataset, window: Window | None, *, invert: bool) -> np.ndarray:
    """The frame as 8-bit pixels, windowed: ``window``, else the image's VOI LUT, else
    its own window, else its whole range; MONOCHROME1 shown white for low values."""
    if values.rgb is not None:
        out = values.rgb
        return 255 - out if invert else out
    if values.mono is None:
        raise ValueError("no pixels")
    if window is None and "VOILUTSequence" in ds:
        stored = values.mono
        if np.array_equal(stored, np.rint(stored)):  # a LUT is indexed by integers
            stored = stored.astype(np.int32)
        voi = np.asarray(apply_voi_lut(stored, ds, prefer_lut=True), dtype=np.float32)
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])  # the LUT's output depth
        out = np.clip(np.rint(voi * (255.0 / (2**bits - 1))), 0, 255).astype(np.uint8)
    else:
        window = window or default_window(ds)
        if window is None:
            window = Window((values.low + values.high) / 2, max(values.high - values.low, 1))
        out = linear_window(values.mono, window)
    if (values.photometric == "MONOCHROME1") != invert:
        out = 255 - out
    return out


def encode(pixels: np.ndarray, *, max_size: int, quality: int, fmt: str = "JPEG") -> bytes:
    """JPEG (at ``quality``) or PNG, the longer side at most ``max_size``."""
    image = Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB")
    if max(image.size) > max_size:
        image.thumbnail((max_size, max_size), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    if fmt == "PNG":
        image.save(out, format="PNG")
    else:
        image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


@dataclass
class Renderer:
    """Decoded frames kept in memory (least recently used out, within ``budget`` bytes:
    `frame_cache_budget`) and headers; safe to use from worker threads."""

    budget: int = field(default_factory=frame_cache_budget)
    _frames: OrderedDict[tuple[Path, int], Values] = field(default_factory=OrderedDict)
    _headers: OrderedDict[Path, Dataset] = field(default_factory=OrderedDict)
    _held: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def headers_max(self) -> int:
        """Headers kept, least recently used out: one per ``HEADER_SHARE`` bytes of the
        budget, at least ``HEADERS_MIN`` (a CT slice's is about 50 kB parsed: 512 of them
        beside a 256 MB frame cache, 64 beside 32 MB). Before, every header rendered was
        kept until the node stopped."""
        return max(HEADERS_MIN, self.budget // HEADER_SHARE)

    def header(self, path: Path) -> Dataset:
        with self._lock:
            found = self._headers.get(path)
            if found is not None:
                self._headers.move_to_end(path)
                return found
        found = read_header(path)
        with self._lock:
            self._headers[path] = found
            while len(self._headers) > self.headers_max:
                self._headers.popitem(last=False)
        return found

    def values(self, path: Path, index: int) -> Values:
        key = (path, index)
        with self._lock:
            found = self._frames.get(key)
            if found is not None:
                self._frames.move_to_end(key)
                return found
        found = decode(path, index, self.header(path))
        with self._lock:
            self._frames[key] = found
            self._held += found.nbytes
            while self._held > self.budget and len(self._frames) > 1:
                _, dropped = self._frames.popitem(last=False)
                self._held -= dropped.nbytes
        return found

    def render(self, path: Path, index: int, **options: Any) -> bytes:
        """The JPEG alone (``options`` as for ``render_with_window``)."""
        return self.render_with_window(path, index, **options)[0]

    def render_with_window(
        self,
        path: Path,
        index: int,
        *,
        window: Window | None = None,
        invert: bool = False,
        max_size: int = FULL,
        quality: int = 85,
        fmt: str = "JPEG",
    ) -> tuple[bytes, Window | None]:
        """The JPEG, and the window it was rendered at (None for colour, or a VOI LUT)."""
        values = self.values(path, index)
        ds = self.header(path)
        used = window
        if values.mono is not None and window is None and "VOILUTSequence" not in ds:
            used = default_window(ds) or Window(
                (values.low + values.high) / 2, max(values.high - values.low, 1.0)
            )
        pixels = to_8bit(values, ds, used if values.mono is not None else None, invert=invert)
        return encode(pixels, max_size=max_size, quality=quality, fmt=fmt), used


def is_lossy(ds: Dataset) -> bool:
    """Lossy compression now or in the image's history (PS3.3 C.7.6.1.1.5)."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return str(ds.get("LossyImageCompression", "00")) == "01" or syntax in LOSSY_SYNTAXES


def orientation_markers(ds: Dataset) -> dict[str, str]:
    """The patient directions at the image's four edges (PS3.3 C.7.6.2.1.1), from Image
    Orientation (Patient); from Patient Orientation for projection images; else none."""
    try:
        cosines = [float(v) for v in ds.ImageOrientationPatient]
    except (AttributeError, TypeError, ValueError):
        cosines = []
    if len(cosines) == 6:
        row, column = cosines[:3], cosines[3:]
        return {
            "right": _direction(row),
            "left": _direction([-v for v in row]),
            "bottom": _direction(column),
            "top": _direction([-v for v in column]),
        }
    orientation = ds.get("PatientOrientation")
    if _many(orientation) and len(orientation) == 2:
        flip = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}
        right, bottom = str(orientation[0]), str(orientation[1])
        return {
            "right": right,
            "bottom": bottom,
            "left": "".join(flip.get(c, c) for c in right),
            "top": "".join(flip.get(c, c) for c in bottom),
        }
    return {}


def _direction(vector: list[float]) -> str:
    """Letters of a direction in the patient system (x: L, y: P, z: H), main axis first."""
    letters = (("R", "L"), ("A", "P"), ("F", "H"))
    ranked = sorted(range(3), key=lambda i: -abs(vector[i]))
    return "".join(letters[i][vector[i] > 0] for i in ranked if abs(vector[i]) > 0.25)


def slice_position(ds: Dataset) -> float | None:
    """The position of the slice along its normal, in mm (else Slice Location)."""
    try:
        cosines = [float(v) for v in ds.ImageOrientationPatient]
        position = [float(v) for v in ds.ImagePositionPatient]
        normal = np.cross(cosines[:3], cosines[3:])
        return round(float(np.dot(normal, position)), 2)
    except (AttributeError, TypeError, ValueError):
        location = ds.get("SliceLocation")
        return None if location is None else round(float(location), 2)


def slice_height(ds: Dataset) -> float | None:
    """How high an axial slice is in the patient, in mm towards the head (+z of the
    patient system, LPS: PS3.3 C.7.6.2.1.1): the z of Image Position (Patient). None for
    a slice that is not axial (its normal mostly along x or y) or without a position."""
    try:
        cosines = [float(v) for v in ds.ImageOrientationPatient]
        position = [float(v) for v in ds.ImagePositionPatient]
    except (AttributeError, TypeError, ValueError):
        return None
    normal = np.cross(cosines[:3], cosines[3:])
    if len(position) != 3 or int(np.argmax(np.abs(normal))) != 2:
        return None
    return round(position[2], 2)


def spacing(ds: Dataset) -> dict[str, Any] | None:
    """Row and column spacing in mm, and which attribute gave them (Pixel Spacing is in
    the patient; Imager Pixel Spacing is at the detector, said so to the reader)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if _many(value) and len(value) == 2:
            try:
                return {"row": float(value[0]), "column": float(value[1]), "source": keyword}
            except (TypeError, ValueError):
                return None
    return None


def attributes(ds: Dataset) -> list[tuple[str, str, str]]:
    """(tag, keyword, value) of the top-level attributes, values shortened, no pixels."""
    out = []
    for element in ds:
        if element.tag.group == 0x7FE0 or element.VR in ("OB", "OW", "OF", "OD", "UN"):
            continue
        if element.VR == "SQ":
            value = f"[{len(element.value)} item(s)]"
        else:
            value = str(element.value)
        out.append(
            (
                f"({element.tag.group:04X},{element.tag.element:04X})",
                element.keyword or "",
                value[:120],
            )
        )
    return out
