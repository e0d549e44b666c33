"""Short file operations: on the event loop itself while the disk answers fast, in a
worker thread after a slow one.

A trip to a worker thread and back costs more than reading or writing a few MiB from
or to the page cache: moving a 512 MiB bundle over loopback took 35 % longer with every
chunk read and write in a thread (bench transfer_loopback_throughput). A disk that
stalls (an SD card, writeback throttling) must not freeze the node, though: from the
first call slower than ``SLOW_S``, calls go to a thread for ``THREADS_FOR_S``, then the
fast path is tried again. Only for calls bounded in size (a run of chunks); whole-bundle
work (opening, scanning, deleting) always goes to a thread.
"""

from __future__ import annotations

import asyncio
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

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if time.monotonic() < self._threads_until:
            return await asyncio.to_thread(fn, *args)
        start = time.monotonic()
        try:
            return fn(*args)
        finally:
            took = time.monotonic() - start
            if took > self.SLOW_S:
                self._threads_until = time.monotonic() + self.THREADS_FOR_S
                log("slow disk: file work moved to a thread", took_ms=int(took * 1000))
