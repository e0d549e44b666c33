"""protocol/vectors.json: what a second implementation checks itself against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import blake3
import msgpack
import pytest

from protocol.bundle import BundleOpener, Manifest
from protocol.documents import decode_document
from protocol.envelope import decode_envelope
from protocol.identity import Identity, PublicIdentity
from tests.protocol.make_vectors import vectors

FILE = Path(__file__).parents[2] / "protocol" / "vectors.json"
STORED: dict[str, Any] = json.loads(FILE.read_text())


def h(value: str) -> bytes:
    return bytes.fromhex(value)


@pytest.mark.parametrize(
    "section",
    [
        "identities",
        "signatures",
        "envelopes",
        "documents",
        "pairs",
        "rotations",
        "chunks",
        "reconciliation",
    ],
)
def test_this_implementation_reproduces_the_vectors(section: str) -> None:
    assert vectors()[section] == STORED[section]


def test_bundle_vector_reproduces_except_the_random_key_wraps() -> None:
    fresh, stored = vectors()["bundles"][0], STORED["bundles"][0]
    assert {k: v for k, v in fresh.items() if k != "manifest"} == {
        k: v for k, v in stored.items() if k != "manifest"
    }


@pytest.mark.parametrize("vector", STORED["identities"])
def test_identity_vectors(vector: dict[str, Any]) -> None:
    me = Identity(h(vector["seed"]))
    assert me.public.key == h(vector["public_key"])
    assert PublicIdentity.from_text(vector["id_text"]) == me.public
    assert bytes(me.public.x25519()) == h(vector["x25519_public"])


@pytest.mark.parametrize("vector", STORED["envelopes"])
def test_stored_envelopes_decode_to_their_bodies(vector: dict[str, Any]) -> None:
    recipient = Identity(h(vector["recipient_seed"])) if vector["recipient_seed"] else None
    envelope = decode_envelope(
        h(vector["envelope"]), recipient=recipient, replay=None, now=vector["timestamp"]
    )
    assert envelope.kind == vector["kind"]
    assert envelope.sender == Identity(h(vector["sender_seed"])).public
    assert envelope.nonce == h(vector["nonce"])
    assert envelope.body == msgpack.unpackb(h(vector["body_msgpack"]))


@pytest.mark.parametrize("vector", STORED["documents"])
def test_stored_document_verifies(vector: dict[str, Any]) -> None:
    doc = decode_document(h(vector["document"]))
    assert doc.signer == Identity(h(vector["signer_seed"])).public
    # a report without the reader's images: the optional key reads as None
    assert doc.body == {"attachments": None, **msgpack.unpackb(h(vector["body_msgpack"]))}
    assert doc.digest == h(vector["digest_blake3"])


def test_a_report_vector_carries_the_reader_images() -> None:
    """SPEC.md §5: each attachment is [SOP Instance UID, SOP Class UID, BLAKE3, size]."""
    (attached,) = [v for v in STORED["documents"] if b"attachments" in h(v["body_msgpack"])]
    doc = decode_document(h(attached["document"]))
    assert [a[:2] for a in doc.body["attachments"]] == [
        ["2.25.1001", "1.2.840.10008.5.1.4.1.1.88.59"],
        ["2.25.1002", "1.2.840.10008.5.1.4.1.1.11.1"],
    ]
    assert doc.body["attachments"][0][2:] == [blake3.blake3(b"kos").digest(), 3]


def test_stored_pair_follows_the_spec() -> None:
    """The pair id is BLAKE3("tsf/pair-id" 0x00 reader sender nonce)[:16]; the terms carry
    it and the nonce; the sender countersigned the exact terms bytes (tag pair/terms); the
    merge key is ("pair", pair_id, reader, sender)."""
    vector = STORED["pairs"][0]
    reader = Identity(h(vector["reader_seed"])).public
    sender = Identity(h(vector["sender_seed"])).public
    nonce = h(vector["nonce"])
    derived = blake3.blake3(b"tsf/pair-id\x00" + reader.key + sender.key + nonce).digest()[:16]
    assert derived == h(vector["pair_id"])
    terms = msgpack.unpackb(h(vector["terms_msgpack"]))
    assert (terms["pair_id"], terms["nonce"]) == (derived, nonce)
    assert (terms["reader"], terms["sender"]) == (reader.key, sender.key)
    sender.verify("pair/terms", h(vector["terms_msgpack"]), h(vector["countersignature"]))
    record = decode_document(h(vector["record"]))
    assert record.signer == reader
    assert record.body["terms"] == h(vector["terms_msgpack"])
    key = msgpack.packb(["pair", derived, reader.key, sender.key])
    assert blake3.blake3(key).digest()[:8] == h(vector["key_hash"])


def test_stored_rotation_follows_the_spec() -> None:
    """The old key signs the record; the new key countersigns old ‖ new ‖ not_before (8
    bytes big-endian) with tag key_rotation/new; the merge key is ("key_rotation", old,
    new)."""
    vector = STORED["rotations"][0]
    old = Identity(h(vector["old_seed"])).public
    new = Identity(h(vector["new_seed"])).public
    message = old.key + new.key + vector["not_before"].to_bytes(8, "big")
    assert message == h(vector["countersigned_message"])
    new.verify("key_rotation/new", message, h(vector["countersignature"]))
    record = decode_document(h(vector["record"]))
    assert record.kind == "key_rotation"
    assert record.signer == old
    assert record.body["new"] == new.key
    assert record.body["not_before"] == vector["not_before"]
    key = msgpack.packb(["key_rotation", old.key, new.key])
    assert blake3.blake3(key).digest()[:8] == h(vector["key_hash"])


def test_stored_bundle_opens() -> None:
    vector = STORED["bundles"][0]
    manifest = Manifest.decode(h(vector["manifest"]))
    recipient = Identity(h(vector["recipient_seed"]))
    assert manifest.unwrap_key(recipient) == h(vector["bundle_key"])
    assert manifest.bundle_id == h(vector["bundle_id"])
    opener = BundleOpener.for_recipient(manifest, recipient)
    plain = b"".join(opener.open_chunk(i, h(c)) for i, c in enumerate(vector["chunks"]))
    assert plain == h(vector["plaintext"])


def spec_fingerprint(entries: list[bytes]) -> bytes:
    """SPEC.md §8.3.1's fingerprint, written again from the text (not from reconcile.py)."""
    total = sum(int.from_bytes(blake3.blake3(e).digest()[:16], "little") for e in entries)
    data = (total % 2**128).to_bytes(16, "little") + len(entries).to_bytes(8, "big")
    return blake3.blake3(data).digest()[:16]


def test_stored_reconciliation_follows_the_spec() -> None:
    vector = STORED["reconciliation"][0]
    b_entries = [h(e) for e in vector["entries_b"]]
    assert spec_fingerprint(b_entries) == h(vector["fingerprint_b_all"])
    assert spec_fingerprint([]) == h(vector["fingerprint_empty"])
    # B's opening: 40 entries split in 16 ranges of 2 or 3, each with its fingerprint
    opening = vector["opening_b"]
    assert len(opening) == 16
    assert opening[-1][0] == ""
    lower = b""
    for i, (upper, mode, payload) in enumerate(opening):
        inside = [e for e in b_entries if e[:8] >= lower and (not upper or e[:8] < h(upper))]
        assert len(inside) == 40 * (i + 1) // 16 - 40 * i // 16
        assert mode == 1
        assert h(payload) == spec_fingerprint(inside)
        lower = h(upper)
    # A lists where it differs; B then settles all, pushing what A lacks, wanting A's newer
    assert all(mode in (0, 2) for _u, mode, _p in vector["answer_a"])
    assert vector["answer_b"] == []
    a_keys = {h(e)[:8] for e in vector["entries_a"]}
    assert {h(k) for k in vector["push_b"]} == {e[:8] for e in b_entries} - a_keys
    assert len(vector["want_b"]) == 2


def test_stored_gossip_ranges_envelope_decodes() -> None:
    vector = next(v for v in STORED["envelopes"] if v["kind"] == "gossip_ranges")
    recipient = Identity(h(vector["recipient_seed"]))
    envelope = decode_envelope(
        h(vector["envelope"]), recipient=recipient, replay=None, now=vector["timestamp"]
    )
    assert envelope.body["round"] == 1
    assert len(envelope.body["ranges"]) == 16
