"""Multiplanar reformats (MPR) of a CT or MR volume, rendered on the node.

A series is a volume when its slices share one orientation (Image Orientation
(Patient)), one size (Rows, Columns) and one Pixel Spacing, and lie along their normal
(no gantry tilt), evenly spaced (within ``SPACING_TOLERANCE``), at least ``MIN_SLICES``
of them, in an axial stack (PS3.3 C.7.6.2.1.1). Slices are ordered by their position
projected on the normal, never by Instance Number; the most cranial first, as the
viewer shows an axial stack.

The volume is built once per series, lazily, the first time a reformat is asked for:
each slice decoded once (``render.decode``: Modality LUT applied) and written into a
file in the node's cache (``viewer/mpr/<case>/``), int16 when every value is a whole
number that fits (CT in Hounsfield units), else float32; a plane is then read from that
file by ``os.pread`` (``VolumeFile``: the kernel's page cache, not the node's heap nor a
memory map). What a reformat costs in the node's memory is one slice while the volume
is built, one plane and its resampled copy while it is rendered (16 slices read at once
for a sagittal plane: 8 MB), whatever the volume's size; a volume larger than
``[viewer] mpr_max_mb`` is refused.

Planes (an axial acquisition): axial (a slice, as acquired), coronal (a row of every
slice: the patient's right on the left, head at the top) and sagittal (a column of every
slice: anterior on the left, head at the top). The through-plane axis of a coronal or
sagittal plane is resampled linearly so that its pixels are square: a plane is
``columns`` (coronal) or ``rows`` (sagittal) wide and ``round(slices x slice spacing /
pixel spacing)`` high. Values are interpolated first, then windowed
(``render.linear_window``) and sent as PNG.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import Dataset

from tsfnode.errors import NodeError
from tsfnode.i18n import N_
from tsfnode.images.render import (
    FULL,
    Window,
    _direction,
    decode,
    default_window,
    encode,
    linear_window,
)

PLANES = ("axial", "coronal", "sagittal")
MIN_SLICES = 10  # fewer: no reformat worth reading
SPACING_TOLERANCE = 0.1  # each gap within 10% of the mean gap
TILT_TOLERANCE = 0.05  # in-plane shift per mm along the normal (tan of ~3 degrees)
SAME = 1e-4  # direction cosines, pixel spacing (mm) that differ less are the same
VERSION = 1  # of what is kept on disk
OPEN_AT_MOST = 4  # volumes held open (memory maps) at once
DEFAULT_MAX_MB = 512  # a 1,000-slice 512x512 CT as int16


def volumes_folder(node_root: Path, case_hex: str) -> Path:
    """Where the volumes of a case's series are kept (deleted with its images)."""
    return node_root / "viewer" / "mpr" / case_hex


class NotAVolume(NodeError):
    """The series cannot be reformatted; the message (and catalogue key) says why."""


class TooLarge(NodeError):
    """The volume would be larger than the bound the node is configured with."""


@dataclass(frozen=True)
class Geometry:
    """Where each slice of a volume is, and what each plane looks like."""

    slices: int
    rows: int
    columns: int
    row_spacing: float  # mm between rows (PixelSpacing[0])
    column_spacing: float  # mm between columns (PixelSpacing[1])
    slice_spacing: float  # mm between slices, the mean gap
    positions: tuple[float, ...]  # along the normal (mm), in volume order
    frames: tuple[int, ...]  # each slice's frame in the series listing, in volume order
    markers: dict[str, dict[str, str]]  # plane -> {left, right, top, bottom}
    window: tuple[float, float] | None  # the first slice's own window
    photometric: str

    def count(self, plane: str) -> int:
        """How many planes of this kind there are."""
        return {"axial": self.slices, "coronal": self.rows, "sagittal": self.columns}[plane]

    def size(self, plane: str) -> tuple[int, int]:
        """(width, height) in pixels of a plane of this kind."""
        if plane == "axial":
            return self.columns, self.rows
        if plane == "coronal":
            return self.columns, through_plane_height(self, self.column_spacing)
        return self.rows, through_plane_height(self, self.row_spacing)

    def public(self) -> dict[str, Any]:
        """What the viewer's page gets."""
        return {
            "slices": self.slices,
            "slice_spacing": round(self.slice_spacing, 4),
            "positions": list(self.positions),
            "frames": list(self.frames),
            "planes": {
                plane: {
                    "count": self.count(plane),
                    "width": self.size(plane)[0],
                    "height": self.size(plane)[1],
                    "markers": self.markers[plane],
                }
                for plane in PLANES
            },
        }


def through_plane_height(geometry: Geometry, pixel_spacing: float) -> int:
    """Pixels along the slices' axis so that a pixel is as high as it is wide."""
    return max(1, round(geometry.slices * geometry.slice_spacing / pixel_spacing))


def _floats(ds: Dataset, keyword: str, count: int) -> list[float] | None:
    value = ds.get(keyword)
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == count else None


def refuse(reason: str, key: str, **values: object) -> NotAVolume:
    return NotAVolume(reason, key=key, values=values)


def geometry_of(headers: Sequence[Dataset], frames: Sequence[int] | None = None) -> Geometry:
    """The volume the slices of ``headers`` form (one header per slice; ``frames``: the
    place of each in the series listing), or ``NotAVolume`` saying why not."""
    frames = list(range(len(headers))) if frames is None else list(frames)
    if len(headers) < MIN_SLICES:
        raise refuse(
            f"{len(headers)} image(s): a reformat needs {MIN_SLICES} slices at least",
            N_("mpr_too_few"),
            count=len(headers),
            least=MIN_SLICES,
        )
    first = headers[0]
    if any(int(ds.get("SamplesPerPixel", 1)) != 1 for ds in headers):
        raise refuse("colour images are not reformatted", N_("mpr_colour"))
    if any(int(ds.get("NumberOfFrames", 1) or 1) > 1 for ds in headers):
        raise refuse("a multi-frame image is not reformatted here", N_("mpr_multiframe"))
    cosines = [_floats(ds, "ImageOrientationPatient", 6) for ds in headers]
    positions = [_floats(ds, "ImagePositionPatient", 3) for ds in headers]
    spacings = [_floats(ds, "PixelSpacing", 2) for ds in headers]
    if any(c is None for c in cosines) or any(p is None for p in positions):
        raise refuse("the slices have no position or orientation", N_("mpr_no_geometry"))
    if any(s is None for s in spacings):
        raise refuse("the slices have no Pixel Spacing", N_("mpr_no_geometry"))
    orientation = np.asarray(cosines[0], dtype=np.float64)
    if any(np.abs(np.asarray(c) - orientation).max() > SAME for c in cosines):
        raise refuse("the slices are not all in one orientation", N_("mpr_orientations"))
    size = (int(first.Rows), int(first.Columns))
    if any((int(ds.Rows), int(ds.Columns)) != size for ds in headers):
        raise refuse("the slices are not all of one size", N_("mpr_sizes"))
    spacing = np.asarray(spacings[0], dtype=np.float64)
    if any(np.abs(np.asarray(s) - spacing).max() > SAME for s in spacings) or spacing.min() <= 0:
        raise refuse("the slices' pixel spacings differ", N_("mpr_pixel_spacing"))
    row_dir, column_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, column_dir)
    if int(np.argmax(np.abs(normal))) != 2 or abs(normal[2]) < 0.8:
        raise refuse("reformats are made from an axial stack", N_("mpr_not_axial"))
    points = np.asarray(positions, dtype=np.float64)
    along = points @ normal
    order = np.argsort(along, kind="stable")
    if normal[2] > 0:  # the most cranial slice first
        order = order[::-1]
    along, points = along[order], points[order]
    gaps = np.abs(np.diff(along))
    if gaps.min() < 1e-3:
        raise refuse("two slices are at the same position", N_("mpr_same_position"))
    mean_gap = float(gaps.mean())
    offsets = points - points[0]
    in_plane = offsets - np.outer(offsets @ normal, normal)
    shift = np.linalg.norm(in_plane, axis=1)
    reach = np.abs(offsets @ normal)
    if (shift > TILT_TOLERANCE * reach + 0.01).any():
        raise refuse("the slices are tilted (gantry tilt)", N_("mpr_tilt"))
    uneven = float(np.abs(gaps - mean_gap).max())
    if uneven > SPACING_TOLERANCE * mean_gap:
        raise refuse(
            f"the slices are unevenly spaced ({gaps.min():.2f} to {gaps.max():.2f} mm)",
            N_("mpr_uneven"),
            low=float(gaps.min()),
            high=float(gaps.max()),
        )
    window = default_window(first)
    step = [float(v) for v in (-normal if normal[2] > 0 else normal)]  # slice k to k + 1
    across, down = _direction([float(v) for v in row_dir]), _direction(step)
    markers = {
        "axial": _edges(across, _direction([float(v) for v in column_dir])),
        "coronal": _edges(across, down),
        "sagittal": _edges(_direction([float(v) for v in column_dir]), down),
    }
    return Geometry(
        slices=len(headers),
        rows=size[0],
        columns=size[1],
        row_spacing=float(spacing[0]),
        column_spacing=float(spacing[1]),
        slice_spacing=mean_gap,
        positions=tuple(round(float(a), 2) for a in along),
        frames=tuple(frames[i] for i in order),
        markers=markers,
        window=None if window is None else (window.centre, window.width),
        photometric=str(first.get("PhotometricInterpretation", "MONOCHROME2")),
    )


def _edges(right: str, bottom: str) -> dict[str, str]:
    """The patient directions at a plane's four edges, as ``render.orientation_markers``."""
    flip = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}
    return {
        "right": right,
        "left": "".join(flip.get(c, c) for c in right),
        "bottom": bottom,
        "top": "".join(flip.get(c, c) for c in bottom),
    }


def resample(plane: np.ndarray, height: int) -> np.ndarray:
    """``plane`` (slices x width) resampled linearly along its first axis to ``height``
    rows: output row j samples slice coordinate (j + 0.5) x slices / height - 0.5, clamped
    to the first and last slice (pixel centres aligned, as Pillow and OpenCV do)."""
    n = plane.shape[0]
    t = np.clip((np.arange(height, dtype=np.float64) + 0.5) * n / height - 0.5, 0, n - 1)
    low = np.floor(t).astype(np.intp)
    high = np.minimum(low + 1, n - 1)
    weight = (t - low).astype(np.float32)[:, None]
    source = plane.astype(np.float32, copy=False)
    return source[low] * (1 - weight) + source[high] * weight  # type: ignore[no-any-return]


class VolumeFile:
    """A volume on disk, read a plane at a time with ``os.pread``: neither the file nor
    the pages around what is read are mapped into the node (the kernel's page cache
    keeps them, which it gives back under pressure)."""

    SLICES_AT_ONCE = 16  # a sagittal plane is read through this many slices at a time

    def __init__(self, path: Path, dtype: str, shape: tuple[int, int, int]) -> None:
        self.path, self.dtype, self.shape = path, np.dtype(dtype), shape
        if path.stat().st_size != self.dtype.itemsize * shape[0] * shape[1] * shape[2]:
            raise ValueError("a volume file of another size")

    def _read(self, fd: int, offset: int, count: int) -> np.ndarray:
        data = os.pread(fd, count * self.dtype.itemsize, offset)
        return np.frombuffer(data, dtype=self.dtype, count=count)

    def plane(self, plane: str, index: int) -> np.ndarray:
        """Slice ``index`` (axial), row ``index`` of every slice (coronal: slices x
        columns) or column ``index`` of every slice (sagittal: slices x rows)."""
        slices, rows, columns = self.shape
        size = self.dtype.itemsize
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if plane == "axial":
                return self._read(fd, index * rows * columns * size, rows * columns).reshape(
                    rows, columns
                )
            if plane == "coronal":
                step = rows * columns * size
                return np.stack(
                    [
                        self._read(fd, k * step + index * columns * size, columns)
                        for k in range(slices)
                    ]
                )
            out = np.empty((slices, rows), dtype=self.dtype)
            for first in range(0, slices, self.SLICES_AT_ONCE):
                n = min(self.SLICES_AT_ONCE, slices - first)
                block = self._read(fd, first * rows * columns * size, n * rows * columns)
                out[first : first + n] = block.reshape(n, rows, columns)[:, :, index]
            return out
        finally:
            os.close(fd)


def plane_values(volume: VolumeFile, geometry: Geometry, plane: str, index: int) -> np.ndarray:
    """The values of plane ``index`` (float32), resampled to square pixels."""
    if not 0 <= index < geometry.count(plane):
        raise IndexError(index)
    taken = volume.plane(plane, index).astype(np.float32)
    if plane == "axial":
        return taken
    return resample(taken, geometry.size(plane)[1])


@dataclass
class _Held:
    geometry: Geometry
    volume: VolumeFile


class Volumes:
    """Volumes built on demand in the node's cache (one folder per case: the case's purge
    deletes it with its images), at most ``max_bytes``
    each; the files of ``OPEN_AT_MOST`` kept open; the cache on disk pruned to
    ``4 x max_bytes``, least recently used first. Safe from worker threads."""

    def __init__(self, node_root: Path, max_bytes: int) -> None:
        self.node_root = node_root
        self.root = volumes_folder(node_root, "x").parent
        self.max_bytes = max_bytes
        self._open: OrderedDict[Path, _Held] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Path, threading.Lock] = {}

    def folder(self, case_hex: str) -> Path:
        return volumes_folder(self.node_root, case_hex)

    def geometry(self, slices: Sequence[tuple[Path, int]], headers: Any) -> Geometry:
        """The geometry of the volume ``slices`` would form, from their headers alone
        (``headers(path)``: the renderer's, read once); ``NotAVolume``, ``TooLarge``."""
        geometry = geometry_of([headers(p) for p, _ in slices])
        self._check_size(geometry, 2)
        return geometry

    def held(
        self, case_hex: str, series_uid: str, slices: Sequence[tuple[Path, int]], headers: Any
    ) -> tuple[Geometry, VolumeFile]:
        """The volume of the series whose frames are ``slices`` (file, frame index),
        built if it is not yet; ``headers(path)`` reads a file's header."""
        digest = hashlib.sha256(
            json.dumps([VERSION, series_uid, [(str(p), i) for p, i in slices]]).encode()
        ).hexdigest()[:24]
        path = self.folder(case_hex) / f"{digest}.vol"
        with self._lock:
            found = self._open.get(path)
            if found is not None:
                self._open.move_to_end(path)
                return found.geometry, found.volume
            building = self._building.setdefault(path, threading.Lock())
        with building:  # one build per volume; the others wait for it
            with self._lock:
                found = self._open.get(path)
            if found is None:
                found = self._load(path) or self._build(path, slices, headers)
                with self._lock:
                    self._open[path] = found
                    while len(self._open) > OPEN_AT_MOST:
                        self._open.popitem(last=False)
                    self._building.pop(path, None)
        return found.geometry, found.volume

    def _load(self, path: Path) -> _Held | None:
        meta = path.with_suffix(".json")
        try:
            kept = json.loads(meta.read_text())
            geometry = Geometry(
                **{
                    **kept["geometry"],
                    "positions": tuple(kept["geometry"]["positions"]),
                    "frames": tuple(kept["geometry"]["frames"]),
                    "window": None
                    if kept["geometry"]["window"] is None
                    else tuple(kept["geometry"]["window"]),
                }
            )
            shape = (geometry.slices, geometry.rows, geometry.columns)
            volume = VolumeFile(path, kept["dtype"], shape)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        os.utime(path)  # used: the last to be pruned
        return _Held(geometry, volume)

    def _build(self, path: Path, slices: Sequence[tuple[Path, int]], headers: Any) -> _Held:
        read = [headers(p) for p, _ in slices]
        geometry = geometry_of(read)
        self._check_size(geometry, 2)
        ordered = [(slices[f], read[f]) for f in geometry.frames]
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for dtype in ("int16", "float32"):
            self._check_size(geometry, np.dtype(dtype).itemsize)
            self._prune(geometry.slices * geometry.rows * geometry.columns * 4)
            if self._write(path, ordered, dtype):
                break
        meta = path.with_suffix(".json")
        meta.write_text(json.dumps({"dtype": dtype, "geometry": asdict(geometry)}))
        shape = (geometry.slices, geometry.rows, geometry.columns)
        return _Held(geometry, VolumeFile(path, dtype, shape))

    def _check_size(self, geometry: Geometry, itemsize: int) -> None:
        size = geometry.slices * geometry.rows * geometry.columns * itemsize
        if size > self.max_bytes:
            mb, most = -(-size // 2**20), self.max_bytes // 2**20
            raise TooLarge(
                f"the volume would take {mb} MB; this node reformats {most} MB at most "
                "([viewer] mpr_max_mb)",
                key=N_("mpr_too_large"),
                values={"mb": mb, "most": most},
            )

    def _write(
        self,
        path: Path,
        ordered: Sequence[tuple[tuple[Path, int], Dataset]],
        dtype: str,
    ) -> bool:
        """Every slice decoded into the file at ``path``; False when a value does not
        fit ``dtype`` exactly (then float32 is tried)."""
        tmp = path.with_suffix(".tmp")
        fits = True
        try:  # written slice by slice (a memory map written would hold its dirty pages)
            with tmp.open("wb") as out:
                for (file, index), ds in ordered:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        values = decode(file, index, ds).mono
                    if values is None:
                        raise refuse("colour images are not reformatted", N_("mpr_colour"))
                    if dtype == "int16":
                        whole = np.rint(values)
                        if (
                            not np.array_equal(whole, values)
                            or whole.min() < -32768
                            or whole.max() > 32767
                        ):
                            fits = False
                            break
                    out.write(np.ascontiguousarray(values, dtype=dtype).tobytes())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if not fits:
            tmp.unlink(missing_ok=True)
            return False
        tmp.replace(path)
        return True

    def _prune(self, room: int) -> None:
        """Oldest volumes deleted until the cache holds at most 4 x max_bytes, with
        ``room`` for the one about to be written."""
        files = sorted(self.root.glob("*/*.vol"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        with self._lock:
            for path in files:
                if total + room <= 4 * self.max_bytes:
                    break
                total -= path.stat().st_size
                self._open.pop(path, None)
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)


def window_of(
    geometry: Geometry, chosen: Window | None, presets: dict[str, list[float]], name: str
) -> Window:
    """The window a plane is rendered at: the one asked for (centre and width, or a
    preset's name), else the series' own, else a CT soft-tissue window."""
    if chosen is not None:
        return chosen
    if name and name in presets:
        centre, width = presets[name]
        return Window(float(centre), float(width))
    if geometry.window is not None:
        return Window(*geometry.window)
    return Window(40.0, 400.0)


def render_plane(
    volume: VolumeFile,
    geometry: Geometry,
    plane: str,
    index: int,
    window: Window,
    *,
    invert: bool = False,
    max_size: int = FULL,
) -> bytes:
    """Plane ``index`` of ``plane``, windowed, as PNG."""
    pixels = linear_window(plane_values(volume, geometry, plane, index), window)
    if (geometry.photometric == "MONOCHROME1") != invert:
        pixels = 255 - pixels
    return encode(pixels, max_size=max_size, quality=100, fmt="PNG")
