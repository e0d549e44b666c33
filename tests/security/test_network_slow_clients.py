"""Issue 21: idle connections, request heads and bodies trickled a few bytes a second
were never timed out, so a few hundred sockets could hold a node's connections for ever.
A real node process now closes an idle connection and an unfinished request head after
its keep-alive timeout, and a body that comes slower than 512 bytes/s over the same time
(``[http] client_timeout_s``: 30 s by default; 5 s here, so the test does not wait 30 s
for what a shorter setting shows as well).

Raw sockets on loopback, each trickle bounded in bytes and time (at most 50 s): the
node must close each connection before its trickle ends, and answer others meanwhile."""

from __future__ import annotations

import asyncio
import urllib.parse
from pathlib import Path

import pytest

from tests.harness.cluster import configure
from tests.harness.nodes import RunningNode, get_json

pytestmark = pytest.mark.slow

CLIENT_TIMEOUT_S = 5  # [http] client_timeout_s: the node's limits for slow clients
TRICKLE_S = 50  # longer than any of the node's limits, even the default 30 s


async def _trickle(host: str, port: int, head: bytes, drip: bytes) -> bool:
    """Send ``head``, then one byte of ``drip`` a second; True if the node closed the
    connection before ``drip`` ran out."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head)
        await writer.drain()
        for byte in drip[:TRICKLE_S]:  # bounded: TRICKLE_S bytes, one a second
            try:
                got = await asyncio.wait_for(reader.read(1024), 1.0)
            except TimeoutError:
                got = None
            if got == b"":
                return True  # closed by the node
            if got:  # an answer (400, 408): then it must close too
                continue
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                return True
        return False
    except ConnectionError:
        return True
    finally:
        writer.close()


def test_idle_and_trickling_connections_are_closed(node_dir: Path) -> None:
    configure(node_dir, http={"client_timeout_s": CLIENT_TIMEOUT_S})
    with RunningNode(node_dir) as node:
        url = urllib.parse.urlsplit(node.url)
        host, port = url.hostname or "", url.port or 0
        body_head = (
            b"POST /peer/v1/envelope HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n"
        )

        async def run() -> list[bool]:
            trickles = [
                _trickle(host, port, b"", bytes(TRICKLE_S)),  # idle: sends nothing at all
                _trickle(host, port, b"", b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 60),
                _trickle(host, port, body_head, b"x" * 60),
            ]
            tasks = [asyncio.ensure_future(t) for t in trickles]
            await asyncio.sleep(2)
            healthy = await asyncio.to_thread(get_json, f"{node.url}/healthz")
            assert healthy["status"] == "ok"  # others are answered meanwhile
            return list(await asyncio.gather(*tasks))

        idle, head, body = asyncio.run(run())
        assert idle, "an idle connection was kept open"
        assert head, "a request head trickled a byte a second was waited for"
        assert body, "a request body trickled a byte a second was waited for"
        assert "request body too slow" in node.logs()
