"""A study sealed from a reviewed intake, delivered directly or through a relay, received
byte for byte, acknowledged by a signed receipt; a bad relay blamed."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from protocol.bundle import Manifest
from protocol.documents import decode_document
from protocol.identity import PublicIdentity
from protocol.transfer import CHUNK_FETCH_HEADER, encode_chunk_fetch
from tests.harness.cluster import Cluster
from tests.harness.nodes import tsfnode
from tests.harness.waiting import wait_for
from tests.tsfnode.transfers.conftest import (
    RADIOGRAPH,
    blame_rows,
    delivered,
    expected_files,
    get_bytes,
    import_study,
    met,
    received_files,
    seal,
    sealed_radiograph,
    state_of,
    transfers,
)
from tsfnode.keyfile import read_key

pytestmark = pytest.mark.slow


def test_a_study_goes_directly_and_a_signed_receipt_comes_back(pair: Cluster) -> None:
    sender, reader = pair.dirs
    study, bundle = sealed_radiograph(pair)
    pair.start()
    out = delivered(pair, bundle, "the delivery is acknowledged", timeout=90)
    assert state_of(pair.url(1), bundle, "in") == "complete"
    assert received_files(reader, bundle) == expected_files(sender / "intake" / study)
    case = json.loads((reader / "received" / bundle / "case.json").read_text())
    assert case == {"study_uid": study, "urgency": "routine"}
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
    token = encode_chunk_fetch(  # the reader itself is answered: no longer held
        read_key(reader / "node.key"),
        PublicIdentity.from_text(trio.ids[1]).key,
        bytes.fromhex(bundle),
        int(time.time() * 1000),
    )
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(
            urllib.request.Request(
                f"{trio.url(1)}/peer/v1/bundles/{bundle}/chunks/0",
                headers={CHUNK_FETCH_HEADER: token.hex()},
            ),
            timeout=10,
        )


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


def test_a_reader_killed_right_after_its_receipt_still_holds_the_study_listed(
    pair: Cluster,
) -> None:
    """The sender forgets a bundle once its receipt is back: the reader's node, killed
    (SIGKILL) right then and started again, still holds it opened, whole and listed.
    (A kill keeps what the kernel was given; a power cut would also take what was not
    flushed: test_outbox_events checks the flush comes before the receipt.)"""
    sender, reader = pair.dirs
    study, bundle = sealed_radiograph(pair)
    pair.start()
    delivered(pair, bundle, "the delivery is acknowledged", timeout=90)
    pair.stop_node(1, signal.SIGKILL)
    pair.start_node(1)
    assert state_of(pair.url(1), bundle, "in") == "complete"
    assert received_files(reader, bundle) == expected_files(sender / "intake" / study)
    listing = json.loads((reader / "received" / bundle / "listing.json").read_text())
    assert len(listing["instances"]) == len(expected_files(sender / "intake" / study))
