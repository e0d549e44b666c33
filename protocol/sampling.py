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
    """Up to ``k`` distinct items, uniformly (a partial Fisher-Yates shuffle, its swaps
    kept aside: ``items`` is not copied, so a few from 10,000 cost a few steps)."""
    n = len(items)
    k = min(k, n)
    swapped: dict[int, int] = {}  # position -> index in items now there
    out: list[T] = []
    for i in range(k):
        j = i + randbelow(rng, n - i)
        at_j = swapped.get(j, j)
        swapped[j] = swapped.get(i, i)
        out.append(items[at_j])
    return out


def jitter(rng: Rng, base: int, fraction: float = 0.1) -> int:
    """``base`` ± ``fraction`` of it, uniformly, so that nodes do not fall in step."""
    spread = int(base * fraction)
    return base - spread + randbelow(rng, 2 * spread + 1) if spread else base
