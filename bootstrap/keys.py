"""Key files: an Ed25519 seed, base64, readable by its owner only (mode 0600).

A person's key held by their home node is also *sealed*: encrypted (XSalsa20-Poly1305)
with a key derived from the node's own key, so a copy of the ``people/`` folder, or a
backup of it, reveals nothing without ``node.key`` beside it. ``read_key`` opens a
sealed file with the ``node.key`` of the node directory it sits in (``DIR/people/X.key``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from pathlib import Path

import nacl.exceptions
import nacl.secret

from protocol.identity import Identity

HEADER = "tsfnode-ed25519-seed-v1"
SEALED_HEADER = "tsfnode-ed25519-seed-sealed-v1"
_SEAL_CONTEXT = b"tsf person keys"


class KeyFileError(Exception):
    """A key file is missing, unreadable, not a key, or open to other users."""


def sealing_key(node: Identity) -> bytes:
    """The key that seals the person keys a node holds, derived from the node's seed."""
    return hashlib.blake2b(node.seed, key=_SEAL_CONTEXT, digest_size=32).digest()


def write_key(
    path: Path, identity: Identity, *, overwrite: bool = False, seal_with: bytes | None = None
) -> None:
    """Create ``path`` with mode 0600 (never readable by others, even for an instant);
    sealed with ``seal_with`` (``sealing_key`` of the node) when given."""
    if seal_with is None:
        data = f"{HEADER}\n{base64.b64encode(identity.seed).decode()}\n".encode()
    else:
        box = nacl.secret.SecretBox(seal_with).encrypt(identity.seed)
        data = f"{SEALED_HEADER}\n{base64.b64encode(bytes(box)).decode()}\n".encode()
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
        if len(words) != 2 or words[0] not in (HEADER, SEALED_HEADER):
            raise ValueError
        seed = base64.b64decode(words[1], validate=True)
    except (ValueError, binascii.Error):
        seed = b""
    if words and words[0] == SEALED_HEADER and seed:
        seed = _unseal(path, seed)
    if len(seed) != 32:
        raise KeyFileError(f"{path} is not a tsfnode key file: restore it from its backup")
    return Identity(seed)


def is_sealed(path: Path) -> bool:
    return path.read_bytes().startswith(SEALED_HEADER.encode())


def _unseal(path: Path, box: bytes) -> bytes:
    node_key = path.parent.parent / "node.key"
    if path.parent.name != "people" or not node_key.exists():
        raise KeyFileError(
            f"{path} is sealed with its node's key: use it where it is, in the node "
            "directory's people/ folder, beside the node's node.key"
        )
    try:
        return bytes(nacl.secret.SecretBox(sealing_key(read_key(node_key))).decrypt(box))
    except nacl.exceptions.CryptoError:
        raise KeyFileError(
            f"{path} does not open with {node_key}: it was sealed by another node"
        ) from None
