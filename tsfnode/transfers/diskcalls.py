"""Short file operations: on the event loop itself while the disk answers fast, in a
worker thread after a slow one.

A trip to a worker thread and back costs more than reading or writing a few MiB from
or to the page cache: moving a 512 MiB bundle over loopback took 35 % longer with every
chunk read and write in a thread (bench transfer_loopback_throughput). A disk that
stalls (an SD card, writeback throttling) must not freeze the node, though: from the
first call that spent more than ``SLOW_S`` waiting for the kernel, calls go to a thread
for ``THREADS_FOR_S``, then the fast path is tried again. Only for calls bounded in size
(a run of chunks); whole-bundle work (opening, scanning, deleting) always goes to a
thread.

Waiting, not merely slow: a call is slow on a busy machine too, when the loop's thread
waits for a processor (other programs, the node's own sealing). A worker thread waits
for one just the same, and the trips to it cost more processor time still: on this
2-core machine shared by others, both nodes of bench transfer_loopback_throughput moved
to threads within the first seconds of every transfer (a write "took" 30 to 150 ms)
while the disk never stalled. On Linux the thread's scheduler statistics
(``/proc/self/task/<tid>/schedstat``: time run and time waited for a processor) say how
much of a slow call was neither, i.e. asleep in the kernel (the disk); elsewhere the
wall time alone decides, as before.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tsfnode.logs import log

T = TypeVar("T")


class DiskCalls:
    SLOW_S = 0.02
    THREADS_FOR_S = 30.0

    def __init__(self) -> None:
        self._threads_until = 0.0
        self._stat: tuple[int, int] | None = None  # (thread id, schedstat fd) of the loop
        self._stat_tried = False

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if time.monotonic() < self._threads_until:
            return await asyncio.to_thread(fn, *args)
        busy = self._busy_s()
        start = time.monotonic()
        try:
            return fn(*args)
        finally:
            took = time.monotonic() - start
            if took > self.SLOW_S:
                after = self._busy_s()
                waited = took if busy is None or after is None else took - (after - busy)
                if waited > self.SLOW_S:
                    self._threads_until = time.monotonic() + self.THREADS_FOR_S
                    log(
                        "slow disk: file work moved to a thread",
                        took_ms=int(took * 1000),
                        waited_ms=int(waited * 1000),
                    )

    def _busy_s(self) -> float | None:
        """Seconds this thread has run or waited for a processor (Linux schedstat), or
        None where that is not known."""
        if not self._stat_tried:
            self._stat_tried = True
            tid = threading.get_native_id()
            try:
                fd = os.open(f"/proc/self/task/{tid}/schedstat", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
            self._stat = (tid, fd)
        if self._stat is None or self._stat[0] != threading.get_native_id():
            return None
        try:
            ran_ns, waited_ns, _ = os.pread(self._stat[1], 128, 0).split()
            return (int(ran_ns) + int(waited_ns)) / 1e9
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        if self._stat is not None:
            os.close(self._stat[1])
            self._stat = None
