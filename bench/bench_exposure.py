"""A node exposed to the internet under a bounded load (issue 21): 200 concurrent slow
or idle connections (idle sockets, request heads trickled a byte a second, speed tests
that are never read) while the speed test and the nearest endpoints are hammered.
Reported: the node's peak RSS against its peak at rest (target < 300 MiB), and the
slowest /healthz answer during the load against /healthz at rest (target < 1 s).

Two real node processes on loopback (tests/harness/cluster.py, as the transfer
benchmarks), so that nearest has a node to measure. Not a test: no assertion on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.bench_transfer import _cluster, _peak_rss_mb
from bench.result import Result
from tests.harness.people import Person
from tsfnode.network.nearest import MAX_PROBE_KIB, MAX_SPEEDTEST_BYTES

CONNECTIONS = 200
HAMMERS = 16


async def _hold(host: str, port: int, head: bytes, until: float) -> None:
    """One slow connection: ``head`` sent, then a byte a second, nothing read."""
    with contextlib.suppress(OSError):
        _, writer = await asyncio.open_connection(host, port, limit=4096)
        try:
            writer.write(head)
            while time.monotonic() < until:
                await asyncio.sleep(1)
                if head.startswith(b"GET /healthz"):
                    writer.write(b"a")  # a head that never ends
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


async def _hammer(session: aiohttp.ClientSession, base: str, token: str, until: float) -> int:
    """Speed tests (down and up) and nearest, again and again; the requests made."""
    made = 0
    upload = bytes(1024 * 1024)
    while time.monotonic() < until:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(
                f"{base}/peer/v1/speedtest", params={"bytes": str(MAX_SPEEDTEST_BYTES)}
            ) as r:
                async for _ in r.content.iter_chunked(1 << 16):
                    pass
            async with session.post(f"{base}/peer/v1/speedtest", data=upload) as r:
                await r.read()
            async with session.get(
                f"{base}/api/v1/nearest",
                params={"probe_kib": str(MAX_PROBE_KIB)},
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                await r.read()
        made += 3
        await asyncio.sleep(0)
    return made


async def _healthz(session: aiohttp.ClientSession, base: str, until: float) -> list[float]:
    times = []
    while time.monotonic() < until:
        start = time.perf_counter()
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(f"{base}/healthz") as r:
                await r.read()
        times.append(time.perf_counter() - start)
        await asyncio.sleep(0.2)
    return times


async def _load(
    base: str, token: str, host: str, port: int, seconds: float, connections: int, rest_s: float
) -> tuple[list[float], list[float], int]:
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        rest = await _healthz(session, base, time.monotonic() + rest_s)
        until = time.monotonic() + seconds
        heads = (
            b"",  # idle
            b"GET /healthz HTTP/1.1\r\nX-Slow: ",  # a head trickled
            f"GET /peer/v1/speedtest?bytes={MAX_SPEEDTEST_BYTES} HTTP/1.1\r\n"
            "Host: x\r\n\r\n".encode(),  # a speed test never read
        )
        held = [
            asyncio.ensure_future(_hold(host, port, heads[i % 3], until))
            for i in range(connections)
        ]
        hammers = [
            asyncio.ensure_future(_hammer(session, base, token, until)) for _ in range(HAMMERS)
        ]
        during = await _healthz(session, base, until)
        made = sum(await asyncio.gather(*hammers))
        await asyncio.gather(*held)
    return rest, during, made


def exposed_node_under_load(*, quick: bool = False) -> list[Result]:
    # quick: checks that it runs (a few /healthz answers at rest and under load); its
    # figures are not read
    seconds, rest_s = (2.0, 1.0) if quick else (30.0, 2.0)
    connections = 30 if quick else CONNECTIONS
    with tempfile.TemporaryDirectory(prefix="bench-exposure-") as folder:
        c = _cluster(Path(folder), direct=True)
        try:
            node = c.nodes[0]
            assert node is not None
            base = c.url(0)
            host, port = base.removeprefix("http://").rsplit(":", 1)
            token = Person(c, 0, "koffi", "sender", "Koffi").token  # nearest needs one
            idle = _peak_rss_mb(node.process.pid)
            rest, during, made = asyncio.run(
                _load(base, token, host, int(port), seconds, connections, rest_s)
            )
            peak = _peak_rss_mb(node.process.pid)
        finally:
            c.close()
    worst = max(during) if during else 0.0
    return [
        Result(
            name="exposure_under_load_vs_rest_peak_memory",
            value=peak,
            unit=f"MiB peak RSS of a node under {connections} slow connections and "
            f"{made} speed-test and nearest requests in {seconds:.0f} s",
            baseline="the same node's peak RSS at rest",
            baseline_value=idle,
            higher_is_better=False,
            target="value < 300 MiB",
        ),
        Result(
            name="exposure_under_load_vs_rest_healthz_latency",
            value=worst,
            unit="s, slowest /healthz answer during the load",
            baseline="median /healthz answer at rest (s)",
            baseline_value=statistics.median(rest),
            higher_is_better=False,
            target="value < 1 s",
            extra={"healthz_median_s": statistics.median(during) if during else 0.0},
        ),
    ]


BENCHMARKS = {"exposure_under_load": exposed_node_under_load}
