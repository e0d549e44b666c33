"""Make protocol/vectors.json: python -m tests.protocol.make_vectors > protocol/vectors.json

Every input is given as bytes (hex) so that another implementation can use the file
without Python; test_vectors.py checks that this implementation still produces the same
outputs. Only the manifest's wrapped keys are random (sealed boxes use an ephemeral key):
for those the file gives the bytes to open and what they must open to.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import nacl.bindings

from protocol.bundle import (
    CHUNK_AAD,
    BundleSealer,
    chunk_nonce,
    encode_plaintext_header,
)
from protocol.codec import pack
from protocol.directory import (
    countersign,
    key_hash,
    new_pair_terms,
    record_key,
    rotation_message,
    sign_pair,
    sign_rotation,
)
from protocol.documents import decode_document, digest, encode_document
from protocol.envelope import encode_envelope
from protocol.identity import Identity, domain_message
from protocol.reconcile import ENTRY, RangeIndex

NOW = 1_795_000_000_000


def seed(name: str) -> bytes:
    return hashlib.sha256(f"tsf test vector {name}".encode()).digest()


class Counter:
    """Returns the given bytes, in order: the 'randomness' a vector fixes."""

    def __init__(self, *values: bytes) -> None:
        self.values = list(values)

    def __call__(self, n: int) -> bytes:
        value = self.values.pop(0)
        assert len(value) == n
        return value


def identities() -> list[dict[str, Any]]:
    out = []
    for name in ("node-erasme", "node-cotonou", "reader-marie"):
        me = Identity(seed(name))
        out.append(
            {
                "seed": me.seed.hex(),
                "public_key": me.public.key.hex(),
                "id_text": me.public.text,
                "x25519_public": bytes(me.public.x25519()).hex(),
            }
        )
    return out


def signatures() -> list[dict[str, Any]]:
    me = Identity(seed("node-erasme"))
    data = b"exact bytes, never re-encoded"
    return [
        {
            "seed": me.seed.hex(),
            "tag": "envelope/ping",
            "data": data.hex(),
            "signed_message": domain_message("envelope/ping", data).hex(),
            "signature": me.sign("envelope/ping", data).hex(),
        }
    ]


def envelopes() -> list[dict[str, Any]]:
    sender, recipient = Identity(seed("node-cotonou")), Identity(seed("node-erasme"))
    out = []
    cases = [
        ("ping", None, {"probe": b"\x01\x02\x03\x04", "updates": []}),
        ("document", recipient, {"document": b"a signed report", "case_id": bytes(range(16))}),
        ("gossip_ranges", recipient, ranges_body()),
    ]
    for i, (kind, to, body) in enumerate(cases):
        nonce = hashlib.sha256(f"nonce {i}".encode()).digest()[:24]
        data = encode_envelope(
            kind=kind,
            sender=sender,
            recipient=to.public if to else None,
            body=body,
            now=NOW,
            rng=Counter(nonce),
        )
        out.append(
            {
                "kind": kind,
                "sender_seed": sender.seed.hex(),
                "recipient_seed": to.seed.hex() if to else None,
                "timestamp": NOW,
                "nonce": nonce.hex(),
                "body_msgpack": pack(body).hex(),
                "envelope": data.hex(),
            }
        )
    return out


def documents() -> list[dict[str, Any]]:
    reader = Identity(seed("reader-marie"))
    body = {
        "case_id": bytes(range(16)),
        "bundle_id": bytes(range(16, 32)),
        "created": NOW,
        "language": "fr",
        "findings": "Opacité du lobe inférieur droit.",
        "impression": "Pneumopathie.",
        "recommendations": "Contrôle à 6 semaines.",
        "image_quality": "adequate",
        "quality_reason": "",
        "supersedes": None,
    }
    # the same report with the reader's images it carries (SPEC.md §5 attachments)
    attached = {
        **body,
        "attachments": [
            ["2.25.1001", "1.2.840.10008.5.1.4.1.1.88.59", digest(b"kos"), 3],
            ["2.25.1002", "1.2.840.10008.5.1.4.1.1.11.1", digest(b"gsps"), 4],
        ],
    }
    out = []
    for made in (body, attached):
        data = encode_document("report", made, reader)
        out.append(
            {
                "kind": "report",
                "signer_seed": reader.seed.hex(),
                "body_msgpack": pack(made).hex(),
                "document": data.hex(),
                "digest_blake3": digest(data).hex(),
            }
        )
    return out


def pairs() -> list[dict[str, Any]]:
    """A pair record (SPEC §8.1): the id derived from the reader, the sender and the nonce,
    the terms countersigned by the sender, the record signed by the reader, and its merge
    key's hash (§8.2, §8.3)."""
    reader, sender = Identity(seed("reader-marie")), Identity(seed("sender-koffi"))
    nonce = bytes(range(100, 116))
    terms = new_pair_terms(
        reader=reader.public.key,
        sender=sender.public.key,
        nonce=nonce,
        weekly_quota=3,
        reading_delay_hours=48,
    )
    terms_bytes = pack(terms)
    countersignature = countersign(terms_bytes, sender)
    record = sign_pair(
        terms,
        signer=reader,
        countersignature=countersignature,
        terms_bytes=terms_bytes,
        network="vectors",
        version=NOW,
        now=NOW,
        ttl=86_400_000,
    )
    return [
        {
            "reader_seed": reader.seed.hex(),
            "sender_seed": sender.seed.hex(),
            "nonce": nonce.hex(),
            "pair_id": terms["pair_id"].hex(),
            "terms_msgpack": terms_bytes.hex(),
            "countersignature": countersignature.hex(),
            "record": record.hex(),
            "key_hash": key_hash(record_key(decode_document(record))).hex(),
        }
    ]


def rotations() -> list[dict[str, Any]]:
    """A key rotation (SPEC §8.1, §8.5): the node's old key signs the record, the new key
    countersigns old key ‖ new key ‖ not_before (tag key_rotation/new)."""
    old, new = Identity(seed("node-erasme")), Identity(seed("node-erasme-2"))
    not_before = NOW + 3_600_000
    record = sign_rotation(
        old, new, not_before=not_before, network="vectors", version=NOW, now=NOW, ttl=86_400_000
    )
    message = rotation_message(old.public.key, new.public.key, not_before)
    return [
        {
            "old_seed": old.seed.hex(),
            "new_seed": new.seed.hex(),
            "not_before": not_before,
            "countersigned_message": message.hex(),
            "countersignature": decode_document(record).body["countersignature"].hex(),
            "record": record.hex(),
            "key_hash": key_hash(record_key(decode_document(record))).hex(),
        }
    ]


def chunks() -> list[dict[str, Any]]:
    key = hashlib.sha256(b"bundle key").digest()
    bundle_id = hashlib.sha256(b"bundle id").digest()[:16]
    out = []
    for index, last, plaintext in ((0, False, b"first chunk"), (1, True, b"last")):
        nonce = chunk_nonce(bundle_id, index, last)
        ct = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, CHUNK_AAD, nonce, key
        )
        out.append(
            {
                "key": key.hex(),
                "bundle_id": bundle_id.hex(),
                "index": index,
                "last": last,
                "plaintext": plaintext.hex(),
                "nonce": nonce.hex(),
                "aad": CHUNK_AAD.hex(),
                "ciphertext": ct.hex(),
                "hash_blake3": digest(ct).hex(),
            }
        )
    return out


def bundles() -> list[dict[str, Any]]:
    sender, recipient = Identity(seed("node-cotonou")), Identity(seed("node-erasme"))
    bundle_id = hashlib.sha256(b"bundle id").digest()[:16]
    key = hashlib.sha256(b"bundle key").digest()
    header = encode_plaintext_header({"modality": "CR"}, [("IM1.dcm", 5), ("IM2.dcm", 3)])
    plaintext = header + b"hello" + b"abc"
    sealer = BundleSealer(
        sender=sender, recipients=[recipient.public], chunk_size=65536, rng=Counter(bundle_id, key)
    )
    ciphertexts = sealer.push(plaintext)
    rest, manifest = sealer.finish(now=NOW, ttl=86_400_000)
    return [
        {
            "sender_seed": sender.seed.hex(),
            "recipient_seed": recipient.seed.hex(),
            "bundle_id": bundle_id.hex(),
            "bundle_key": key.hex(),
            "plaintext": plaintext.hex(),
            "plaintext_header_length": len(header),
            "chunks": [c.hex() for c in ciphertexts + rest],
            "manifest": manifest.hex(),
        }
    ]


def range_entries(count: int, changed: tuple[int, ...] = ()) -> list[tuple[bytes, int, bytes]]:
    """Digest entries (key hash, version, digest prefix) of a made-up directory; those
    in ``changed`` hold a later version."""
    out = []
    for i in range(count):
        key = hashlib.sha256(f"record key {i}".encode()).digest()[:8]
        version = NOW + i + (1000 if i in changed else 0)
        prefix = hashlib.sha256(f"record {i} v{version}".encode()).digest()[:4]
        out.append((key, version, prefix))
    return out


def ranges_body() -> dict[str, Any]:
    """The first message of an exchange over 40 entries: 16 fingerprints."""
    opening = RangeIndex(range_entries(40)).opening()
    return {"round": 1, "ranges": [r.to_wire() for r in opening], "want": b"", "records": []}


def reconciliation() -> list[dict[str, Any]]:
    """B holds 40 entries; A holds the first 38 (so lacks two), and later versions of
    entries 5 and 17. B opens (16 fingerprints), A answers."""
    b_entries = range_entries(40)
    a_entries = range_entries(38, changed=(5, 17))
    b, a = RangeIndex(b_entries), RangeIndex(a_entries)
    opening = b.opening()
    answer = a.answer(opening)
    second = b.answer(answer.ranges)

    def wire(ranges: Any) -> list[list[Any]]:
        return [[r.upper.hex(), r.mode, r.payload.hex()] for r in ranges]

    return [
        {
            "entries_b": [ENTRY.pack(*e).hex() for e in b_entries],
            "entries_a": [ENTRY.pack(*e).hex() for e in a_entries],
            "fingerprint_b_all": b.fingerprint(0, len(b)).hex(),
            "fingerprint_empty": b.fingerprint(0, 0).hex(),
            "opening_b": wire(opening),
            "answer_a": wire(answer.ranges),
            "push_a": [k.hex() for k in answer.push],
            "want_a": [k.hex() for k in answer.want],
            "answer_b": wire(second.ranges),
            "push_b": [k.hex() for k in second.push],
            "want_b": [k.hex() for k in second.want],
        }
    ]


def vectors() -> dict[str, Any]:
    return {
        "about": "tsf protocol version 1 test vectors; see protocol/SPEC.md",
        "identities": identities(),
        "signatures": signatures(),
        "envelopes": envelopes(),
        "documents": documents(),
        "pairs": pairs(),
        "rotations": rotations(),
        "chunks": chunks(),
        "bundles": bundles(),
        "reconciliation": reconciliation(),
    }


if __name__ == "__main__":
    json.dump(vectors(), sys.stdout, indent=1)
    sys.stdout.write("\n")
