"""Issue 21, item 5: the speed test, which answers anyone, was asked for 16 MiB by 30
connections that never read; the node built each answer whole in memory (28.6 MiB each,
1.1 GB in all). Now the answer is streamed 64 KiB at a time, the bytes are bounded, and
a node serves a few tests per caller and in all, answering 429 beyond."""

from __future__ import annotations

import asyncio
import contextlib
import io

from tests.harness.inprocess import LocalNode
from tsfnode.network.nearest import MAX_SPEEDTEST_BYTES, SPEEDTESTS_PER_PEER

CONNECTIONS = 30


async def _status_of(reader: asyncio.StreamReader) -> int:
    line = await asyncio.wait_for(reader.readline(), 30)
    return int(line.split()[1])


async def test_callers_that_never_read_get_429_beyond_their_share(local_node: LocalNode) -> None:
    server = local_node.client.server
    request = (
        f"GET /peer/v1/speedtest?bytes={MAX_SPEEDTEST_BYTES} HTTP/1.1\r\n"
        f"Host: {server.host}\r\n\r\n"
    ).encode()
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(CONNECTIONS):  # bounded: 30 connections, each asked once
            reader, writer = await asyncio.open_connection(server.host, server.port, limit=4096)
            writer.write(request)
            await writer.drain()
            opened.append((reader, writer))
        # Read each status line only (the bodies are never read).
        statuses = [await _status_of(reader) for reader, _ in opened]
        assert statuses.count(200) == SPEEDTESTS_PER_PEER, statuses
        assert statuses.count(429) == CONNECTIONS - SPEEDTESTS_PER_PEER
        refused = await local_node.client.get("/peer/v1/speedtest?bytes=1000")
        assert refused.status == 429
        assert "too many speed tests" in await refused.text()
    finally:
        for _, writer in opened:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    # The slots come back when the callers go: a test runs again, whole.
    for _ in range(100):  # bounded wait for the server to see the connections close
        answer = await local_node.client.get("/peer/v1/speedtest?bytes=1000")
        if answer.status == 200:
            break
        await asyncio.sleep(0.05)
    assert answer.status == 200
    assert len(await answer.read()) == 1000


async def test_the_answer_is_streamed_not_built_whole(local_node: LocalNode) -> None:
    answer = await local_node.client.get(f"/peer/v1/speedtest?bytes={MAX_SPEEDTEST_BYTES}")
    assert answer.status == 200
    assert answer.content_length == MAX_SPEEDTEST_BYTES
    got = 0
    async for piece in answer.content.iter_chunked(1 << 16):
        got += len(piece)
    assert got == MAX_SPEEDTEST_BYTES
    for bad in ("bytes=-1", f"bytes={MAX_SPEEDTEST_BYTES + 1}", "bytes=1e9"):
        assert (await local_node.client.get(f"/peer/v1/speedtest?{bad}")).status == 400
    too_much = io.BytesIO(bytes(MAX_SPEEDTEST_BYTES + 1))
    taken = await local_node.client.post("/peer/v1/speedtest", data=too_much)
    assert taken.status == 413
