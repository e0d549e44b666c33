"""Key files: an Ed25519 seed, base64, readable by its owner only (mode 0600)."""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from protocol.identity import Identity

HEADER = "tsfnode-ed25519-seed-v1"


class KeyFileError(Exception):
    """A key file is missing, unreadable, not a key, or open to other users."""


def write_key(path: Path, identity: Identity, *, overwrite: bool = False) -> None:
    """Create ``path`` with mode 0600 (never readable by others, even for an instant)."""
    data = f"{HEADER}\n{base64.b64encode(identity.seed).decode()}\n".encode()
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists: a key is never overwritten") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_key(path: Path) -> Identity:
    """Load an identity; refuse a key file that others can read or write."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(
            f"{path} is missing: restore the key from its backup "
            "(without it, this is a different identity)"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path} is accessible to other users (mode {stat.S_IMODE(mode):04o}): "
            f"run 'chmod 600 {path}'"
        )
    words = path.read_bytes().decode("ascii", "replace").split()
    try:
        if len(words) != 2 or words[0] != HEADER:
            raise ValueError
        seed = base64.b64decode(words[1], validate=True)
        if len(seed) != 32:
            raise ValueError
    except (ValueError, binascii.Error):
        raise KeyFileError(
            f"{path} is not a tsfnode key file: restore it from its backup"
        ) from None
    return Identity(seed)
