"""What the viewer and DICOMweb list of each DICOM instance, read from its header once.

A bundle received here is listed as it is opened (``OpeningListing``, made for each
opening by the transfer service): each file's header is parsed once, from the bytes the
opener holds as it writes the file (``add``; a file larger than the opener holds is
read back from disk instead), and the viewer's facts (series, order, frames, window,
markers...) written to the bundle's ``listing.json`` before the folder appears
(``write``), what the reader's screen waits for; once the bundle is in place and its
receipt given, ``complete`` writes DICOMweb's records (UIDs, frames, stored syntax, the
DICOM JSON model, made by ``dicomjson.py`` in about a third of pydicom's time) into
``listing-dicomweb.json`` beside it, from the same parsed headers, held in memory until
then (``HeaderBudget`` bounds how many: past it, ``complete_listing`` reads them from
disk again). Each part is a file of its own, written a record at a time: a 2,000-slice
CT's DICOMweb records are 9 MB of JSON and 70 MB once parsed, which the viewer never
reads, and which neither part holds in memory whole as it writes them (the reader's
node in a 256 MiB box was OOM-killed while the viewer read them). The viewer and
DICOMweb then list a case from these files, without reading a header again; a folder
without one (the sender's intake, a bundle opened by an earlier version), or without
DICOMweb's part yet, is listed from its headers as before.
"""

from __future__ import annotations

import json
import secrets
import threading
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from pydicom.dataset import Dataset
from pydicom.uid import UID

from tsfnode.heap import ROOMY, memory_room
from tsfnode.images import dicomjson
from tsfnode.images.render import (
    default_window,
    frame_count,
    header_of_bytes,
    is_lossy,
    orientation_markers,
    read_header,
    slice_height,
    slice_position,
    spacing,
)

LISTING = "listing.json"  # the viewer's facts, there as soon as the bundle is
DICOMWEB_LISTING = "listing-dicomweb.json"  # DICOMweb's records, after the receipt
FILES = {"viewer": LISTING, "dicomweb": DICOMWEB_LISTING}
PATH_KEYS = {"viewer": "file", "dicomweb": "path"}
# 2: "localizer"; 3: "height"; 4: "frame_of_reference" and "parts" (the listings it
# holds); 5: each part in a file of its own (DICOMweb's records, 4.4 kB each for a CT
# slice and 33 kB once parsed, no longer read with the viewer's); an earlier version is
# listed from the headers again
LISTING_VERSION = 5
_PREFIX = f'{{"version": {LISTING_VERSION}, "instances": ['.encode()
BULK = "tsf-bulk:"  # in a kept listing; the URL of each request replaces it
BULK_THRESHOLD = 1024  # bytes: binary values above this are BulkDataURIs
PIXEL_DATA = "7FE00010"
AVAILABLE_SYNTAX = "00083002"  # Available Transfer Syntax UID (PS3.3 C.12.1)
# Parsed headers that openings may hold at once until DICOMweb's part is made (about
# 45 kB each for a CT slice): past it an opening's part is read from disk again.
HELD_HEADERS_MAX = 1024


def int_of(ds: Any, keyword: str) -> int:
    try:
        return int(ds.get(keyword) or 0)
    except (TypeError, ValueError):
        return 0


def dicomweb_record(path: Path, ds: Dataset) -> dict[str, Any]:
    """DICOMweb's record of the instance at ``path`` whose header is ``ds`` (raises on
    what is not a DICOM instance)."""
    uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    meta = dicomjson.to_json_dict(ds, BULK_THRESHOLD, BULK)  # pydicom's, made faster
    meta[AVAILABLE_SYNTAX] = {"vr": "UI", "Value": [syntax]}
    if "Rows" in ds:
        native_ow = int(ds.get("BitsAllocated", 8)) > 8 and not UID(syntax).is_compressed
        meta[PIXEL_DATA] = {"vr": "OW" if native_ow else "OB", "BulkDataURI": BULK + PIXEL_DATA}
    return {
        "path": str(path),
        "study": str(uids[0]),
        "series": str(uids[1]),
        "sop": str(uids[2]),
        "sop_class": str(ds.get("SOPClassUID", "")),
        "frames": frame_count(ds) if "Rows" in ds else 0,
        "syntax": syntax,
        "meta": meta,
    }


def viewer_facts(path: Path, ds: Dataset) -> dict[str, Any] | None:
    """What the viewer needs of the image at ``path`` (None: not an image)."""
    if "Rows" not in ds:
        return None
    window = default_window(ds)
    position = slice_position(ds)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    return {
        "file": str(path),
        "name": path.name,
        "series": str(ds.get("SeriesInstanceUID", path.parent.name)),
        "series_number": int_of(ds, "SeriesNumber"),
        "instance_number": int_of(ds, "InstanceNumber"),
        "position": position,
        "height": slice_height(ds),
        "frames": frame_count(ds),
        "description": str(ds.get("SeriesDescription", "")),
        "modality": str(ds.get("Modality", "")),
        "frame_of_reference": str(ds.get("FrameOfReferenceUID", "")),
        "localizer": "LOCALIZER" in _image_type(ds),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "window": None if window is None else [window.centre, window.width],
        "markers": orientation_markers(ds),
        "spacing": spacing(ds),
        "lossy": is_lossy(ds),
        "photometric": photometric,
        "colour": int(ds.get("SamplesPerPixel", 1)) > 1 or photometric == "PALETTE COLOR",
    }


def _image_type(ds: Dataset) -> list[str]:
    value = ds.get("ImageType", [])
    return [str(v).strip() for v in ([value] if isinstance(value, str) else value)]


MAKERS = {"dicomweb": dicomweb_record, "viewer": viewer_facts}


def describe(
    path: Path, which: tuple[str, ...] = ("dicomweb", "viewer"), folder: Path | None = None
) -> dict[str, Any]:
    """DICOMweb's record and the viewer's facts (those named in ``which``) of the file at
    ``path``, from one read of its header (None for what each does not list); their
    paths relative to ``folder`` when one is named (a listing file's)."""
    try:
        ds = read_header(path)
    except Exception:  # not DICOM: listed by neither
        ds = None
    named = path if folder is None else path.relative_to(folder)
    return {name: _made(name, named, ds) for name in which}


def index_bundle(folder: Path, which: tuple[str, ...] = ("viewer",)) -> None:
    """List every DICOM file of an opened bundle's ``folder`` into its listing files
    (paths relative to the folder, which is renamed into place afterwards): ``which``
    of the parts, the viewer's alone by default, since the reader waits for it
    (DICOMweb's, nine tenths of the work, follows: ``complete_listing``). Each header
    is read once for all the parts named; DICOMweb's records are written as made."""
    paths = sorted(folder.rglob("*.dcm"))
    viewer: list[dict[str, Any] | None] = []

    def described() -> Iterator[dict[str, Any] | None]:
        for path in paths:
            made = describe(path, which, folder)
            viewer.append(made.get("viewer"))
            yield made.get("dicomweb")

    if "dicomweb" in which:
        _write_part(folder, "dicomweb", described())
    else:
        for _ in described():
            pass
    if "viewer" in which:
        _write_part(folder, "viewer", viewer)


def complete_listing(folder: Path) -> None:
    """Write DICOMweb's part of the listing of the opened bundle in ``folder`` when it
    has the viewer's alone (run once the bundle is in place and its receipt given;
    until then DICOMweb lists that folder from its headers), each record as its header
    is read again: never the whole bundle's records in memory at once. Nothing is done
    to a folder gone, never listed, or listed whole already."""
    if not _has_part(folder, "viewer") or _has_part(folder, "dicomweb"):
        return
    try:
        paths = sorted(folder.rglob("*.dcm"))
        _write_part(
            folder, "dicomweb", (describe(p, ("dicomweb",), folder)["dicomweb"] for p in paths)
        )
    except OSError:  # the bundle's images deleted meanwhile
        return


class HeaderBudget:
    """How many parsed headers the openings waiting for DICOMweb's part hold at once, at
    most (``most``; by default ``HELD_HEADERS_MAX`` where the node has 1 GiB or more,
    none in a smaller box, where each header is read again instead): one for the node,
    shared by its openings' threads, taken a header at a time as each file is opened,
    so an opening never holds a whole bundle's headers past it. An opening dropped
    without ``complete`` (a bundle that failed to open) counts no more."""

    def __init__(self, most: int | None = None) -> None:
        self.most = most if most is not None else _held_headers_max()
        self._holding: weakref.WeakSet[OpeningListing] = weakref.WeakSet()
        self._lock = threading.Lock()

    def opening(self) -> OpeningListing:
        """The listing of one bundle about to be opened."""
        return OpeningListing(self)

    def take(self, opening: OpeningListing) -> bool:
        """One more header held by ``opening``, if the budget has room for it."""
        with self._lock:
            if sum(o.held for o in self._holding) >= self.most:
                return False
            self._holding.add(opening)
            opening.held += 1
            return True

    def release(self, opening: OpeningListing) -> None:
        with self._lock:
            opening.held = 0
            self._holding.discard(opening)


def _held_headers_max() -> int:
    """``HELD_HEADERS_MAX`` where this process has 1 GiB or more (heap.py), else none:
    in a 256 MiB box a large CT's headers (45 kB each) would take a fifth of it."""
    return HELD_HEADERS_MAX if memory_room() >= ROOMY else 0


class OpeningListing:
    """The listing of one bundle, made as the transfer service opens it: ``add`` each
    file as it is written (its bytes, already in memory), ``write`` the viewer's part
    into the folder before it is renamed into place, ``complete`` DICOMweb's once the
    bundle is in place and its receipt given. Each header is parsed once, and its viewer
    facts made at once; the header itself is held for DICOMweb's part while the budget
    allows, else every header of the bundle is read again from disk (``complete_listing``)."""

    def __init__(self, budget: HeaderBudget) -> None:
        self._budget = budget
        # (path in the folder, the viewer's facts, the header held or None)
        self._found: list[tuple[Path, dict[str, Any] | None, Dataset | None]] = []
        self._written = False  # the viewer's part written
        self._whole = True  # every header held: DICOMweb's part made from them
        self.held = 0  # headers held for ``complete``

    def wants(self, name: str) -> bool:
        """Whether the file ``name`` of the bundle is listed (what ``index_bundle`` lists)."""
        return name.endswith(".dcm")

    def add(self, name: str, path: Path, data: bytes | None) -> None:
        """The file ``name`` (its path relative to the folder) just written at ``path``:
        ``data`` its bytes, or None when it was too large to hold (then its header is
        read from ``path``). A file that is not DICOM is listed by neither part."""
        if not self.wants(name):
            return
        try:
            ds = read_header(path) if data is None else header_of_bytes(data)
        except Exception:  # not DICOM: listed by neither
            ds = None
        relative = Path(name)
        viewer = _made("viewer", relative, ds)
        if ds is not None and self._whole and not self._budget.take(self):
            self._whole = False  # past the budget: none held, all read again later
            self._found = [(p, v, None) for p, v, _ in self._found]
            self._budget.release(self)
        self._found.append((relative, viewer, ds if self._whole else None))

    def write(self, folder: Path) -> None:
        """The viewer's part into ``folder``'s ``listing.json`` (as ``index_bundle``)."""
        self._found.sort(key=lambda found: found[0])
        self._written = True
        # straight into the file: the folder being opened appears whole, or not at all
        with (folder / LISTING).open("w") as out:
            _write_records(out, (viewer for _, viewer, _ in self._found))

    def complete(self, folder: Path) -> None:
        """DICOMweb's part written beside the viewer's in the bundle now in ``folder``,
        from the headers held (read again from disk when they were not:
        ``complete_listing``), each record written as made and its header let go.
        Nothing is done to a folder gone meanwhile."""
        found, self._found = self._found, []
        try:
            if not self._written or not self._whole:
                complete_listing(folder)
            elif (folder / LISTING).is_file():  # else purged meanwhile
                found.reverse()  # popped from the end: the first file first
                _write_part(folder, "dicomweb", _popped_records(found))
        except OSError:  # the bundle's images deleted meanwhile
            return
        finally:
            self._budget.release(self)


def _popped_records(
    found: list[tuple[Path, dict[str, Any] | None, Dataset | None]],
) -> Iterator[dict[str, Any] | None]:
    """DICOMweb's record of each held header, from the end of ``found``, each header let
    go as its record is made."""
    while found:
        path, _, ds = found.pop()
        yield _made("dicomweb", path, ds)


def _made(name: str, path: Path, ds: Dataset | None) -> dict[str, Any] | None:
    """``name``'s listing ("viewer" or "dicomweb") of the file at ``path`` whose header
    is ``ds`` (None: not DICOM), as ``describe`` makes it."""
    if ds is None:
        return None
    try:
        made: dict[str, Any] | None = MAKERS[name](path, ds)
    except Exception:  # not an instance, or an image, that it lists
        return None
    return made


def _write_records(out: TextIO, records: Iterable[dict[str, Any] | None]) -> None:
    """A listing file into ``out``: its version first (``_has_part`` reads no further),
    then each record as it comes (those of files a part does not list are left out)."""
    out.write(f'{{"version": {LISTING_VERSION}, "instances": [')
    first = True
    for record in records:
        if record is not None:
            out.write(json.dumps(record) if first else ", " + json.dumps(record))
            first = False
    out.write("]}")


def _write_part(folder: Path, which: str, records: Iterable[dict[str, Any] | None]) -> None:
    """``which``'s listing file in ``folder``, written whole under another name first."""
    tmp = folder / f"{FILES[which]}.{secrets.token_hex(6)}.tmp"
    try:
        with tmp.open("w") as out:
            _write_records(out, records)
        tmp.replace(folder / FILES[which])
    finally:
        tmp.unlink(missing_ok=True)


def _has_part(folder: Path, which: str) -> bool:
    """Whether ``folder`` holds ``which``'s listing file of this version (its first
    bytes alone read)."""
    try:
        with (folder / FILES[which]).open("rb") as held:
            return held.read(len(_PREFIX)) == _PREFIX
    except OSError:
        return False


def bundle_listing(folder: Path, which: str) -> list[dict[str, Any]] | None:
    """``which``'s listing ("viewer" or "dicomweb") written when the bundle in ``folder``
    was opened, its paths made whole again; None when there is none (yet), or when it
    cannot be read (then headers are)."""
    try:
        held = json.loads((folder / FILES[which]).read_text())
        if held.get("version") != LISTING_VERSION:
            return None
        instances: list[dict[str, Any]] = held["instances"]
        key = PATH_KEYS[which]
        for instance in instances:
            instance[key] = str(folder / instance[key])
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return None
    return instances


def listed(folders: list[Path], which: str) -> list[dict[str, Any]]:
    """``which`` ("dicomweb" or "viewer") of every instance in ``folders``: from each
    folder's listing when it has one, else from the headers of its files."""
    out: list[dict[str, Any]] = []
    for folder in folders:
        kept = bundle_listing(folder, which)
        if kept is None:
            paths = sorted(folder.rglob("*.dcm")) if folder.exists() else []
            made = (describe(p, (which,))[which] for p in paths)
            kept = [m for m in made if m is not None]
        out.extend(kept)
    return out
