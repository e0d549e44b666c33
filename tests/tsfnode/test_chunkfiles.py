"""Bundles received here, one file each: chunks written in any order, found again
after a crash by their hashes, a full disk reported with what fitted."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.bundle import BundleSealer, Manifest, encode_plaintext_header
from protocol.errors import ProtocolError
from protocol.identity import Identity
from protocol.transfer import ChunkSet
from tests.harness.mounts import small_tmpfs
from tests.harness.waiting import wait_until
from tsfnode.store.blobs import BlobStore
from tsfnode.transfers.chunkfiles import BodyTooLong, ChunkFiles, DiskFull, RunWriter
from tsfnode.transfers.diskcalls import DiskCalls

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


def write(
    files: ChunkFiles,
    manifest: Manifest,
    first: int,
    chunks: list[bytes],
    piece: int = 100_000,
    mine: set[int] | None = None,
) -> RunWriter:
    """Chunks ``first``... as one request body arriving in pieces of ``piece`` bytes."""
    last = first + len(chunks) - 1
    writer = RunWriter(
        files, manifest, first, last, set(range(first, last + 1)) if mine is None else mine
    )
    body = b"".join(chunks)
    try:
        for at in range(0, len(body), piece):
            writer.feed(body[at : at + piece])
    finally:
        writer.close()
    return writer


def test_a_body_is_written_as_it_arrives_and_each_chunk_checked_whatever_its_pieces(
    tmp_path: Path,
) -> None:
    manifest, chunks = sealed(5 * CHUNK + 777)
    n = manifest.chunk_count
    for piece in (1000, CHUNK + 16, 3 * CHUNK, len(b"".join(chunks))):
        files = ChunkFiles(tmp_path / f"chunks-{piece}")
        writer = write(files, manifest, 0, chunks, piece)
        assert writer.complete
        assert writer.verified == list(range(n))
        assert files.read(manifest, 0, n - 1) == chunks
    # A body that stops inside the third chunk: the first two count, the third does not.
    files = ChunkFiles(tmp_path / "short")
    short = RunWriter(files, manifest, 0, n - 1, set(range(n)))
    short.feed(b"".join(chunks)[: 2 * len(chunks[0]) + 5])
    short.close()
    assert not short.complete
    assert (short.index, short.verified) == (2, [0, 1])
    assert files.held_on_disk(manifest, ChunkSet(n)) == [0, 1]
    two = RunWriter(files, manifest, 0, 1, {0, 1})
    with pytest.raises(BodyTooLong, match=f"longer than {len(chunks[0]) * 2} bytes"):
        two.feed(b"".join(chunks[:2]) + b"x")
    two.close()
    with pytest.raises(ValueError, match="not in the bundle"):
        RunWriter(files, manifest, n - 1, n, set())


def test_a_bad_chunk_stops_the_body_and_never_counts(tmp_path: Path) -> None:
    manifest, chunks = sealed(6 * CHUNK)
    files = ChunkFiles(tmp_path / "chunks")
    bad = [*chunks[:3], bytes(len(chunks[3])), *chunks[4:]]
    writer = RunWriter(files, manifest, 0, manifest.chunk_count - 1, set(range(6)))
    with pytest.raises(ProtocolError, match="chunk 3"):
        writer.feed(b"".join(bad))
    writer.close()
    assert writer.verified == [0, 1, 2]
    assert files.held_on_disk(manifest, ChunkSet(manifest.chunk_count)) == [0, 1, 2]


def test_chunks_not_the_writers_are_passed_over(tmp_path: Path) -> None:
    """Chunks held already, or being written by another request, are not written again:
    even a wrong copy of them in the body changes nothing on disk."""
    manifest, chunks = sealed(6 * CHUNK)
    files = ChunkFiles(tmp_path / "chunks")
    write(files, manifest, 0, chunks[:6])
    other = [bytes(len(c)) if i in (1, 4) else c for i, c in enumerate(chunks[:6])]
    writer = write(files, manifest, 0, other, mine={0, 2, 3, 5})
    assert writer.complete
    assert writer.verified == [0, 2, 3, 5]
    assert files.read(manifest, 0, 5) == chunks[:6]


def test_chunks_written_out_of_order_read_back_whole(tmp_path: Path) -> None:
    manifest, chunks = sealed(10 * CHUNK + 1000)
    files = ChunkFiles(tmp_path / "chunks")
    n = manifest.chunk_count
    write(files, manifest, n - 1, chunks[-1:])  # the short last chunk first
    write(files, manifest, 3, chunks[3:7])
    write(files, manifest, 0, chunks[0:3])
    write(files, manifest, 7, chunks[7 : n - 1])
    assert files.read(manifest, 0, n - 1) == chunks
    assert list(files.chunks(manifest, batch=4)) == chunks
    assert files.path_of(manifest.bundle_id).stat().st_size == manifest.ciphertext_size
    files.delete(manifest.bundle_id)
    assert files.read(manifest, 2, 3) == [b"", b""]


def test_after_a_crash_only_whole_matching_chunks_count_as_held(tmp_path: Path) -> None:
    manifest, chunks = sealed(12 * CHUNK)
    files = ChunkFiles(tmp_path / "chunks")
    write(files, manifest, 2, chunks[2:4])
    write(files, manifest, 6, chunks[6:7])
    write(files, manifest, 9, chunks[9:10])
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


def test_a_full_disk_stops_the_body_and_what_fitted_counts(tiny_disk: Path) -> None:
    manifest, chunks = sealed(10 * CHUNK)
    files = ChunkFiles(tiny_disk)
    writer = RunWriter(files, manifest, 0, 7, set(range(8)))
    with pytest.raises(DiskFull) as caught:
        writer.feed(b"".join(chunks[:8]))
    writer.close()
    assert caught.value.strerror == "no space left on device"
    fitted = len(writer.verified)
    assert 0 < fitted < 8
    # what counted is there, whole
    held = files.held_on_disk(manifest, ChunkSet(manifest.chunk_count))
    assert held[:fitted] == list(range(fitted))
    with pytest.raises(DiskFull):
        write(files, manifest, 8, chunks[8:10])


async def test_disk_calls_run_on_the_loop_until_one_is_slow() -> None:
    loop_thread = threading.get_ident()
    disk = DiskCalls()
    disk.THREADS_FOR_S = 0.3
    assert await disk.run(threading.get_ident) == loop_thread
    await disk.run(time.sleep, 0.1)  # slower than SLOW_S: the next ones go to a thread
    assert await disk.run(threading.get_ident) != loop_thread
    with pytest.raises(ZeroDivisionError):  # errors come through either way
        await disk.run(divmod, 1, 0)

    async def back_on_the_loop() -> bool:
        return await disk.run(threading.get_ident) == loop_thread

    await wait_until("calls come back to the loop after THREADS_FOR_S", back_on_the_loop)
    with pytest.raises(ZeroDivisionError):
        await disk.run(divmod, 1, 0)


def _spin(seconds: float) -> None:
    """Busy on the processor (or waiting for one) for ``seconds``, never asleep."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.skipif(
    not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/schedstat"),
    reason="the thread's scheduler statistics are Linux's",
)
async def test_a_call_slow_for_want_of_a_processor_stays_on_the_loop() -> None:
    """A busy machine makes a call slow without the disk stalling: a worker thread would
    wait for a processor as well. Only time asleep in the kernel moves calls to a
    thread."""
    loop_thread = threading.get_ident()
    disk = DiskCalls()
    try:
        await disk.run(_spin, 0.1)  # slower than SLOW_S, but never waiting for the kernel
        assert await disk.run(threading.get_ident) == loop_thread
        await disk.run(time.sleep, 0.1)  # asleep: the disk's way of being slow
        assert await disk.run(threading.get_ident) != loop_thread
    finally:
        disk.close()


def test_the_sender_reads_its_chunks_and_refuses_a_damaged_one(tmp_path: Path) -> None:
    _, chunks = sealed(4 * CHUNK)
    blobs = BlobStore(tmp_path / "blobs")
    names = [blobs.put(c) for c in chunks]
    sizes = [len(c) for c in chunks]
    assert [blobs.get_sized(n, z) for n, z in zip(names, sizes, strict=True)] == chunks
    blobs.path_of(names[2]).write_bytes(chunks[2][:-1])  # cut short on disk
    with pytest.raises(OSError, match=f"blob {names[2].hex()[:16]} is {sizes[2] - 1} bytes"):
        blobs.get_sized(names[2], sizes[2])
