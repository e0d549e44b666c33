"""The node's one clock, injected: services hold it, handlers read it from the app.

Only ``Clock`` reads the system's time. Everything else asks the clock it was given
(``CaseService.clock``, ``request_now(request)``), so that a test can hold time still or
move it (``ManualClock.advance``) instead of editing a stopped node's database, as the
simulator moves virtual time for the sans-IO engines.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


class Clock:
    """Wall-clock time in milliseconds since the Unix epoch."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock(Clock):
    """A clock that moves only when told to (tests, in-process runs)."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> int:
        """Move time forward by ``ms`` milliseconds; the new time."""
        if ms < 0:
            raise ValueError("a clock does not go back")
        self._now += ms
        return self._now


def request_now(request: web.Request) -> int:
    """The time of the node that serves ``request``."""
    return request.config_dict[_clock_key()].now_ms()


def __getattr__(name: str) -> web.AppKey[Clock]:
    """``CLOCK``, the clock's app key, made when first asked for: aiohttp is imported
    by the node, never by a CLI command that only reads the time."""
    if name == "CLOCK":
        return _clock_key()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _clock_key() -> web.AppKey[Clock]:
    from aiohttp import web

    return web.AppKey("clock", Clock)
