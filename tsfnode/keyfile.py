"""The node's key file (bootstrap/keys.py), with errors for the operator."""

from __future__ import annotations

from pathlib import Path

from bootstrap.keys import KeyFileError
from bootstrap.keys import read_key as _read_key
from bootstrap.keys import write_key as _write_key
from protocol.identity import Identity
from tsfnode.errors import NodeError
from tsfnode.nodedir import NodeDir


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


def retired_key_path(node_dir: NodeDir, key: bytes) -> Path:
    """Where a node keeps a key it rotated away from (mode 0600, like node.key)."""
    return node_dir.retired_keys / f"{key.hex()}.key"


def retired_node_keys(node_dir: NodeDir) -> tuple[Identity, ...]:
    """The node's earlier keys (`tsfnode key rotate`), kept to open what peers sealed to
    them before they learnt of the rotation (SPEC.md §8.5); they sign only receipts."""
    folder = node_dir.retired_keys
    if not folder.is_dir():
        return ()
    return tuple(read_key(path) for path in sorted(folder.glob("*.key")))
