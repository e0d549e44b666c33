"""Issue 21, item 4: ``GET /api/v1/nearest?probe_kib=N`` built the probe whole in memory
(one request took a node from 197 MB to 950 MB; 1e9 gave MemoryError), and absurd sizes
answered 500. Now the probe is bounded and streamed both ways, bad values are clear 400s,
one measurement runs at a time, and it needs a person's token."""

from __future__ import annotations

import tracemalloc

import aiohttp
import pytest

from tests.harness.inprocess import LocalNode
from tsfnode.network.nearest import MAX_PROBE_KIB, MAX_SPEEDTEST_BYTES, measure


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("probe_kib=-1", "probe_kib must be between 1 and"),
        ("probe_kib=0", "probe_kib must be between 1 and"),
        (f"probe_kib={MAX_PROBE_KIB + 1}", "probe_kib must be between 1 and"),
        ("probe_kib=1000000000", "probe_kib must be between 1 and"),
        ("probe_kib=1e9", "probe_kib must be a whole number"),
        ("size_mb=1e308", "size_mb must be more than 0"),
        ("size_mb=nan", "size_mb must be more than 0"),
        ("size_mb=-3", "size_mb must be more than 0"),
        ("size_mb=lots", "size_mb must be a number"),
    ],
)
async def test_absurd_sizes_are_clear_400s(local_node: LocalNode, query: str, named: str) -> None:
    koffi = await local_node.account("koffi", "sender")
    status, text = await koffi.api(f"/nearest?{query}")
    assert status == 400
    assert named in text


async def test_nearest_needs_an_account(local_node: LocalNode) -> None:
    """Even from the node's machine (a reverse proxy there makes every caller look
    local): a measurement costs the node, so it is asked by a person with a token."""
    answer = await local_node.client.get("/api/v1/nearest?probe_kib=16")
    assert answer.status == 401


async def test_a_measurement_holds_a_block_not_the_probe(local_node: LocalNode) -> None:
    """The measuring side and the speed test (both in this process) together allocate
    far less than the 16 MiB probe (the old code built it whole on both sides)."""
    url = str(local_node.client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        tracemalloc.start()
        try:
            found = await measure(session, url, probe_bytes=MAX_SPEEDTEST_BYTES)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert found.error == ""
    assert found.up_bps
    assert found.down_bps
    assert peak < MAX_SPEEDTEST_BYTES // 4, peak
