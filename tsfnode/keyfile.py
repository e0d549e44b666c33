"""The node's key file (bootstrap/keys.py), with errors for the operator."""

from __future__ import annotations

from pathlib import Path

from bootstrap.keys import KeyFileError
from bootstrap.keys import read_key as _read_key
from bootstrap.keys import write_key as _write_key
from protocol.identity import Identity
from tsfnode.errors import NodeError


def write_key(path: Path, identity: Identity, *, seal_with: bytes | None = None) -> None:
    try:
        _write_key(path, identity, overwrite=True, seal_with=seal_with)
    except KeyFileError as exc:
        raise NodeError(str(exc)) from None


def read_key(path: Path) -> Identity:
    try:
        return _read_key(path)
    except KeyFileError as exc:
        raise NodeError(str(exc)) from None
