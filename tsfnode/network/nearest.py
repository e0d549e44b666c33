"""Choosing the nearest node by measurement, not geography: round-trip time and goodput
to each candidate (its speed-test endpoint), and the time a study would take to send."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass

import aiohttp

MAX_SPEEDTEST_BYTES = 16 * 1024 * 1024
_BLOCK = os.urandom(64 * 1024)  # incompressible filler, served repeatedly


def filler(size: int) -> bytes:
    whole, rest = divmod(size, len(_BLOCK))
    return _BLOCK * whole + _BLOCK[:rest]


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
    timeout_s: float = 60.0,
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
            got = len(await response.read())
        down = got * 8 / max(time.perf_counter() - start, 1e-6)
        start = time.perf_counter()
        async with session.post(
            f"{base}/peer/v1/speedtest", data=filler(probe_bytes), timeout=timeout
        ) as response:
            await response.read()
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
