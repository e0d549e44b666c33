"""Bundles between real node processes on loopback: sealed from a reviewed study,
delivered directly or through a relay, received byte for byte, acknowledged by a
signed receipt; through cuts, kills and bad relays."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import signal
import sqlite3
import subprocess
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

from protocol.bundle import Manifest
from protocol.documents import decode_document
from protocol.identity import PublicIdentity
from protocol.transfer import PRIORITY_URGENT, ChunkSet, RateLimit
from tests.harness.cluster import Cluster, configure
from tests.harness.data import PYDICOM_FILES, pydicom_data_folder
from tests.harness.mounts import small_tmpfs
from tests.harness.nodes import get_json, tsfnode
from tests.harness.waiting import wait_for
from tsfnode.intake.compress import encode_for_transport
from tsfnode.intake.review import ReviewBook
from tsfnode.keyfile import read_key
from tsfnode.store import Store
from tsfnode.store.blobs import BlobStore
from tsfnode.transfers.outbox import queue_bundle
from tsfnode.transfers.sealing import seal_study

pytestmark = pytest.mark.slow
RADIOGRAPH = pydicom_data_folder() / "RG1_UNCR.dcm"  # 7 MB, many chunks
CT = PYDICOM_FILES / "CT_small.dcm"
QUICK = {"transfer": {"poll_interval_ms": 500, "retry_base_ms": 200}}


@pytest.fixture
def pair(tmp_path: Path, anchor_key: Path) -> Iterator[Cluster]:
    """Node 0 sends (Cotonou), node 1 reads (Erasme)."""
    c = Cluster(tmp_path, anchor_key, 2, **QUICK)
    try:
        yield c
    finally:
        c.close()


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


def test_a_study_goes_directly_and_a_signed_receipt_comes_back(pair: Cluster) -> None:
    sender, reader = pair.dirs
    study = import_study(sender, RADIOGRAPH)
    bundle = seal(sender, study, pair.ids[1])
    pair.start()
    wait_for(
        "the delivery is acknowledged",
        lambda: state_of(pair.url(0), bundle, "out") == "delivered",
        timeout=90,
    )
    assert state_of(pair.url(1), bundle, "in") == "complete"
    assert received_files(reader, bundle) == expected_files(sender / "intake" / study)
    case = json.loads((reader / "received" / bundle / "case.json").read_text())
    assert case == {"study_uid": study, "urgency": "routine"}
    (out,) = [t for t in transfers(pair.url(0)) if t["bundle_id"] == bundle]
    assert out["route"] == "direct"
    assert out["bytes_done"] == out["size"]
    assert out["done_ms"] is not None
    # The receipt the sender checked: signed by the reader's node, for this bundle.
    doc = decode_document(get_bytes(f"{pair.url(1)}/peer/v1/bundles/{bundle}/receipt"))
    assert doc.signer.text == pair.ids[1]
    assert doc.body["bundle_id"].hex() == bundle
    shown = tsfnode("transfers", sender)
    assert shown.returncode == 0, shown.stderr
    assert f"{bundle[:12]} → {pair.ids[1][:15]}  delivered  direct" in shown.stdout


def test_a_study_with_an_unchecked_image_is_not_sealed(pair: Cluster) -> None:
    sender = pair.dirs[0]
    study = import_study(sender, PYDICOM_FILES / "examples_rgb_color.dcm")
    result = tsfnode("seal", sender, study, "--to", pair.ids[1])
    assert result.returncode == 2
    assert "may show the patient's identity" in result.stderr
    assert not (sender / "blobs").exists() or not any((sender / "blobs").rglob("*"))


@pytest.fixture
def trio(tmp_path: Path, anchor_key: Path) -> Iterator[Cluster]:
    """Node 0 sends, node 1 is the relay that node 2 (the reader) lists for its mail."""
    c = Cluster(tmp_path, anchor_key, 3, **QUICK)
    configure(c.dirs[2], transfer={"relays": [c.ids[1]]})
    try:
        yield c
    finally:
        c.close()


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


def test_through_a_relay_when_the_reader_cannot_be_reached(trio: Cluster) -> None:
    sender, relay, reader = trio.dirs
    study = import_study(sender, RADIOGRAPH)
    trio.start()
    met(trio)
    trio.partition([0], [2])  # behind NAT, both of them: only the relay reaches each
    bundle = seal(sender, study, trio.ids[2])  # sealed once they cannot meet
    wait_for(
        "the relay holds the whole bundle",
        lambda: any(
            t["bundle_id"] == bundle and t["bytes_done"] == t["size"]
            for t in transfers(trio.url(1))
        ),
        timeout=90,
    )
    wait_for(
        "the reader's receipt reaches the sender through the relay",
        lambda: state_of(trio.url(0), bundle, "out") == "delivered",
        timeout=90,
    )
    assert received_files(reader, bundle) == expected_files(sender / "intake" / study)
    (out,) = [t for t in transfers(trio.url(0)) if t["bundle_id"] == bundle]
    assert out["route"] == "relay"
    assert out["attempts"] >= 2  # the direct attempt failed first
    wait_for(
        "the relay deleted its copy", lambda: state_of(trio.url(1), bundle, "relay") == "delivered"
    )
    assert not [p for p in (relay / "chunks").rglob("*") if p.is_file()]  # copy deleted
    with pytest.raises(urllib.error.HTTPError, match="404"):
        get_bytes(f"{trio.url(1)}/peer/v1/bundles/{bundle}/chunks/0")


def test_a_relay_serving_corrupted_chunks_is_blamed_and_the_sender_serves_them(
    trio: Cluster,
) -> None:
    sender, relay, reader = trio.dirs
    study = import_study(sender, RADIOGRAPH)
    trio.start()
    met(trio)
    trio.partition([0], [2])
    bundle = seal(sender, study, trio.ids[2])
    wait_for(
        "the directory knows the reader's relay",
        lambda: any(t["state"] == "deposited" for t in transfers(trio.url(0))),
        timeout=90,
    )
    # The reader goes down before pulling; meanwhile the relay's disk rots.
    trio.stop_node(2)
    with sqlite3.connect(relay / "node.db") as db:
        ((raw,),) = db.execute("SELECT manifest FROM bundles WHERE role = 'relay'")
    manifest = Manifest.decode(raw)
    assert manifest.chunk_count > 5
    path = relay / "chunks" / bundle
    data = bytearray(path.read_bytes())
    assert len(data) == manifest.ciphertext_size  # the relay holds every chunk, end to end
    for i in range(0, manifest.chunk_count, 2):
        data[i * manifest.ciphertext_chunk_size(0) + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    trio.heal()
    trio.start_node(2)
    wait_for(
        "the reader completes the bundle from the sender",
        lambda: state_of(trio.url(2), bundle, "in") == "complete",
        timeout=120,
    )
    assert received_files(reader, bundle) == expected_files(sender / "intake" / study)
    rows = blame_rows(reader)
    assert rows
    assert {bytes(r[0]).hex() for r in rows} == {PublicIdentity.from_text(trio.ids[1]).key.hex()}
    assert all("does not match the manifest" in r[2] for r in rows)
    assert "bad chunk from a source" in (reader.parent / f"{reader.name}.log").read_text()


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
        store = await Store.open(directory / "node.db")
        try:
            for study in (studies or book.studies())[:limit]:
                book.confirm(study, None, now_ms=1)  # the sender looked at every image
                result = seal_study(
                    intake=directory / "intake",
                    blobs=BlobStore(directory / "blobs"),
                    scratch=directory / "tmp",
                    sender=identity,
                    recipients=[recipient],
                    study_uid=study,
                    case={"study_uid": study},
                    priority=priority,
                    now=int(time.time() * 1000),
                )
                await queue_bundle(
                    store.db,
                    result.manifest,
                    sender=identity.public.key,
                    study_uid=study,
                    now=int(time.time() * 1000),
                )
                sealed[result.manifest.bundle_id.hex()] = study
        finally:
            await store.close()

    asyncio.run(run())
    return sealed


def test_urgent_goes_first_and_the_uplink_cap_holds_in_the_day(
    tmp_path: Path, anchor_key: Path
) -> None:
    rate_kbit = 2_000  # the day cap; no cap at night, and the day lasts all day here
    c = Cluster(tmp_path, anchor_key, 2, **QUICK)
    try:
        sender = c.dirs[0]
        configure(
            sender,
            transfer={"upload_kbit_s": 0, "day_upload_kbit_s": rate_kbit, "day_hours": "00-24"},
        )
        result = tsfnode("import", pydicom_data_folder(), "--node", sender, "--quiet")
        assert result.returncode == 0, result.stderr
        by_size = {
            study.name: sum(p.stat().st_size for p in study.rglob("*.dcm"))
            for study in (sender / "intake").iterdir()
            if study.is_dir()
        }
        # The four largest studies under 5 MB, smallest first (chosen by size, not by their
        # random new UIDs, so that every run sends the same bytes): about 2.7 MB once
        # compressed, well over ten bursts and some ten seconds at the cap.
        picked = sorted((s for s, n in by_size.items() if n <= 5_000_000), key=by_size.get)[-4:]
        assert len(picked) == 4, by_size
        c.start()
        wait_for(
            "the sender knows the reader's address",
            lambda: len(get_json(f"{c.url(0)}/api/v1/directory?kind=node")) == 2,
        )
        c.stop_node(0)  # sealed while it is down: it finds all four at once when it starts
        routine = list(seal_all(sender, c.ids[1], 3, studies=picked[:3]))
        confirmed = tsfnode("review", picked[3], "--node", sender, "--confirm-all")
        assert confirmed.returncode == 0, confirmed.stderr
        urgent = seal(sender, picked[3], c.ids[1], urgent=True)
        c.start_node(0)
        wait_for(
            "all four delivered",
            lambda: all(state_of(c.url(0), b, "out") == "delivered" for b in [*routine, urgent]),
            timeout=120,
        )
        out = {t["bundle_id"]: t for t in transfers(c.url(0)) if t["direction"] == "out"}
        assert all(out[b]["attempts"] == 1 for b in out), out
        started = {b: out[b]["started_ms"] for b in out}
        # Two deliveries at a time: the urgent one, sealed last, and the oldest routine
        # one go first; the other routine ones wait for a free place, oldest first.
        assert started[urgent] < started[routine[1]] <= started[routine[2]]
        assert started[routine[0]] < started[routine[1]]
        assert out[urgent]["priority"] == PRIORITY_URGENT
        # The cap: never more bytes on the uplink than a burst plus the rate by the time
        # (a slow machine only sends less, so this cannot fail by noise).
        span_s = (max(t["deposited_ms"] for t in out.values()) - min(started.values())) / 1000
        sent = sum(t["size"] for t in out.values())
        rate = rate_kbit * 1000 / 8
        assert sent > 10 * RateLimit(int(rate)).burst  # the cap had much to hold back
        assert sent <= RateLimit(int(rate)).burst + rate * span_s, (sent, span_s)
    finally:
        c.close()


def acknowledged_puts(log: Path) -> Counter[str]:
    """(bundle, chunk) PUTs a node answered 204, from its access log."""
    count: Counter[str] = Counter()
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"PUT"' in line and '"status": 204' in line:
            count[json.loads(line)["path"]] += 1
    return count


@pytest.mark.timeout(400)
def test_kill_9_anywhere_in_20_transfers_loses_and_repeats_nothing(
    tmp_path: Path, anchor_key: Path
) -> None:
    limited = {"transfer": {"poll_interval_ms": 500, "retry_base_ms": 200, "upload_kbit_s": 12_000}}
    c = Cluster(tmp_path, anchor_key, 3, **limited)
    try:
        sender, relay, reader = c.dirs
        configure(reader, transfer={"relays": [c.ids[1]]})
        result = tsfnode("import", pydicom_data_folder(), "--node", sender, "--quiet")
        assert result.returncode == 0, result.stderr
        bundles = seal_all(sender, c.ids[2], 20)
        assert len(bundles) == 20
        c.start()
        rng = random.Random(20261128)  # the same kill schedule in every run
        deadline = time.monotonic() + 240
        kills = 0
        while time.monotonic() < deadline and kills < 9:
            time.sleep(rng.uniform(1.0, 3.0))
            victim = kills % 3  # sender, relay, reader in turn, at random moments
            c.stop_node(victim, signal.SIGKILL)
            kills += 1
            time.sleep(rng.uniform(0.2, 2.0))
            c.start_node(victim)
        wait_for(
            "every bundle delivered and acknowledged",
            lambda: all(state_of(c.url(0), b, "out") == "delivered" for b in bundles),
            timeout=max(30, deadline - time.monotonic() + 60),
        )
        assert kills == 9
        out = [t for t in transfers(c.url(0)) if t["direction"] == "out"]
        # The kills landed mid-transfer (attempts failed) and some went through the relay.
        # A delivery's last route is not the evidence: an attempt through the relay that
        # a later kill cut is followed by a direct one. The relay's own log is.
        assert any(t["attempts"] > 1 for t in out)
        assert {t["route"] for t in out} <= {"direct", "relay"}
        assert acknowledged_puts(relay.parent / f"{relay.name}.log"), "the relay took no chunk"
        for bundle, study in bundles.items():
            assert state_of(c.url(2), bundle, "in") == "complete"
            assert received_files(reader, bundle) == expected_files(sender / "intake" / study)
        assert sorted(p.name for p in (reader / "received").iterdir()) == sorted(bundles)
        for node in (relay, reader):
            repeated = {
                k: n
                for k, n in acknowledged_puts(node.parent / f"{node.name}.log").items()
                if n > 1
            }
            assert not repeated, f"acknowledged chunks sent again to {node.name}: {repeated}"
    finally:
        c.close()


def test_a_slow_link_that_breaks_every_few_seconds_still_delivers(pair: Cluster) -> None:
    sender, reader = pair.dirs
    study = import_study(sender, RADIOGRAPH)
    bundle = seal(sender, study, pair.ids[1])
    proxy = pair.proxies[1]  # everything the reader receives goes through it
    proxy.rate = 400_000  # bytes per second, about 3 Mbit/s
    proxy.latency_s = 0.05
    proxy.cut_every_s = 2.0
    pair.start()
    wait_for(
        "the delivery through a breaking link",
        lambda: state_of(pair.url(0), bundle, "out") == "delivered",
        timeout=100,
    )
    assert proxy.cuts >= 2
    (out,) = [t for t in transfers(pair.url(0)) if t["bundle_id"] == bundle]
    assert out["attempts"] >= 2  # cut connections ended attempts, the next resumed
    assert received_files(reader, bundle) == expected_files(sender / "intake" / study)
    # A cut can lose the answer to a PUT the reader completed: only such chunks, in
    # flight at a cut (at most a window of them per cut), may cross twice.
    puts = acknowledged_puts(reader.parent / "node1.log")
    again = sum(n - 1 for n in puts.values())
    assert again <= 4 * proxy.cuts, puts


def test_a_link_cut_before_a_window_of_chunks_can_cross_still_delivers(
    pair: Cluster,
) -> None:
    """1 Mbit/s cut every 2 s: four 64 KiB chunks side by side need 2.1 s, so an attempt
    that keeps the first window never finishes a chunk; the next attempts halve it."""
    sender, reader = pair.dirs
    result = tsfnode("import", pydicom_data_folder(), "--node", sender, "--quiet")
    assert result.returncode == 0, result.stderr
    journey = {  # bytes each study takes on the link
        study.name: sum(len(b) for b in expected_files(study).values())
        for study in (sender / "intake").iterdir()
        if study.is_dir()
    }
    study = min((n, s) for s, n in journey.items() if 300_000 <= n <= 1_000_000)[1]
    (bundle,) = seal_all(sender, pair.ids[1], 1, studies=[study])
    proxy = pair.proxies[1]
    proxy.rate = 125_000
    proxy.latency_s = 0.02
    proxy.cut_every_s = 2.0
    pair.start()
    wait_for(
        "the delivery through a link cut every 2 s",
        lambda: state_of(pair.url(0), bundle, "out") == "delivered",
        timeout=100,
    )
    (out,) = [t for t in transfers(pair.url(0)) if t["bundle_id"] == bundle]
    assert out["size"] > 4 * 65536  # more than a first window
    assert out["attempts"] >= 2
    assert received_files(reader, bundle) == expected_files(sender / "intake" / study)


@pytest.fixture
def small_disk(pair: Cluster) -> Iterator[Path]:
    """The reader's chunk files on a 1 MB tmpfs."""
    with small_tmpfs(pair.dirs[1] / "chunks", "1m") as where:
        try:
            yield where
        finally:
            pair.close()  # the node lets go of the mount before it goes


def test_a_full_disk_pauses_the_transfer_and_it_resumes_when_space_is_back(
    pair: Cluster, small_disk: Path
) -> None:
    sender, reader = pair.dirs
    study = import_study(sender, RADIOGRAPH)
    bundle = seal(sender, study, pair.ids[1])
    pair.start()
    wait_for(
        "the sender says the recipient's disk is full",
        lambda: any(
            "disk is full" in t["last_error"]
            for t in transfers(pair.url(0))
            if t["bundle_id"] == bundle
        ),
        timeout=60,
    )
    (inbound,) = [t for t in transfers(pair.url(1)) if t["bundle_id"] == bundle]
    assert inbound["last_error"] == "disk full: paused"
    assert 0 < inbound["bytes_done"] < inbound["size"]
    # Nothing is lost at the sender: its chunks are all there.
    assert state_of(pair.url(0), bundle, "out") == "pending"
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    wait_for(
        "the transfer resumes and completes",
        lambda: state_of(pair.url(0), bundle, "out") == "delivered",
        timeout=90,
    )
    assert received_files(reader, bundle) == expected_files(sender / "intake" / study)


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


def test_a_relay_refuses_mail_for_nodes_it_does_not_serve_and_beyond_its_quota(
    tmp_path: Path, anchor_key: Path
) -> None:
    c = Cluster(tmp_path, anchor_key, 3, **QUICK)
    try:
        configure(c.dirs[1], transfer={"relay_quota_mb": 1})
        configure(c.dirs[2], transfer={"relays": [c.ids[1]]})
        c.start()
        wait_for(
            "the relay knows the reader lists it",
            lambda: len(get_json(f"{c.url(1)}/api/v1/directory?kind=node")) == 3,
        )
        relay = f"{c.url(1)}/peer/v1/bundles"
        status, text = post(relay, _manifest_from(c.dirs[2], c.ids[0], 100_000))
        assert (status, text) == (403, "this bundle is not addressed to a node this one serves")
        status, text = post(relay, _manifest_from(c.dirs[0], c.ids[2], 3 * 1024 * 1024))
        assert (status, text) == (507, "this relay's quota for others' mail is full")
        status, _ = post(relay, _manifest_from(c.dirs[0], c.ids[2], 100_000))
        assert status == 200  # for the reader, within the quota
        status, text = post(relay, b"not a manifest")
        assert status == 400
        assert "bad manifest" in text
        # Bad chunk bodies: each refused with its reason; what arrived whole is kept.
        raw, chunks = _sealed_from(c.dirs[0], c.ids[2], 300_000)
        manifest = Manifest.decode(raw)
        assert post(relay, raw)[0] == 200
        at = f"{relay}/{manifest.bundle_id.hex()}"

        def held() -> list[int]:
            have = ChunkSet(manifest.chunk_count, get_bytes(f"{at}/have"))
            return [i for i in range(manifest.chunk_count) if i in have]

        whole = sum(len(x) for x in chunks[0:2])
        assert put(f"{at}/chunks/0-1", chunks[0] + chunks[1][:100]) == (
            400,
            f"the body must be {whole} bytes",
        )
        assert held() == []
        assert put(f"{at}/chunks/0-1", [chunks[0], chunks[1][:100]]) == (
            400,
            "the body ends inside chunk 1",
        )
        assert held() == [0]  # the whole first chunk is kept
        assert put(f"{at}/chunks/1-2", [chunks[1], chunks[2], b"x"]) == (
            400,
            f"the body is longer than {len(chunks[1]) + len(chunks[2])} bytes",
        )
        assert held() == [0, 1, 2]  # whole and checked before the excess byte came
        forged = bytearray(chunks[3])
        forged[7] ^= 1
        assert put(f"{at}/chunks/3-4", [bytes(forged), chunks[4]]) == (
            422,
            "chunk 3 does not match the manifest",
        )
        assert held() == [0, 1, 2]
        assert put(f"{at}/chunks/3", chunks[3]) == (204, "")
        assert put(f"{at}/chunks/{manifest.chunk_count}", b"x")[0] == 400
        assert held() == [0, 1, 2, 3]
        # Chunk 4 half sent by one request: another that brings it too does not write
        # it (a wrong copy could overwrite the right one) and says so; the first ends.
        parts = urllib.parse.urlsplit(f"{at}/chunks/4")
        slow = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        try:
            slow.putrequest("PUT", parts.path)
            slow.putheader("Content-Length", str(len(chunks[4])))
            slow.endheaders()
            slow.send(chunks[4][:1000])
            assert put(f"{at}/chunks/4", chunks[4]) == (
                409,
                "chunk 4 was being received from another request",
            )
            slow.send(chunks[4][1000:])
            response = slow.getresponse()
            assert (response.status, response.read()) == (204, b"")
        finally:
            slow.close()
        assert held() == [0, 1, 2, 3, 4]
    finally:
        c.close()


def test_chunks_another_request_is_bringing_are_sent_again_in_the_same_attempt(
    pair: Cluster,
) -> None:
    """The reader is receiving chunk 0 from a request left half-way (as after a cut):
    the sender's own copy of it is refused with 409, sent again, and the delivery goes
    through in its first attempt once the other request ends."""
    sender, reader = pair.dirs
    pair.start()
    wait_for(
        "the sender knows the reader's address",
        lambda: len(get_json(f"{pair.url(0)}/api/v1/directory?kind=node")) == 2,
    )
    raw, chunks = _sealed_from(sender, pair.ids[1], 300_000)
    manifest = Manifest.decode(raw)
    blobs = BlobStore(sender / "blobs")
    for chunk in chunks:
        blobs.put(chunk)
    bundle = manifest.bundle_id.hex()
    at = f"{pair.url(1)}/peer/v1/bundles/{bundle}"
    assert post(f"{pair.url(1)}/peer/v1/bundles", raw)[0] == 200
    parts = urllib.parse.urlsplit(f"{at}/chunks/0")
    slow = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        slow.putrequest("PUT", parts.path)
        slow.putheader("Content-Length", str(len(chunks[0])))
        slow.endheaders()
        slow.send(chunks[0][:1000])

        async def queue() -> None:
            store = await Store.open(sender / "node.db")
            try:
                await queue_bundle(
                    store.db,
                    manifest,
                    sender=read_key(sender / "node.key").public.key,
                    study_uid="",
                    now=int(time.time() * 1000),
                )
            finally:
                await store.close()

        asyncio.run(queue())
        log = reader.parent / f"{reader.name}.log"

        def refused_twice() -> bool:
            lines = [json.loads(line) for line in log.read_text().splitlines()]
            return 2 <= sum(
                1
                for r in lines
                if r.get("event") == "http request"
                and r["path"] == f"/peer/v1/bundles/{bundle}/chunks/0"
                and r["status"] == 409
            )

        wait_for("the sender's chunk 0 is refused, and sent again", refused_twice)
        (out,) = [t for t in transfers(pair.url(0)) if t["bundle_id"] == bundle]
        assert out["state"] != "delivered"  # it waits for chunk 0
        assert out["attempts"] <= 1  # without failing the attempt
        slow.send(chunks[0][1000:])
        response = slow.getresponse()
        assert (response.status, response.read()) == (204, b"")
    finally:
        slow.close()
    wait_for("delivered", lambda: state_of(pair.url(0), bundle, "out") == "delivered", timeout=60)
    (out,) = [t for t in transfers(pair.url(0)) if t["bundle_id"] == bundle]
    assert out["attempts"] == 1
