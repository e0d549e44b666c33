"""Waiting for an event, bounded in count and time, never a fixed sleep.

A real node process can only be observed from outside: ``wait_for`` asks again and again
whether the event happened, first at once and then less and less often (20 ms, doubling to
at most half a second), so a fast event is seen fast and a slow one costs few requests.
It gives up, naming what it waited for, after ``timeout`` seconds or ``MAX_CHECKS`` checks,
whichever comes first. In process, ``wait_until`` does the same on the event loop, and an
``asyncio.Event`` (or the clock) is better still.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

FIRST_PAUSE_S = 0.02
LONGEST_PAUSE_S = 0.5
MAX_CHECKS = 2_000


def _pauses() -> Iterator[float]:
    pause = FIRST_PAUSE_S
    for _ in range(MAX_CHECKS):
        yield pause
        pause = min(LONGEST_PAUSE_S, pause * 2)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    """Return once ``check()`` is true; AssertionError naming ``what`` if it never is."""
    deadline = time.monotonic() + timeout
    for pause in _pauses():
        if check():
            return
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(pause, left))
    if check():
        return
    raise AssertionError(f"timed out waiting for: {what} ({timeout:g} s)")


async def wait_until(what: str, check: Callable[[], Awaitable[bool]], within_s: float = 30) -> None:
    """``wait_for`` for a coroutine check, on the running loop (in-process tests)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    for pause in _pauses():
        if await check():
            return
        left = deadline - loop.time()
        if left <= 0:
            break
        await asyncio.sleep(min(pause, left))
    if await check():
        return
    raise AssertionError(f"timed out waiting for: {what} ({within_s:g} s)")
