"""The node's key file: its Ed25519 seed, readable by the node's user only."""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from protocol.identity import Identity
from tsfnode.errors import NodeError

HEADER = "tsfnode-ed25519-seed-v1"


def write_key(path: Path, identity: Identity) -> None:
    """Create ``path`` with mode 0600 (never readable by others, even for an instant)."""
    data = f"{HEADER}\n{base64.b64encode(identity.seed).decode()}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_key(path: Path) -> Identity:
    """Load the node identity; refuse a key file that others can read or write."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise NodeError(
            f"{path} is missing: restore the node's key from its backup "
            "(without it, this is a different node)"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise NodeError(
            f"{path} is accessible to other users (mode {stat.S_IMODE(mode):04o}): "
            f"run 'chmod 600 {path}'"
        )
    lines = path.read_bytes().decode("ascii", "replace").split()
    try:
        if len(lines) != 2 or lines[0] != HEADER:
            raise ValueError
        seed = base64.b64decode(lines[1], validate=True)
        if len(seed) != 32:
            raise ValueError
    except (ValueError, binascii.Error):
        raise NodeError(f"{path} is not a tsfnode key file: restore it from its backup") from None
    return Identity(seed)
