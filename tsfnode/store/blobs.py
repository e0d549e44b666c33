"""The blob store: files on disk named by the BLAKE3 digest of their content."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from protocol.documents import digest


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)

    def path_of(self, name: bytes) -> Path:
        h = name.hex()
        return self.root / h[:2] / h[2:]

    def put(self, data: bytes, name: bytes | None = None, *, sync: bool = True) -> bytes:
        """Store ``data`` (atomically: written aside, renamed); return its digest.
        ``name``: its digest, when the caller has just checked it. ``sync``: fsync before
        the rename (a crash of the process never loses a written file either way; a power
        cut may, and callers that skip it check what they read)."""
        name = name or digest(data)
        path = self.path_of(name)
        if path.exists():
            return name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
        with open(tmp, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        return name

    def get(self, name: bytes) -> bytes:
        return self.path_of(name).read_bytes()

    def get_sized(self, name: bytes, size: int) -> bytes:
        """A blob that must be ``size`` bytes long (the sender's chunks: a cheap path,
        as it is taken for every chunk sent)."""
        h = name.hex()
        fd = os.open(os.path.join(self._root, h[:2], h[2:]), os.O_RDONLY)
        try:
            data = os.read(fd, size)
        finally:
            os.close(fd)
        if len(data) != size:
            raise OSError(errno.EIO, f"blob {h[:16]} is {len(data)} bytes, not {size}")
        return data

    def __contains__(self, name: bytes) -> bool:
        return self.path_of(name).exists()

    def delete(self, name: bytes) -> None:
        self.path_of(name).unlink(missing_ok=True)
