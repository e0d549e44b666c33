"""The node directory: where a node keeps its config, key, database and blobs.

DIR/config.toml   settings (TOML), written by `tsfnode init`, edited by the operator
DIR/node.key      the node's Ed25519 seed, mode 0600
DIR/retired-keys/ the node's earlier keys (`tsfnode key rotate`), mode 0600
DIR/node.db       the database (SQLite, schema migrations in tsfnode/store/)
DIR/blobs/        content-addressed files (bundle chunks, DICOM)
DIR/intake/       de-identified studies, STUDY/SERIES/SOP.dcm, and STUDY/review.json
DIR/pseudonyms/   the pseudonym map (encrypted) and its key, mode 0600
DIR/run.json      written while the node runs: pid and the address it listens on
DIR/node.lock     held (flock) while the node runs, so it runs once
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class NodeDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def key(self) -> Path:
        return self.root / "node.key"

    @property
    def retired_keys(self) -> Path:
        """The node's keys before a rotation, to open what was sealed to them."""
        return self.root / "retired-keys"

    @property
    def database(self) -> Path:
        return self.root / "node.db"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def chunks(self) -> Path:
        """Bundles being received or relayed, one file each (tsfnode/chunkfiles.py)."""
        return self.root / "chunks"

    @property
    def intake(self) -> Path:
        return self.root / "intake"

    @property
    def pseudonyms(self) -> Path:
        return self.root / "pseudonyms"

    @property
    def people(self) -> Path:
        """The person keys of the node's accounts (people/USERNAME.key, mode 0600)."""
        return self.root / "people"

    @property
    def run_info(self) -> Path:
        return self.root / "run.json"

    @property
    def lock(self) -> Path:
        return self.root / "node.lock"

    def exists(self) -> bool:
        return self.config.exists() or self.key.exists() or self.database.exists()


def read_run_info(node_dir: NodeDir) -> dict[str, Any] | None:
    """What a running node wrote in run.json, if its process is still alive."""
    try:
        info = json.loads(node_dir.run_info.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if isinstance(info, dict) else None
