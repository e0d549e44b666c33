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

__all__ = ["Listings", "image_folders", "int_of", "kept_listing", "list_series", "listed_series"]

from tsfnode.cases.service import CaseService
from tsfnode.images.listing import int_of, listed
from tsfnode.images.render import PRESETS

SERIES_TTL_S = 60.0
V = TypeVar("V", bound=Sized)


async def image_folders(service: CaseService, case_id: bytes) -> list[Path]:
    """Where a case's images are on this node: the de-identified studies in the intake
    on the sender's node (the first, then each added to the case), the bundles received
    for it elsewhere."""
    row = await service.row(case_id)
    node_dir = service.node_dir
    if row is not None and row.role == "sender":
        sealed = [b.study_uid for b in await service.rows.images_held(case_id)]
        studies = dict.fromkeys([row.study_uid, *sealed])  # in order, each once
        return [node_dir.intake / uid for uid in studies if uid]
    return [node_dir.root / "received" / b.hex() for b in await service.bundles(case_id, "images")]


def _stamp(folders: list[Path]) -> list[float]:
    """What changes when the images change: every folder's last modification."""
    return [
        max((d.stat().st_mtime for d in (f, *f.rglob("*")) if d.is_dir()), default=0.0)
        if f.exists()
        else 0.0
        for f in folders
    ]


SERIES_VERSION = 3  # 2: axial stacks head first; 3: frame of reference (made again)


def listed_series(folders: list[Path], kept: Path) -> list[dict[str, Any]]:
    """``list_series``, kept in ``kept`` (JSON) until the folders change."""
    return kept_listing(folders, kept, list_series, SERIES_VERSION)


def kept_listing(
    folders: list[Path],
    kept: Path,
    make: Callable[[list[Path]], list[dict[str, Any]]],
    version: int = 1,
) -> list[dict[str, Any]]:
    """``make(folders)``, kept in ``kept`` (JSON) until the folders change (or the
    ``version`` of what ``make`` lists): reading the headers of a 500-slice CT takes half
    a second, the file a millisecond."""
    stamp = _stamp(folders)
    try:
        held = json.loads(kept.read_text())
        fresh = held.get("version", 1) == version
        if fresh and held["stamp"] == stamp and held["folders"] == [str(f) for f in folders]:
            return held["series"]  # type: ignore[no-any-return]
    except (FileNotFoundError, ValueError, KeyError):
        pass
    series = make(folders)
    kept.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = kept.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "version": version,
                "stamp": stamp,
                "folders": [str(f) for f in folders],
                "series": series,
            }
        )
    )
    tmp.replace(kept)
    return series


def list_series(folders: list[Path]) -> list[dict[str, Any]]:
    """The series of the images in ``folders``: their frames in anatomical order (an
    axial stack head first, whatever its instance numbers say; else along the slice
    normal; else by instance number), presets, and what the overlay shows;
    from each received bundle's listing, made when it was opened (images/listing.py),
    else from the headers."""
    by_series: dict[str, list[dict[str, Any]]] = {}
    for facts in listed(folders, "viewer"):
        by_series.setdefault(facts["series"], []).append(facts)
    out = []
    for uid, files in sorted(by_series.items(), key=lambda s: s[1][0]["series_number"]):
        files.sort(key=_order_in(files))
        first = files[0]
        frames = [
            {"file": f["file"], "index": i, "position": f["position"]}
            for f in files
            for i in range(f["frames"])
        ]
        presets = {}
        if first["window"] is not None:
            presets["image"] = list(first["window"])
        if first["modality"] == "CT":
            presets.update({k: list(v) for k, v in PRESETS.items()})
        out.append(
            {
                "uid": uid,
                "description": first["description"],
                "modality": first["modality"],
                "frame_of_reference": first.get("frame_of_reference", ""),
                "localizer": first["localizer"],
                "rows": first["rows"],
                "columns": first["columns"],
                "frames": frames,
                "presets": presets,
                "markers": first["markers"],
                "spacing": first["spacing"],
                "lossy": any(f["lossy"] for f in files),
                "photometric": first["photometric"],
                "colour": first["colour"],
            }
        )
    return out


def _order_in(files: list[dict[str, Any]]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """How the images of one series are ordered: an axial stack (every slice with a
    height) from the most cranial slice down, as radiologists read it; else along the
    slice normal; then by instance number and file name."""
    axial = all(f.get("height") is not None for f in files)

    def key(facts: dict[str, Any]) -> tuple[Any, ...]:
        position = facts["position"]
        along = -float(facts["height"]) if axial else float(position or 0.0)
        return (along, facts["instance_number"], facts["name"])

    return key


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
