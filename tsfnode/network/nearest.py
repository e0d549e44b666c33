"""Choosing the nearest node by measurement, not geography: round-trip time and goodput
to each candidate (its speed-test endpoint), and the time a study would take to send.

Both sides of a speed test hold one 64 KiB block, never the probe: the endpoint streams
its answer and reads what it is sent piece by piece, and the measuring side sends and
reads the same way. The endpoint serves a few tests at a time per caller and in all
(``SpeedTests``), each within a deadline, so callers that never read cost a node a
bounded amount of memory and nothing else."""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import aiohttp

MAX_SPEEDTEST_BYTES = 16 * 1024 * 1024
MAX_PROBE_KIB = MAX_SPEEDTEST_BYTES // 1024
MAX_STUDY_MB = 1024 * 1024  # a terabyte: far beyond any study
SPEEDTEST_DEADLINE_S = 60.0  # a test that takes longer measures nothing useful
SPEEDTESTS_PER_PEER = 2
SPEEDTESTS_IN_ALL = 8
_BLOCK = os.urandom(64 * 1024)  # incompressible filler, served repeatedly


def filler_blocks(size: int) -> Iterator[bytes]:
    """``size`` bytes of filler as 64 KiB blocks (views of one block: no copy)."""
    view = memoryview(_BLOCK)
    while size > 0:
        piece = min(size, len(_BLOCK))
        yield view[:piece].tobytes() if piece < len(_BLOCK) else _BLOCK
        size -= piece


async def _stream_filler(size: int) -> AsyncIterator[bytes]:
    for block in filler_blocks(size):
        yield block


def probe_bytes_of(text: str) -> int:
    """The probe size asked for in KiB (``probe_kib``), as bytes; ValueError naming the
    problem."""
    try:
        kib = int(text)
    except ValueError:
        raise ValueError(f"probe_kib must be a whole number of KiB, not {text[:20]!r}") from None
    if not 1 <= kib <= MAX_PROBE_KIB:
        raise ValueError(f"probe_kib must be between 1 and {MAX_PROBE_KIB}")
    return kib * 1024


def study_bytes_of(text: str) -> int:
    """The size of the study to send, asked for in MB (``size_mb``), as bytes; ValueError
    naming the problem."""
    try:
        mb = float(text)
    except ValueError:
        raise ValueError(f"size_mb must be a number of MB, not {text[:20]!r}") from None
    if not math.isfinite(mb) or not 0 < mb <= MAX_STUDY_MB:
        raise ValueError(f"size_mb must be more than 0 and at most {MAX_STUDY_MB}")
    return int(mb * 1024 * 1024)


@dataclass
class SpeedTests:
    """The speed tests a node serves at once: at most ``per_peer`` per caller address
    and ``in_all`` in total; beyond, the endpoint answers 429."""

    per_peer: int = SPEEDTESTS_PER_PEER
    in_all: int = SPEEDTESTS_IN_ALL
    running: Counter[str] = field(default_factory=Counter)

    def take(self, peer: str) -> bool:
        if self.running[peer] >= self.per_peer or self.running.total() >= self.in_all:
            return False
        self.running[peer] += 1
        return True

    def give_back(self, peer: str) -> None:
        self.running[peer] -= 1
        if self.running[peer] <= 0:
            del self.running[peer]


@dataclass(frozen=True)
class Measurement:
    url: str
    rtt_ms: float | None
    down_bps: float | None
    up_bps: float | None
    error: str = ""

    def send_seconds(self, size: int) -> float | None:
        """Estimated time to send ``size`` bytes to this node (upload goodput + RTT)."""
        if self.rtt_ms is None or not self.up_bps:
            return None
        return self.rtt_ms / 1000 + size * 8 / self.up_bps

    def as_dict(self, size: int) -> dict[str, object]:
        seconds = self.send_seconds(size)
        return {
            "url": self.url,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 1),
            "down_kbps": None if self.down_bps is None else round(self.down_bps / 1000, 1),
            "up_kbps": None if self.up_bps is None else round(self.up_bps / 1000, 1),
            "send_seconds": None if seconds is None else round(seconds, 1),
            "error": self.error,
        }


async def measure(
    session: aiohttp.ClientSession,
    url: str,
    *,
    probe_bytes: int = 256 * 1024,
    timeout_s: float = SPEEDTEST_DEADLINE_S,
) -> Measurement:
    base = url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        rtts = []
        for _ in range(3):
            start = time.perf_counter()
            async with session.get(f"{base}/healthz", timeout=timeout) as response:
                await response.read()
                if response.status != 200:
                    return Measurement(url, None, None, None, f"HTTP {response.status}")
            rtts.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        async with session.get(
            f"{base}/peer/v1/speedtest", params={"bytes": str(probe_bytes)}, timeout=timeout
        ) as response:
            if response.status != 200:
                return Measurement(url, None, None, None, f"HTTP {response.status}")
            got = 0
            async for piece in response.content.iter_chunked(64 * 1024):
                got += len(piece)
                if got > probe_bytes:  # more than asked for: stop reading
                    break
        down = got * 8 / max(time.perf_counter() - start, 1e-6)
        start = time.perf_counter()
        async with session.post(
            f"{base}/peer/v1/speedtest",
            data=_stream_filler(probe_bytes),
            timeout=timeout,
            headers={"Content-Length": str(probe_bytes)},
        ) as response:
            await response.content.read(4096)
        up = probe_bytes * 8 / max(time.perf_counter() - start, 1e-6)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Measurement(url, None, None, None, type(exc).__name__)
    return Measurement(url, statistics.median(rtts), down, up)


async def rank(
    urls: list[str], *, size: int, probe_bytes: int = 256 * 1024, session: aiohttp.ClientSession
) -> list[Measurement]:
    """Measure every candidate (one at a time, so they do not share the link) and order
    them by estimated time to send ``size`` bytes; unreachable ones last."""
    results = [await measure(session, url, probe_bytes=probe_bytes) for url in urls]

    def key(m: Measurement) -> tuple[int, float]:
        seconds = m.send_seconds(size)
        return (1, 0.0) if seconds is None else (0, seconds)

    return sorted(results, key=key)


async def rank_urls(urls: list[str], *, size: int, probe_bytes: int) -> list[Measurement]:
    async with aiohttp.ClientSession() as session:
        return await rank(urls, size=size, probe_bytes=probe_bytes, session=session)


def run_rank(urls: list[str], *, size: int, probe_bytes: int) -> list[Measurement]:
    return asyncio.run(rank_urls(urls, size=size, probe_bytes=probe_bytes))
