"""Bundles received here, one file each: chunks written in any order, found again
after a crash by their hashes, a full disk reported with what fitted."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.bundle import BundleSealer, Manifest, encode_plaintext_header
from protocol.identity import Identity
from protocol.transfer import ChunkSet
from tests.mounts import small_tmpfs
from tsfnode.blobs import BlobStore
from tsfnode.chunkfiles import BodyTooLong, ChunkFiles, ChunkSplitter, DiskFull, Received
from tsfnode.diskcalls import DiskCalls

CHUNK = 64 * 1024


def sealed(size: int) -> tuple[Manifest, list[bytes]]:
    """A real bundle of ``size`` random bytes in 64 KiB chunks: manifest and chunks."""
    sender, reader = Identity.generate(os.urandom), Identity.generate(os.urandom)
    sealer = BundleSealer(
        sender=sender, recipients=[reader.public], chunk_size=CHUNK, rng=os.urandom
    )
    chunks = sealer.push(encode_plaintext_header({}, [("a.bin", size)]))
    chunks += sealer.push(os.urandom(size))
    rest, raw = sealer.finish(now=int(time.time() * 1000), ttl=86_400_000)
    return Manifest.decode(raw), chunks + rest


def got(chunks: list[bytes]) -> list[Received]:
    return [Received.of(c) for c in chunks]


def test_a_body_is_cut_into_chunks_hashed_on_the_way_whatever_its_pieces() -> None:
    manifest, chunks = sealed(5 * CHUNK + 777)
    body = b"".join(chunks)
    sizes = [manifest.ciphertext_chunk_size(i) for i in range(manifest.chunk_count)]
    for piece in (1000, CHUNK + 16, 3 * CHUNK, len(body)):
        splitter = ChunkSplitter(sizes)
        for at in range(0, len(body), piece):
            splitter.feed(body[at : at + piece])
        assert splitter.complete
        for i, chunk in enumerate(splitter.chunks):
            assert b"".join(chunk.pieces) == chunks[i]
            manifest.verify_chunk_digest(i, chunk.size, chunk.digest)
    short = ChunkSplitter(sizes)
    short.feed(body[: 2 * len(chunks[0]) + 5])  # ends inside the third chunk
    assert not short.complete
    assert [b"".join(c.pieces) for c in short.chunks] == chunks[:2]
    with pytest.raises(BodyTooLong, match="longer than"):
        ChunkSplitter(sizes[:2]).feed(body[: 2 * len(chunks[0]) + 1])


def test_chunks_written_out_of_order_read_back_whole(tmp_path: Path) -> None:
    manifest, chunks = sealed(10 * CHUNK + 1000)
    files = ChunkFiles(tmp_path / "chunks")
    n = manifest.chunk_count
    files.write(manifest, n - 1, got(chunks[-1:]))  # the short last chunk first
    files.write(manifest, 3, got(chunks[3:7]))
    files.write(manifest, 0, got(chunks[0:3]))
    files.write(manifest, 7, got(chunks[7 : n - 1]))
    assert files.read(manifest, 0, n - 1) == chunks
    assert list(files.chunks(manifest, batch=4)) == chunks
    assert files.path_of(manifest.bundle_id).stat().st_size == manifest.ciphertext_size
    files.delete(manifest.bundle_id)
    assert files.read(manifest, 2, 3) == [b"", b""]


def test_after_a_crash_only_whole_matching_chunks_count_as_held(tmp_path: Path) -> None:
    manifest, chunks = sealed(12 * CHUNK)
    files = ChunkFiles(tmp_path / "chunks")
    files.write(manifest, 2, got(chunks[2:4]))
    files.write(manifest, 6, got(chunks[6:7]))
    files.write(manifest, 9, got(chunks[9:10]))
    path = files.path_of(manifest.bundle_id)
    full = manifest.ciphertext_chunk_size(0)
    with open(path, "r+b") as f:  # a torn write: chunk 9 half there
        f.truncate(9 * full + full // 2)
    held = ChunkSet(manifest.chunk_count)
    held.add(2)  # saved before the crash: not checked again
    assert files.held_on_disk(manifest, held) == [3, 6]  # holes and torn chunk: missing
    assert files.held_on_disk(manifest, ChunkSet(manifest.chunk_count)) == [2, 3, 6]
    other, _ = sealed(CHUNK)
    assert files.held_on_disk(other, ChunkSet(other.chunk_count)) == []  # no file


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "chunks", "256k") as where:
        yield where


def test_a_full_disk_says_how_many_chunks_fitted(tiny_disk: Path) -> None:
    manifest, chunks = sealed(10 * CHUNK)
    files = ChunkFiles(tiny_disk)
    with pytest.raises(DiskFull) as caught:
        files.write(manifest, 0, got(chunks[:8]))
    fitted = caught.value.written
    assert 0 < fitted < 8
    assert caught.value.strerror == "no space left on device"
    # what it says fitted is there, whole
    held = files.held_on_disk(manifest, ChunkSet(manifest.chunk_count))
    assert held[:fitted] == list(range(fitted))
    with pytest.raises(DiskFull) as again:
        files.write(manifest, 8, got(chunks[8:10]))
    assert again.value.written == 0


async def test_disk_calls_run_on_the_loop_until_one_is_slow() -> None:
    loop_thread = threading.get_ident()
    disk = DiskCalls()
    disk.THREADS_FOR_S = 0.3
    assert await disk.run(threading.get_ident) == loop_thread
    await disk.run(time.sleep, 0.1)  # slower than SLOW_S: the next ones go to a thread
    assert await disk.run(threading.get_ident) != loop_thread
    with pytest.raises(ZeroDivisionError):  # errors come through either way
        await disk.run(divmod, 1, 0)
    await asyncio.sleep(0.35)
    assert await disk.run(threading.get_ident) == loop_thread
    with pytest.raises(ZeroDivisionError):
        await disk.run(divmod, 1, 0)


def test_the_sender_reads_a_run_of_its_chunks_and_refuses_a_damaged_one(tmp_path: Path) -> None:
    _, chunks = sealed(4 * CHUNK)
    blobs = BlobStore(tmp_path / "blobs")
    names = [blobs.put(c) for c in chunks]
    sizes = [len(c) for c in chunks]
    assert blobs.get_run(names[1:4], sizes[1:4]) == b"".join(chunks[1:4])
    blobs.path_of(names[2]).write_bytes(chunks[2][:-1])  # cut short on disk
    with pytest.raises(OSError, match=f"blob {names[2].hex()[:16]} is {sizes[2] - 1} bytes"):
        blobs.get_run(names[1:4], sizes[1:4])
