"""Bundles between real node processes on loopback (the slow lane): the clusters these
tests run on, and what they do and look at."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from protocol.identity import PublicIdentity
from tests.harness.cluster import Cluster, configure
from tests.harness.data import PYDICOM_FILES, pydicom_data_folder
from tests.harness.nodes import get_json, tsfnode
from tests.harness.proxy import Proxy
from tests.harness.waiting import wait_for
from tsfnode.cli.transfers import queue_in_outbox
from tsfnode.intake.compress import encode_for_transport
from tsfnode.intake.review import ReviewBook
from tsfnode.keyfile import read_key
from tsfnode.transfers.sealing import seal_in

RADIOGRAPH = pydicom_data_folder() / "RG1_UNCR.dcm"  # 7 MB, many chunks
SMALLER_RADIOGRAPH = pydicom_data_folder() / "RG3_UNCR.dcm"  # 849 KB on the wire, 13 chunks
CT = PYDICOM_FILES / "CT_small.dcm"
QUICK = {"transfer": {"poll_interval_ms": 500, "retry_base_ms": 200}}


@pytest.fixture
def pair(tmp_path: Path, anchor_key: Path) -> Iterator[Cluster]:
    """Node 0 sends (Cotonou), node 1 reads (Erasme)."""
    with Cluster(tmp_path, anchor_key, 2, **QUICK) as c:
        yield c


@pytest.fixture
def trio(tmp_path: Path, anchor_key: Path) -> Iterator[Cluster]:
    """Node 0 sends, node 1 is the relay that node 2 (the reader) lists for its mail."""
    with Cluster(tmp_path, anchor_key, 3, **QUICK) as c:
        configure(c.dirs[1], relay={"enabled": True})  # node 1 consents to hold mail
        configure(c.dirs[2], transfer={"relays": [c.ids[1]]})
        yield c


def import_study(directory: Path, source: Path) -> str:
    result = tsfnode("import", source, "--node", directory, "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    studies = tsfnode("studies", "--node", directory).stdout.split()
    return studies[0]


def seal(directory: Path, study: str, *to: str, urgent: bool = False) -> str:
    args: list[Any] = ["seal", directory, study]
    for node in to:
        args += ["--to", node]
    if urgent:
        args.append("--urgent")
    result = tsfnode(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.split("bundle ")[1].split()[0]


def sealed_radiograph(pair: Cluster, source: Path = RADIOGRAPH) -> tuple[str, str]:
    """``source`` (RADIOGRAPH) imported at node 0 and sealed for node 1: (study, bundle)."""
    study = import_study(pair.dirs[0], source)
    return study, seal(pair.dirs[0], study, pair.ids[1])


def paced(pair: Cluster, rate: int, latency_s: float, cut_every_s: float) -> Proxy:
    """Node 1's proxy (everything it receives) paced at ``rate`` bytes a second,
    ``latency_s`` late and cut every ``cut_every_s``."""
    proxy = pair.proxies[1]
    proxy.rate, proxy.latency_s, proxy.cut_every_s = rate, latency_s, cut_every_s
    return proxy


def delivered(pair: Cluster, bundle: str, what: str, timeout: float = 240) -> dict[str, Any]:
    """Wait until node 0 says ``bundle`` is delivered: its outbox row."""
    wait_for(what, lambda: state_of(pair.url(0), bundle, "out") == "delivered", timeout=timeout)
    (out,) = [t for t in transfers(pair.url(0)) if t["bundle_id"] == bundle]
    return out


@contextlib.contextmanager
def half_put(url: str, body: bytes, timeout: float) -> Iterator[http.client.HTTPConnection]:
    """A PUT of ``body`` to ``url`` left after its first 1000 bytes (as after a cut): its
    connection, to send the rest on; closed after."""
    parts = urllib.parse.urlsplit(url)
    slow = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        slow.putrequest("PUT", parts.path)
        slow.putheader("Content-Length", str(len(body)))
        slow.endheaders()
        slow.send(body[:1000])
        yield slow
    finally:
        slow.close()


def get_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        data: bytes = response.read()
    return data


def transfers(url: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = get_json(f"{url}/api/v1/transfers")
    return listed


def state_of(url: str, bundle: str, direction: str) -> str | None:
    found = [t for t in transfers(url) if t["bundle_id"] == bundle and t["direction"] == direction]
    return found[0]["state"] if found else None


def expected_files(intake_study: Path) -> dict[str, bytes]:
    """What the sender sealed: each intake file as encoded for the journey."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(intake_study.glob("*/*.dcm")):
            out[f"{path.parent.name}/{path.name}"] = encode_for_transport(pydicom.dcmread(path))
    return out


def received_files(directory: Path, bundle: str) -> dict[str, bytes]:
    root = directory / "received" / bundle / "files"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.dcm")}


def blame_rows(directory: Path) -> list[tuple[bytes, int, str]]:
    with sqlite3.connect(directory / "node.db") as db:
        return list(db.execute("SELECT source, chunk, reason FROM blame"))


def met(cluster: Cluster) -> None:
    """Every node has met the others (through the seed) and knows their addresses: a node
    cut from the seed before it introduced itself would never join, which is not what
    these tests are about."""
    n = len(cluster.dirs)
    for i in range(n):
        wait_for(
            f"node {i} knows every node's address",
            lambda i=i: len(get_json(f"{cluster.url(i)}/api/v1/directory?kind=node")) == n,
        )


def seal_all(
    directory: Path, to: str, limit: int, *, studies: list[str] | None = None, priority: int = 0
) -> dict[str, str]:
    """Confirm and seal up to ``limit`` studies of the intake (or of ``studies``), in
    order, into the outbox: {bundle hex: study}."""
    book = ReviewBook(directory / "intake")
    identity = read_key(directory / "node.key")
    recipient = PublicIdentity.from_text(to)
    sealed: dict[str, str] = {}

    async def run() -> None:
        for study in (studies or book.studies())[:limit]:
            book.confirm(study, None, now_ms=1)  # the sender looked at every image
            now = int(time.time() * 1000)
            result = seal_in(directory, identity, [recipient], study, now=now, priority=priority)
            await queue_in_outbox(
                directory / "node.db", result.manifest, identity.public.key, study,
                int(time.time() * 1000),
            )  # fmt: skip
            sealed[result.manifest.bundle_id.hex()] = study

    asyncio.run(run())
    return sealed


def acknowledged_puts(log: Path) -> Counter[str]:
    """(bundle, chunk) PUTs a node answered 204, from its access log (at debug level:
    the node must run with ``[log] level = "debug"``)."""
    count: Counter[str] = Counter()
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"PUT"' in line and '"status": 204' in line:
            count[json.loads(line)["path"]] += 1
    return count


def _sealed_from(sender_dir: Path, recipient: str, size: int) -> tuple[bytes, list[bytes]]:
    """A bundle of ``size`` zero bytes sealed by a node of the cluster (its key file):
    the signed manifest and the chunks."""
    from protocol.bundle import BundleSealer, choose_chunk_size, encode_plaintext_header

    sealer = BundleSealer(
        sender=read_key(sender_dir / "node.key"),
        recipients=[PublicIdentity.from_text(recipient)],
        chunk_size=choose_chunk_size(size),
        rng=os.urandom,
    )
    chunks = sealer.push(encode_plaintext_header({}, [("a.bin", size)]))
    for start in range(0, size, 65536):
        chunks += sealer.push(bytes(min(65536, size - start)))
    rest, manifest = sealer.finish(now=int(time.time() * 1000), ttl=86_400_000)
    return manifest, chunks + rest


def _manifest_from(sender_dir: Path, recipient: str, size: int) -> bytes:
    return _sealed_from(sender_dir, recipient, size)[0]


def put(url: str, body: bytes | list[bytes]) -> tuple[int, str]:
    """PUT ``body``: bytes with their length, or pieces sent chunked (no length, so a
    body can end early or run long)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        if isinstance(body, bytes):
            conn.request("PUT", parts.path, body=body)
        else:
            conn.request("PUT", parts.path, body=iter(body), encode_chunked=True)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def post(url: str, data: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
