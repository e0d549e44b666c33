"""Instances encoded for the journey as they are imported, before anyone asks to send.

An import of many files (the CLI's, an upload) hands each instance it wrote to worker
processes (``Preparer``, one per core) that encode it for the journey
(compress.py ``encode_file_for_transport``: JPEG-LS lossless where it applies and wins,
deflate where no image codec does, as stored otherwise) while the import goes on with
the next files, and write the result beside it, as ``.SOP.journey``: the BLAKE3 digest
of the intake file it was made from, then the encoded instance. Sealing (
transfers/sealing.py) takes a prepared encoding only when that digest is the digest of
the intake file as it is now (a file masked, replaced or damaged since is encoded again),
so a study is not read, parsed and encoded a second time when it is sent.

A prepared file holds what the intake file holds (de-identified, named by the node's
UIDs only) and goes with it: it is inside the study's folder, which is deleted whole.
Nothing here is required: a file not prepared (one core, a worker that died, an import
of a few files, the DICOM listener) is encoded when it is sealed, as before.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import warnings
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import blake3

from tsfnode.heap import keep_freed_buffers

SUFFIX = ".journey"
DIGEST = 32  # bytes of BLAKE3 at the head of a prepared file
PREPARE_FROM = 4  # files: an import of fewer starts no worker process


def worker_context() -> multiprocessing.context.BaseContext:
    """How the encoding worker processes (this module's ``Preparer``, sealing's
    ``TransportPool``) are started: from a fork server where there is one (Linux, macOS),
    itself started fresh (never forked from a process's threads) with what encoding
    needs imported once (pydicom, CharLS: half a second of a core), so that each worker
    forked from it starts in milliseconds, with nothing of the node or of the caller's
    ``__main__`` in it; else spawned, each importing it again."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([WORKER_MODULE])
    return context


WORKER_MODULE = "tsfnode.intake.compress"


def start_workers_early(files: int) -> bool:
    """Start now the fork server that the ``Preparer`` of an import of ``files`` files
    will fork its workers from (when it will have any: ``PREPARE_FROM`` files or more, two
    cores or more), so that it imports pydicom and the codecs on another core while the
    importing process imports its own, rather than after (``tsfnode import``: a third of
    a second of one core idle at the start). True if started."""
    if files < PREPARE_FROM or (os.cpu_count() or 1) < 2:
        return False
    if worker_context().get_start_method() != "forkserver":
        return False
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return True


def journey_path(source: Path) -> Path:
    """Where the encoding of the intake file ``source`` is kept (a hidden file beside
    it: not a ``.dcm``, so nothing that lists the intake's instances sees it)."""
    return source.with_name(f".{source.stem}{SUFFIX}")


def prepare(source: Path) -> bool:
    """Encode the intake file ``source`` for the journey and keep it beside it (what a
    worker process runs); False if it could not be (sealing will encode it)."""
    from tsfnode.intake.compress import encode_file_for_transport

    try:
        data = source.read_bytes()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings may quote values
            encoded = encode_file_for_transport(source, data)
        target = journey_path(source)
        tmp = target.with_name(f"{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(blake3.blake3(data).digest())
                f.write(encoded)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    except Exception:  # damaged, gone, disk full: encoded at sealing instead
        return False
    return True


def prepared(source: Path, data: bytes) -> tuple[Path, int] | None:
    """The prepared encoding of ``source`` whose bytes are ``data`` now: (its file, the
    offset of the encoded instance in it), or None when there is none or it was made
    from other bytes."""
    path = journey_path(source)
    try:
        with open(path, "rb") as f:
            head = f.read(DIGEST)
    except OSError:
        return None
    if len(head) != DIGEST or head != blake3.blake3(data).digest():
        return None
    return path, DIGEST


class Preparer:
    """Worker processes, one per core (``worker_context``: never forked from the
    importing process), encoding the instances an
    import writes while it goes on, never making it wait: each is given a path (the
    worker reads the file), so what waits costs a path and memory stays at a file per
    worker. Started at the ``PREPARE_FROM``th file
    of an import (fewer are left to sealing), on a machine of two cores or more;
    ``close`` waits for the files given (an import returns with its study prepared)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers if workers is not None else os.cpu_count() or 1)
        self.enabled = self.workers > 1
        self._pool: ProcessPoolExecutor | None = None
        self._waiting: list[Path] = []  # the first files, until there are enough
        self._pending: deque[Future[bool]] = deque()
        self.done = 0  # files prepared

    def submit(self, source: Path) -> None:
        if not self.enabled:
            return
        self._waiting.append(source)
        if len(self._waiting) < PREPARE_FROM and self._pool is None:
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=worker_context(), initializer=keep_freed_buffers
            )
        for path in self._waiting:
            while self._pending and self._pending[0].done():
                self._settle(self._pending.popleft())
            try:
                self._pending.append(self._pool.submit(prepare, path))
            except RuntimeError:  # the pool broke: the rest is encoded at sealing
                self.enabled = False
                break
        self._waiting.clear()

    def _settle(self, future: Future[bool]) -> None:
        try:
            self.done += bool(future.result())
        except Exception:  # a worker died: sealing encodes what is left
            self.enabled = False

    def close(self) -> None:
        """Wait for the files given (those of an import of too few files are not
        prepared), then stop the workers."""
        while self._pending:
            self._settle(self._pending.popleft())
        self._waiting.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abandon(self) -> None:
        """Stop without waiting (an import that failed or was interrupted): the files
        not prepared yet are encoded at sealing."""
        self._pending.clear()
        self._waiting.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
