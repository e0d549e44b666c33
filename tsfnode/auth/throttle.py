"""The growing wait after failed attempts: sign-in per (name, address), bearer tokens
per address.

Nothing is ever locked: the first ``FREE_FAILURES`` failures cost nothing (typing
mistakes), then each failure doubles the wait before the next attempt is even looked
at, from ``FIRST_WAIT_MS`` up to ``MAX_WAIT_MS``. Failures older than ``FORGET_MS`` no
longer count. Because the key of a sign-in is the pair (name, address), someone failing
elsewhere never makes a person wait, and failures on other names never make a hospital
behind one address wait.
"""

from __future__ import annotations

from tsfnode.store.accounts import Failures

FREE_FAILURES = 5
FIRST_WAIT_MS = 15_000
MAX_WAIT_MS = 5 * 60_000
FORGET_MS = 60 * 60_000


def wait_after(failures: int) -> int:
    """How long (ms) to wait after ``failures`` failed attempts in a row."""
    if failures < FREE_FAILURES:
        return 0
    return min(MAX_WAIT_MS, FIRST_WAIT_MS << min(failures - FREE_FAILURES, 16))


def wait_left(failures: Failures, now: int) -> int:
    """How long (ms) the next attempt must still wait at ``now`` (0: it may come)."""
    if failures.last_ms is None:
        return 0
    return max(0, failures.last_ms + wait_after(failures.count) - now)


def since(now: int) -> int:
    """The oldest failures that still count at ``now``."""
    return now - FORGET_MS
