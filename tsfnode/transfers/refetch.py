"""The bundles a restored node fetches again: those its backup listed instead of holding
(`tsfnode/store/backup.py`, ``DIR/refetch.json``). `tsfnode restore` set each back to
``receiving`` with its sender among its sources; the inbox's pulls bring them back (each
chunk checked against the signed manifest, the bundle opened again). This module keeps
the list true: a bundle back is crossed off, one that cannot be fetched is named in the
log (once per process), and `tsfnode doctor` reads what is left."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tsfnode.store.backup import REFETCH


@dataclass(frozen=True)
class Listed:
    bundle: str  # hex
    manifest: str  # hex BLAKE3 of the signed manifest


def refetch_path(root: Path) -> Path:
    return root / REFETCH


def read_listed(root: Path) -> list[Listed]:
    """The bundles still to fetch again; none if the file is missing or unreadable."""
    try:
        raw = json.loads(refetch_path(root).read_text("utf-8"))
        return [Listed(str(e["bundle"]), str(e["manifest"])) for e in raw]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write_listed(root: Path, listed: list[Listed]) -> None:
    """Keep ``listed`` (written aside then renamed); the file goes when none is left."""
    path = refetch_path(root)
    if not listed:
        path.unlink(missing_ok=True)
        return
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump([{"bundle": e.bundle, "manifest": e.manifest} for e in listed], out)
    partial.replace(path)
