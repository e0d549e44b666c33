"""Random choices from an injected source of bytes (never the global ``random``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
Rng = Callable[[int], bytes]


def randbelow(rng: Rng, n: int) -> int:
    """A uniform integer in [0, n), by rejection sampling over 8-byte draws."""
    if n <= 0:
        raise ValueError("n must be positive")
    limit = (1 << 64) - ((1 << 64) % n)
    while True:
        value = int.from_bytes(rng(8), "big")
        if value < limit:
            return value % n


def sample(rng: Rng, items: Sequence[T], k: int) -> list[T]:
    """Up to ``k`` distinct items, uniformly (a partial Fisher-Yates shuffle)."""
    pool = list(items)
    k = min(k, len(pool))
    for i in range(k):
        j = i + randbelow(rng, len(pool) - i)
        pool[i], pool[j] = pool[j], pool[i]
    return pool[:k]


def jitter(rng: Rng, base: int, fraction: float = 0.1) -> int:
    """``base`` ± ``fraction`` of it, uniformly, so that nodes do not fall in step."""
    spread = int(base * fraction)
    return base - spread + randbelow(rng, 2 * spread + 1) if spread else base
