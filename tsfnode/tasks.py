"""The node's background tasks: stopped the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (a service's loop) and wait until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Turns:
    """At most ``at_once`` holders at a time; the others wait their turn, in order (an
    ``asyncio.Semaphore`` that keeps its figures for the operator's /metrics):
    ``running`` and ``waiting`` now, and the most of each seen since the node started.

        async with turns:
            ...
    """

    def __init__(self, at_once: int) -> None:
        self.at_once = at_once
        self._slots = asyncio.Semaphore(at_once)
        self.running = self.waiting = self.most_running = self.most_waiting = 0

    async def __aenter__(self) -> None:
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        self.most_running = max(self.most_running, self.running)

    async def __aexit__(self, *exc: object) -> None:
        self.running -= 1
        self._slots.release()

    def figures(self) -> dict[str, int]:
        return {
            "running": self.running,
            "waiting": self.waiting,
            "most_running": self.most_running,
            "most_waiting": self.most_waiting,
        }
