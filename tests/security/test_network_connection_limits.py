"""Issue 21: one client address could open as many connections as it liked, to the HTTP
server (each held until the keep-alive timeout) and to the DICOM listener (each held for
the ARTIM time, all `max_associations` places at once, so that the hospital's modality
was refused). Now each address holds at most `[http] max_connections_per_address`
connections (one more is answered 503 with Retry-After and closed), behind a trusted
proxy at most as many requests in progress per forwarded client, and at most
`[dicom] max_associations_per_address` DICOM connections (one more is closed at once).
Other addresses are not affected. Loops bounded in count and time."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.parse
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.harness.cluster import configure
from tests.harness.inprocess import start_local_node
from tests.harness.nodes import RunningNode
from tests.harness.studies import CT
from tests.tsfnode.intake.test_listener import (
    closed_by_peer,
    dcmtk,
    listening_node,
    received,
)

CAP = 4


def _connect(host: str, port: int, source: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((source, 0))
    s.connect((host, port))
    return s


def _ask(s: socket.socket, path: str = "/healthz") -> bytes:
    """One request on ``s``; the answer's first bytes (b"" if closed)."""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: node\r\n\r\n".encode())
    return s.recv(4096)


@pytest.mark.slow
def test_one_address_holds_at_most_its_share_of_http_connections(node_dir: Path) -> None:
    configure(node_dir, http={"max_connections_per_address": CAP})
    with RunningNode(node_dir) as node:
        url = urllib.parse.urlsplit(node.url)
        host, port = url.hostname or "", url.port or 0
        held = [_connect(host, port, "127.0.0.2") for _ in range(CAP)]  # left idle
        try:
            over = _connect(host, port, "127.0.0.2")
            try:
                answer = over.recv(4096)  # answered before it asks anything
            finally:
                over.close()
            assert answer.startswith(b"HTTP/1.1 503 ")
            assert b"Retry-After: 10" in answer
            assert b"too many connections from your address at once (4 at most)" in answer
            assert "trop de connexions depuis votre adresse" in answer.decode()  # and in French
            # Another address is answered as usual, and so is the first once it lets go.
            other = _connect(host, port, "127.0.0.3")
            try:
                assert _ask(other).startswith(b"HTTP/1.1 200 ")
            finally:
                other.close()
            held.pop().close()
            deadline = time.monotonic() + 10
            while True:  # the node sees the close at once; bounded by the deadline
                again = _connect(host, port, "127.0.0.2")
                try:
                    first = _ask(again)
                finally:
                    again.close()
                if first.startswith(b"HTTP/1.1 200 ") or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert first.startswith(b"HTTP/1.1 200 ")
        finally:
            for s in held:
                s.close()


async def test_behind_a_trusted_proxy_each_client_holds_at_most_its_share(
    tmp_path: Path, aiohttp_client: object
) -> None:
    """The proxy's connections carry every client's requests: the cap counts the
    requests each forwarded client has in progress (a speed test's download left unread
    holds one)."""
    node = await start_local_node(
        tmp_path / "cotonou",
        aiohttp_client,
        http_trusted_proxies=("127.0.0.0/8",),
        http_max_connections_per_address=1,
    )
    client: TestClient = node.client  # type: ignore[type-arg]
    held = await client.get(
        "/peer/v1/speedtest?bytes=16777216", headers={"X-Forwarded-For": "198.51.100.7"}
    )
    try:
        assert held.status == 200
        busy = await client.get("/healthz", headers={"X-Forwarded-For": "198.51.100.7"})
        assert busy.status == 503
        assert busy.headers["Retry-After"] == "10"
        assert "too many connections from your address" in await busy.text()
        other = await client.get("/healthz", headers={"X-Forwarded-For": "198.51.100.8"})
        assert other.status == 200
    finally:
        held.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the unread download ends when it is closed
        again = await client.get("/healthz", headers={"X-Forwarded-For": "198.51.100.7"})
        if again.status == 200:
            break
        await asyncio.sleep(0.2)
    assert again.status == 200


@pytest.mark.slow
async def test_one_address_cannot_fill_the_dicom_listener(
    tmp_path: Path, aiohttp_client: object
) -> None:
    node, port = await listening_node(
        tmp_path, aiohttp_client, dicom_max_associations=4,
        dicom_max_associations_per_address=2,
        dicom_artim_timeout_s=60,  # the flood's connections stay the whole test
    )  # fmt: skip
    flood = [_connect("127.0.0.1", port, "127.0.0.2") for _ in range(8)]  # they say nothing
    try:
        # Closed by the cap within 30 s, long before the ARTIM time would close them (a
        # 10 s deadline was once too short on a loaded machine).
        deadline = time.monotonic() + 30
        closed = [await asyncio.to_thread(closed_by_peer, s, deadline) for s in flood[2:]]
        assert closed == [True] * 6
        # The hospital's modality, from its own address, still finds a place.
        store = await dcmtk("storescu", "-aec", "TSF_ERASME", "127.0.0.1", port, CT)
        assert store.returncode == 0, store.stderr
    finally:
        for s in flood:
            s.close()
    assert len(received(node.root)) == 1
