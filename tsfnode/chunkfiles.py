"""Bundles received here, as recipient or as relay: the encrypted chunks of each in one
file, chunk ``i`` at ``i`` times the full chunk size, written as they arrive, in any order.

One file a bundle rather than one a chunk: a 512 MiB bundle has 4096 chunks, and creating
4096 files costs more time than moving their bytes (bench transfer_loopback_throughput).
Nothing here is trusted blindly: a chunk counts as held once it was checked against the
manifest and written; after a crash, the chunks written since the last save of the chunk
set are found again by checking their bytes against the manifest (``held_on_disk``);
a hole or a torn write never matches.

Called from worker threads only (blocking file I/O).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from protocol.bundle import Manifest
from protocol.documents import digest, hasher
from protocol.transfer import ChunkSet

IOV_MAX = 1024  # buffers in one pwritev (Linux)


@dataclass(frozen=True, slots=True)
class Received:
    """A chunk as it arrived: its pieces (not joined), size and digest."""

    pieces: tuple[bytes | memoryview, ...]
    size: int
    digest: bytes

    @classmethod
    def of(cls, data: bytes) -> Received:
        return cls((data,), len(data), digest(data))


class BodyTooLong(ValueError):
    pass


class ChunkSplitter:
    """A request body of consecutive chunks of ``sizes`` bytes, cut into chunks as it
    arrives and each hashed on the way, without copying (the pieces are kept as views).
    ``chunks``: the chunks received whole so far."""

    def __init__(self, sizes: list[int]) -> None:
        self._sizes = sizes
        self.chunks: list[Received] = []
        self._pieces: list[memoryview] = []
        self._hasher = hasher()
        self._need = sizes[0] if sizes else 0

    @property
    def complete(self) -> bool:
        return len(self.chunks) == len(self._sizes)

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.complete:
                raise BodyTooLong(f"the body is longer than {sum(self._sizes)} bytes")
            piece = view[: self._need]
            view = view[len(piece) :]
            self._pieces.append(piece)
            self._hasher.update(piece)
            self._need -= len(piece)
            if not self._need:
                size = self._sizes[len(self.chunks)]
                self.chunks.append(Received(tuple(self._pieces), size, self._hasher.digest()))
                self._pieces, self._hasher = [], hasher()
                if not self.complete:
                    self._need = self._sizes[len(self.chunks)]


class DiskFull(OSError):
    """A write that did not fit: ``written`` chunks of the run went to disk whole."""

    def __init__(self, written: int) -> None:
        super().__init__(errno.ENOSPC, "no space left on device")
        self.written = written


class ChunkFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, bundle_id: bytes) -> Path:
        return self.root / bundle_id.hex()

    def write(self, manifest: Manifest, first: int, chunks: list[Received]) -> None:
        """Write consecutive chunks from ``first`` (already checked by the caller), their
        pieces gathered by ``pwritev``. Raises DiskFull, saying how many went to disk
        whole, when the disk fills up on the way (other OSErrors: nothing of this run
        counts as written)."""
        if not chunks:
            return
        full = manifest.ciphertext_chunk_size(0)
        pieces = [p for c in chunks for p in c.pieces]
        total = sum(c.size for c in chunks)
        done = 0
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path_of(manifest.bundle_id), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                for at in range(0, len(pieces), IOV_MAX):
                    batch = pieces[at : at + IOV_MAX]
                    wrote = os.pwritev(fd, batch, first * full + done)
                    done += wrote
                    if wrote < sum(len(p) for p in batch):
                        break  # a short write: the disk is full
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(done // full) from None
            raise
        if done < total:
            raise DiskFull(done // full)

    def read(self, manifest: Manifest, first: int, last: int) -> list[bytes]:
        """Chunks ``first`` to ``last`` as stored; a chunk beyond the end of the file comes
        back short (the caller checks every chunk it reads against the manifest)."""
        full = manifest.ciphertext_chunk_size(0)
        sizes = [manifest.ciphertext_chunk_size(i) for i in range(first, last + 1)]
        try:
            fd = os.open(self.path_of(manifest.bundle_id), os.O_RDONLY)
        except FileNotFoundError:
            return [b""] * len(sizes)
        try:
            data = os.pread(fd, sum(sizes), first * full)
        finally:
            os.close(fd)
        out, at = [], 0
        for size in sizes:
            out.append(data[at : at + size])
            at += size
        return out

    def chunks(self, manifest: Manifest, *, batch: int = 32) -> Iterator[bytes]:
        """Every chunk in order, as stored (short past the end of the file)."""
        for first in range(0, manifest.chunk_count, batch):
            yield from self.read(manifest, first, min(first + batch, manifest.chunk_count) - 1)

    def held_on_disk(self, manifest: Manifest, held: ChunkSet) -> list[int]:
        """Chunks not in ``held`` whose bytes on disk match the manifest (written before a
        crash, after the last save of the set)."""
        full = manifest.ciphertext_chunk_size(0)
        path = self.path_of(manifest.bundle_id)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return []
        found = []
        with open(path, "rb") as f:
            for i in range(manifest.chunk_count):
                length = manifest.ciphertext_chunk_size(i)
                if i in held or i * full + length > size:
                    continue
                f.seek(i * full)
                if digest(f.read(length)) == manifest.chunk_hash(i):
                    found.append(i)
        return found

    def delete(self, bundle_id: bytes) -> None:
        self.path_of(bundle_id).unlink(missing_ok=True)
