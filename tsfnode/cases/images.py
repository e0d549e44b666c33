"""A case's images as the viewer and DICOMweb list them: where they are on this node,
their series in anatomical order, listings kept on disk until the images change and in
memory for a minute (``Listings``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sized
from pathlib import Path
from typing import Any, Generic, TypeVar

from tsfnode.cases.service import CaseService
from tsfnode.images.render import (
    PRESETS,
    default_window,
    frame_count,
    is_lossy,
    orientation_markers,
    read_header,
    slice_position,
    spacing,
)

SERIES_TTL_S = 60.0
V = TypeVar("V", bound=Sized)


async def image_folders(service: CaseService, case_id: bytes) -> list[Path]:
    """Where a case's images are on this node: the de-identified study in the intake on
    the sender's node, the bundles received for it elsewhere."""
    row = await service.row(case_id)
    node_dir = service.node_dir
    if row is not None and row.role == "sender":
        return [node_dir.intake / row.study_uid]
    return [node_dir.root / "received" / b.hex() for b in await service.bundles(case_id, "images")]


def _stamp(folders: list[Path]) -> list[float]:
    """What changes when the images change: every folder's last modification."""
    return [
        max((d.stat().st_mtime for d in (f, *f.rglob("*")) if d.is_dir()), default=0.0)
        if f.exists()
        else 0.0
        for f in folders
    ]


def listed_series(folders: list[Path], kept: Path) -> list[dict[str, Any]]:
    """``list_series``, kept in ``kept`` (JSON) until the folders change."""
    return kept_listing(folders, kept, list_series)


def kept_listing(
    folders: list[Path], kept: Path, make: Callable[[list[Path]], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """``make(folders)``, kept in ``kept`` (JSON) until the folders change: reading the
    headers of a 500-slice CT takes half a second, the file a millisecond."""
    stamp = _stamp(folders)
    try:
        held = json.loads(kept.read_text())
        if held["stamp"] == stamp and held["folders"] == [str(f) for f in folders]:
            return held["series"]  # type: ignore[no-any-return]
    except (FileNotFoundError, ValueError, KeyError):
        pass
    series = make(folders)
    kept.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = kept.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"stamp": stamp, "folders": [str(f) for f in folders], "series": series})
    )
    tmp.replace(kept)
    return series


def list_series(folders: list[Path]) -> list[dict[str, Any]]:
    """The series of the images in ``folders``: their frames in anatomical order (along
    the slice normal, else by instance number), presets, and what the overlay shows."""
    by_series: dict[str, list[tuple[Path, Any]]] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*.dcm")) if folder.exists() else []:
            try:
                ds = read_header(path)
            except Exception:  # noqa: S112 - not an image: not shown
                continue
            if "Rows" not in ds:
                continue
            by_series.setdefault(str(ds.get("SeriesInstanceUID", path.parent.name)), []).append(
                (path, ds)
            )
    out = []
    for uid, files in sorted(by_series.items(), key=lambda s: int_of(s[1][0][1], "SeriesNumber")):
        files.sort(key=lambda f: (_order(f[1]), int_of(f[1], "InstanceNumber"), f[0].name))
        first = files[0][1]
        frames = [
            {"file": str(path), "index": i, "position": slice_position(ds)}
            for path, ds in files
            for i in range(frame_count(ds))
        ]
        window = default_window(first)
        modality = str(first.get("Modality", ""))
        presets = {}
        if window is not None:
            presets["image"] = [window.centre, window.width]
        if modality == "CT":
            presets.update({k: list(v) for k, v in PRESETS.items()})
        out.append(
            {
                "uid": uid,
                "description": str(first.get("SeriesDescription", "")),
                "modality": modality,
                "localizer": "LOCALIZER" in [str(v).strip() for v in _image_type(first)],
                "rows": int(first.Rows),
                "columns": int(first.Columns),
                "frames": frames,
                "presets": presets,
                "markers": orientation_markers(first),
                "spacing": spacing(first),
                "lossy": any(is_lossy(ds) for _, ds in files),
                "photometric": str(first.get("PhotometricInterpretation", "")),
                "colour": int(first.get("SamplesPerPixel", 1)) > 1
                or str(first.get("PhotometricInterpretation", "")) == "PALETTE COLOR",
            }
        )
    return out


def _image_type(ds: Any) -> list[Any]:
    value = ds.get("ImageType", [])
    return [value] if isinstance(value, str) else list(value)


def int_of(ds: Any, keyword: str) -> int:
    try:
        return int(ds.get(keyword) or 0)
    except (TypeError, ValueError):
        return 0


def _order(ds: Any) -> float:
    position = slice_position(ds)
    return position if position is not None else 0.0


class Listings(Generic[V]):
    """Listings of cases made in the background: one at a time per case (others wait for
    it), kept ``ttl_s``; an empty one is not kept (images still arriving: look again)."""

    def __init__(self, ttl_s: float = SERIES_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._held: dict[bytes, tuple[float, asyncio.Future[V]]] = {}

    def __contains__(self, case_id: bytes) -> bool:
        return case_id in self._held

    async def get(self, case_id: bytes, make: Callable[[], Awaitable[V]]) -> V:
        found = self._held.get(case_id)
        if found is None or (found[1].done() and time.monotonic() - found[0] > self.ttl_s):
            found = self._held[case_id] = (time.monotonic(), asyncio.ensure_future(make()))
        listing = await asyncio.shield(found[1])
        if not listing and self._held.get(case_id) is found:
            del self._held[case_id]
        return listing
