"""Sealing a study from the intake into a bundle for its recipients' nodes.

Only a study whose flagged images were all confirmed or masked may be sealed (the
review gate, intake/review.py). Each file is compressed for the journey (lossless
JPEG-LS or deflate when smaller, intake/compress.py), on every core (``TransportPool``,
worker processes started on first use), into a scratch folder, so that the bundle's
header can list the sizes; then header and files stream through the sealer, whose
chunks go to the blob store under their BLAKE3 name (the hash the manifest lists).
Memory stays at about two files per core plus one chunk.
"""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import tempfile
import threading
import warnings
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from protocol.bundle import BundleSealer, Manifest, choose_chunk_size, encode_plaintext_header
from protocol.identity import Identity, PublicIdentity
from tsfnode.errors import NodeError
from tsfnode.intake.compress import encode_file_for_transport
from tsfnode.intake.journey import prepared, worker_context
from tsfnode.intake.review import ReviewBook
from tsfnode.logs import log
from tsfnode.store.blobs import BlobStore
from tsfnode.transfers.durable import make_durable

DAY_MS = 86_400_000
BUNDLE_TTL_MS = 30 * DAY_MS
READ_PIECE = 1024 * 1024


DOCUMENTS_FILE = "documents.tsfd"


@dataclass(frozen=True)
class Sealed:
    manifest: Manifest
    files: int
    plaintext_bytes: int
    original_bytes: int


def _transport_bytes(path: Path) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings may quote values
        return encode_file_for_transport(path)


IDLE_S = 300.0  # the worker processes stop after this long without a study to encode
PARALLEL_FROM = 4  # files: fewer are encoded in the caller's thread


class TransportPool:
    """Encodes a study's files for the journey on every core: one worker process per
    core (``os.cpu_count()``), started when a study first needs them (never for a study
    of fewer than ``PARALLEL_FROM`` files, nor on one core) and stopped after ``IDLE_S``
    without work. Called from a worker thread, never on the event loop. At most two
    files per worker are in flight, so memory stays bounded whatever the study."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers if workers is not None else os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._users = 0
        self._timer: threading.Timer | None = None
        self.started = 0  # how many times worker processes were started

    def encode(self, paths: list[Path]) -> Generator[bytes, None, None]:
        """Each file of ``paths`` encoded for the journey, in order."""
        if self.workers == 1 or len(paths) < PARALLEL_FROM:
            for path in paths:
                yield _transport_bytes(path)
            return
        pool = self._acquire()
        pending: deque[Future[bytes]] = deque()
        done = 0
        try:
            queued = iter(paths)
            for path in itertools.islice(queued, 2 * self.workers):
                pending.append(pool.submit(encode_file_for_transport, path))
            while pending:
                data = pending.popleft().result()
                following = next(queued, None)
                if following is not None:
                    pending.append(pool.submit(encode_file_for_transport, following))
                done += 1
                if done == len(paths):  # said before the last file: the caller stops there
                    log("study encoded for the journey", files=done, processes=self.workers)
                yield data
        except BrokenProcessPool:  # a worker died (killed, out of memory): go on here
            self._broken(pool)
            log("transport encoding goes on in one process", error="BrokenProcessPool")
            for rest in paths[done:]:
                yield _transport_bytes(rest)
        finally:
            for future in pending:
                future.cancel()
            self._release()

    def _acquire(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, mp_context=worker_context())
                self.started += 1
            self._users += 1
            return self._pool

    def _broken(self, pool: ProcessPoolExecutor) -> None:
        """Forget a pool whose worker died: the next study starts new workers."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def _release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._pool is not None:
                self._timer = threading.Timer(IDLE_S, self._stop_if_idle)
                self._timer.daemon = True
                self._timer.start()

    def _stop_if_idle(self) -> None:
        with self._lock:
            if self._users == 0 and self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None
            self._timer = None

    def close(self) -> None:
        """Stop the worker processes now (they start again if needed)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


TRANSPORT_POOL = TransportPool()


def seal_in(
    directory: Path,
    sender: Identity,
    recipients: list[PublicIdentity],
    study_uid: str,
    *,
    now: int,
    priority: int = 0,
    case: dict[str, object] | None = None,
) -> Sealed:
    """``seal_study`` of the intake of the node directory ``directory`` into its blob
    store (``case``: ``{"study_uid": study_uid}`` unless given)."""
    return seal_study(
        intake=directory / "intake", blobs=BlobStore(directory / "blobs"),
        scratch=directory / "tmp", sender=sender, recipients=recipients,
        study_uid=study_uid, case=case or {"study_uid": study_uid}, priority=priority,
        now=now,
    )  # fmt: skip


def seal_study(
    *,
    intake: Path,
    blobs: BlobStore,
    scratch: Path,
    sender: Identity,
    recipients: list[PublicIdentity],
    study_uid: str,
    case: dict[str, object],
    priority: int,
    now: int,
    rng: Callable[[int], bytes] = os.urandom,
    compress: bool = True,
    documents: bytes = b"",
    pool: TransportPool | None = None,
) -> Sealed:
    """Seal ``study_uid`` for ``recipients``; NotReviewed (a NodeError) while a flagged
    image is unchecked. ``documents`` (signed documents, one after the other: the case's
    request) go first, as the file ``documents.tsfd``. Files are encoded by ``pool``
    (the node's ``TRANSPORT_POOL`` by default)."""
    book = ReviewBook(intake)
    book.require_reviewed(study_uid)
    folder = book.study_folder(study_uid)
    sources = sorted(folder.glob("*/*.dcm"))
    if not sources:
        raise NodeError(f"study {study_uid} has no image in the intake")
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="seal-", dir=scratch))
    # Each file's encoding for the journey: prepared by the import when it is still of
    # the intake file's bytes (journey.py), else made now on every core.
    ready = [prepared(source, source.read_bytes()) if compress else None for source in sources]
    missing = [source for source, found in zip(sources, ready, strict=True) if found is None]
    encoded = (pool or TRANSPORT_POOL).encode(missing if compress else [])
    try:
        files: list[tuple[str, Path, int, int, int]] = []  # name, file, offset, size, inode
        original = 0
        for source, found in zip(sources, ready, strict=True):
            name = f"{source.parent.name}/{source.name}"
            original += source.stat().st_size
            if found is not None:
                target, offset = found
            elif compress:
                target, offset = work / f"{len(files)}.dcm", 0
                target.write_bytes(next(encoded))
            else:
                target, offset = source, 0
            held = target.stat()
            files.append((name, target, offset, held.st_size - offset, held.st_ino))
        if documents:
            target = work / "documents.tsfd"
            target.write_bytes(documents)
            files.insert(0, (DOCUMENTS_FILE, target, 0, len(documents), target.stat().st_ino))
        header = encode_plaintext_header(case, [(n, size) for n, _, _, size, _ in files])
        total = len(header) + sum(size for _, _, _, size, _ in files)

        def pieces() -> Iterator[bytes]:
            yield header
            for _, path, offset, size, inode in files:
                with open(path, "rb") as f:
                    if os.fstat(f.fileno()).st_ino != inode:  # replaced since: sizes differ
                        raise NodeError(f"{path.name} changed while it was sealed")
                    f.seek(offset)
                    left = size
                    while left and (piece := f.read(min(READ_PIECE, left))):
                        left -= len(piece)
                        yield piece
                if left:
                    raise NodeError(f"{path.name} changed while it was sealed")

        manifest = _seal(blobs, sender, recipients, total, pieces(), now, priority, rng)
    finally:
        encoded.close()  # the files still in flight are dropped, the workers released
        shutil.rmtree(work, ignore_errors=True)
    return Sealed(manifest, len(files), total, original)


def _seal(
    blobs: BlobStore,
    sender: Identity,
    recipients: list[PublicIdentity],
    total: int,
    pieces: Iterable[bytes],
    now: int,
    priority: int,
    rng: Callable[[int], bytes],
) -> Manifest:
    """Seal the plaintext given in ``pieces`` (``total`` bytes); chunks go to the blob
    store under their BLAKE3 name."""
    sealer = BundleSealer(
        sender=sender, recipients=recipients, chunk_size=choose_chunk_size(total), rng=rng
    )
    with ChunkWriter(blobs) as put:
        for piece in pieces:
            for chunk in sealer.push(piece):
                put(chunk)
        rest, manifest = sealer.finish(now=now, ttl=BUNDLE_TTL_MS, priority=priority)
        for chunk in rest:
            put(chunk)
    return Manifest.decode(manifest, now=now)


class ChunkWriter:
    """Writes sealed chunks to the blob store in a thread of its own, so that sealing
    goes on meanwhile; at most ``AHEAD`` chunks wait. Chunks are written without an
    fsync each (milliseconds of waiting for the disk, hundreds of times for a CT);
    leaving the ``with`` waits for every chunk to be written and then makes them durable
    together (``make_durable``), before the bundle's manifest is returned and queued:
    a power cut before that loses a bundle never queued, never a chunk of one queued.
    It raises the first error a write met."""

    AHEAD = 8

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._queue: queue.Queue[bytes | None] = queue.Queue(self.AHEAD)
        self._error: BaseException | None = None
        self._written: list[bytes] = []
        self._thread = threading.Thread(target=self._write, name="seal-chunks", daemon=True)

    def __enter__(self) -> Callable[[bytes], None]:
        self._thread.start()
        return self.put

    def put(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def _write(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._written.append(self._blobs.put(chunk, sync=False))
                except BaseException as exc:  # raised in the sealing thread
                    self._error = exc
        if self._error is None and self._written:
            try:
                make_durable([self._blobs.path_of(name) for name in self._written])
            except BaseException as exc:
                self._error = exc

    def __exit__(self, *exc_info: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc_info[0] is None:
            raise self._error


def seal_documents(
    *,
    blobs: BlobStore,
    sender: Identity,
    recipients: list[PublicIdentity],
    documents: bytes,
    case: dict[str, object],
    now: int,
    priority: int,
    rng: Callable[[int], bytes] = os.urandom,
    files: list[tuple[str, Path]] | None = None,
) -> Manifest:
    """A small bundle of signed documents (a report, a message, case events...) for
    ``recipients``: header ``case`` and the file ``documents.tsfd``, then ``files``
    (name in the bundle, path here: a report's attachments, SPEC.md §5) as they are."""
    extra = [(name, path, path.stat().st_size) for name, path in files or []]
    listed = [(DOCUMENTS_FILE, len(documents)), *((n, size) for n, _, size in extra)]
    header = encode_plaintext_header(case, listed)
    total = len(header) + len(documents) + sum(size for _, _, size in extra)

    def pieces() -> Iterator[bytes]:
        yield header
        yield documents
        for _, path, _ in extra:
            with open(path, "rb") as f:
                while piece := f.read(READ_PIECE):
                    yield piece

    return _seal(blobs, sender, recipients, total, pieces(), now, priority, rng)
