"""What a node has written, on disk before it says so: one flush for many bundles.

The reader's node signs a receipt only once what it opened is durable (the bundle's
folder, ``DIR/received/BUNDLE/``, and the database's row that says it is complete, in
SQLite's write-ahead log, committed with ``synchronous=NORMAL``: written, not flushed).
After the receipt the sender counts the bundle as delivered and may forget it, so a
power cut at the reader must not take what the receipt vouches for.

``GroupFlush`` makes them durable together: one ``syncfs`` on Linux (every file
written to the file system, its directories and the log's frames, in one flush of the
disk's cache) where an fsync of each file, directory and the log would each wait for
the disk. Bundles opened while a flush runs share the next one: under a burst of small
bundles the disk is flushed once per flush's time, not once per bundle.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path


def _syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2) (one flush of the file system holding a file), or None."""
    try:
        call: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return call


SYNCFS = _syncfs() if sys.platform == "linux" else None


def make_durable(paths: list[Path]) -> None:
    """Every file of ``paths`` on disk: one syncfs of the file system holding them on
    Linux (one flush where an fsync each costs a disk round trip each), else an fsync
    each."""
    if SYNCFS is not None:
        fd = os.open(paths[0], os.O_RDONLY)
        try:
            if SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def flush_to_disk(paths: Iterable[Path]) -> None:
    """Every path of ``paths`` (files and directories) on disk, with everything else
    written before to the same file systems: one ``syncfs`` per file system on Linux,
    else an fsync of each path (``make_durable``). A path gone is skipped
    (nothing left to keep)."""
    by_device: dict[int, list[Path]] = {}
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            by_device.setdefault(path.stat().st_dev, []).append(path)
    for kept in by_device.values():
        make_durable(kept)


def opened_paths(folder: Path, database: Path) -> list[Path]:
    """What makes an opened bundle durable: its files and their directories, the folder
    and the one that holds it (the rename into place), and the database's log and file."""
    inside = sorted(folder.rglob("*"))
    wal = database.with_name(database.name + "-wal")
    return [*inside, folder, folder.parent, wal, database]


class GroupFlush:
    """``await flush(paths)`` returns once ``paths`` are durable (``flush_to_disk``, in a
    thread). Callers that come while a flush runs wait for the next one, which covers
    them all: one flush at a time, each for everything asked for before it began."""

    def __init__(self) -> None:
        self._asked: list[Path] = []
        self._next: asyncio.Future[None] | None = None
        self._running: asyncio.Task[None] | None = None
        self.flushes = 0  # for the tests and benchmarks

    async def flush(self, paths: Iterable[Path]) -> None:
        self._asked.extend(paths)
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        waited = self._next
        if self._running is None:
            self._running = asyncio.create_task(self._run())
        await asyncio.shield(waited)

    async def _run(self) -> None:
        done: asyncio.Future[None] | None = None
        try:
            while self._next is not None:
                done, paths = self._next, self._asked
                self._next, self._asked = None, []
                try:
                    await asyncio.to_thread(flush_to_disk, paths)
                except OSError as exc:
                    done.set_exception(exc)
                else:
                    done.set_result(None)
                self.flushes += 1
        finally:
            self._running = None
            for left in (done, self._next):  # stopped (the node stops): nobody waits on
                if left is not None and not left.done():
                    left.cancel()
            self._next, self._asked = None, []
