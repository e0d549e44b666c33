"""What a node takes and in what order: urgent first under the day's uplink cap; a relay's
refusals (not its node, beyond its quota, bad chunk bodies); chunks another request is
bringing."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from protocol.bundle import Manifest
from protocol.transfer import PRIORITY_URGENT, ChunkSet, RateLimit
from tests.harness.cluster import Cluster, configure
from tests.harness.data import pydicom_data_folder
from tests.harness.nodes import get_json, tsfnode
from tests.harness.waiting import wait_for
from tests.tsfnode.transfers.conftest import (
    QUICK,
    _manifest_from,
    _sealed_from,
    get_bytes,
    half_put,
    post,
    put,
    seal,
    seal_all,
    state_of,
    transfers,
)
from tsfnode.cli.transfers import queue_in_outbox
from tsfnode.keyfile import read_key
from tsfnode.store.blobs import BlobStore

pytestmark = pytest.mark.slow


def test_urgent_goes_first_and_the_uplink_cap_holds_in_the_day(
    tmp_path: Path, anchor_key: Path
) -> None:
    # The day cap (no cap at night, and the day lasts all day here): 4 Mbit/s, so that
    # the four studies take some five seconds at the cap, not ten at 2 Mbit/s.
    rate_kbit = 4_000
    c = Cluster(tmp_path, anchor_key, 2, **QUICK)
    try:
        sender = c.dirs[0]
        configure(
            sender,
            transfer={"upload_kbit_s": 0, "day_upload_kbit_s": rate_kbit, "day_hours": "00-24"},
        )
        # The four studies of pydicom-data this test always picked from the whole folder
        # (the four largest under 5 MB once imported): only their files are imported.
        files = [
            p
            for p in sorted(pydicom_data_folder().glob("*.dcm"))
            if p.name.startswith(("693_", "eCT_Supplemental", "US1_", "MR2_"))
        ]
        result = tsfnode("import", *files, "--node", sender, "--quiet")
        assert result.returncode == 0, result.stderr
        by_size = {
            study.name: sum(p.stat().st_size for p in study.rglob("*.dcm"))
            for study in (sender / "intake").iterdir()
            if study.is_dir()
        }
        # The four largest studies under 5 MB, smallest first (chosen by size, not by their
        # random new UIDs, so that every run sends the same bytes): about 2.7 MB once
        # compressed, over twenty bursts (a quarter of a second at the cap each).
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


def test_a_relay_refuses_mail_for_nodes_it_does_not_serve_and_beyond_its_quota(
    tmp_path: Path, anchor_key: Path
) -> None:
    c = Cluster(tmp_path, anchor_key, 3, **QUICK)
    try:
        configure(c.dirs[1], transfer={"relay_quota_mb": 2})  # a sender's share: 512 KiB
        configure(c.dirs[1], relay={"enabled": True})
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
        with half_put(f"{at}/chunks/4", chunks[4], timeout=10) as slow:
            assert put(f"{at}/chunks/4", chunks[4]) == (
                409,
                "chunk 4 was being received from another request",
            )
            slow.send(chunks[4][1000:])
            response = slow.getresponse()
            assert (response.status, response.read()) == (204, b"")
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
    with half_put(f"{at}/chunks/0", chunks[0], timeout=30) as slow:
        me = read_key(sender / "node.key").public.key
        now = int(time.time() * 1000)
        asyncio.run(queue_in_outbox(sender / "node.db", manifest, me, "", now))
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
    wait_for("delivered", lambda: state_of(pair.url(0), bundle, "out") == "delivered", timeout=60)
    (out,) = [t for t in transfers(pair.url(0)) if t["bundle_id"] == bundle]
    assert out["attempts"] == 1
