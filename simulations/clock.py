"""A discrete-event loop over a virtual clock (milliseconds)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


class EventLoop:
    def __init__(self, start: int = 0) -> None:
        self.now = start
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def at(self, when: int, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (max(when, self.now), next(self._seq), action))

    def run_until(self, end: int, stop: Callable[[], bool] | None = None) -> None:
        """Run events in time order up to ``end`` (inclusive), or until ``stop()``."""
        while self._queue and self._queue[0][0] <= end:
            when, _, action = heapq.heappop(self._queue)
            self.now = when
            action()
            if stop is not None and stop():
                return
        self.now = max(self.now, end)
