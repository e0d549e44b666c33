"""Issue 21: a property test of what the network can feed a node. Real encodings
(envelopes of every gossip and liveness kind, directory records, a manifest, a mail
poll) are mutated, and, behind a valid signature of an admitted peer, their payloads too;
the decoders and then the engines the node runs on what decodes (Liveness,
GossipEngine) must raise only documented protocol errors (``RemoteProtocolError``),
and every message the engines answer with must encode. Bounded examples, no deadline."""

from __future__ import annotations

import os

import msgpack
import nacl.public
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootstrap.network import demo_anchor, load_network
from bootstrap.tools import admit_node
from protocol.bundle import BundleSealer, Manifest, encode_plaintext_header
from protocol.codec import pack
from protocol.directory import Directory, make_record
from protocol.documents import decode_document, split_documents
from protocol.envelope import FLAG_ENCRYPTED, decode_envelope, encode_envelope
from protocol.errors import RemoteProtocolError
from protocol.gossip import GossipEngine
from protocol.identity import Identity
from protocol.kinds import KINDS_BY_NAME
from protocol.liveness import LIVENESS_KINDS, Liveness
from protocol.transfer import decode_mail_poll, encode_mail_poll
from tests.protocol.helpers import NOW, FixedRng, identity, raw_envelope

ME, PEER = identity("node under test"), identity("admitted peer")
NETWORK = load_network("demo")
DAY_MS = 86_400_000


def _node_record(node: Identity, name: str) -> bytes:
    fields = {
        "name": name, "institution": "", "country": "BJ", "addresses": ["http://127.0.0.1:9"],
        "relays": [], "capabilities": ["bundles", "gossip"], "capacity": 0,
    }  # fmt: skip
    return make_record(
        "node", fields, signer=node, network="demo", version=NOW, now=NOW, ttl=DAY_MS
    )


RECORDS = [
    admit_node(NETWORK, demo_anchor(), ME.public, now=NOW),
    admit_node(NETWORK, demo_anchor(), PEER.public, now=NOW),
    _node_record(ME, "CHU Cotonou"),
    _node_record(PEER, "CHU Erasme"),
]


def _directory() -> Directory:
    directory = Directory(NETWORK.network)
    directory.add_many(RECORDS, NOW)
    return directory


def _manifest() -> bytes:
    sealer = BundleSealer(
        sender=PEER, recipients=[ME.public], chunk_size=1 << 16, rng=FixedRng("bundle")
    )
    sealer.push(encode_plaintext_header({}, [("a.bin", 1000)]))
    sealer.push(bytes(1000))
    _, manifest = sealer.finish(now=NOW, ttl=DAY_MS)
    return manifest


DIGEST = _directory().encoded_digest()
BODIES = {
    "ping": {"probe": b"p" * 8, "updates": [[ME.public.key, "suspect", 0]]},
    "pong": {"probe": b"p" * 8, "updates": [[PEER.public.key, "alive", 3]]},
    "ping_req": {"target": ME.public.key, "probe": b"q" * 8},
    "ping_ack": {"target": PEER.public.key, "probe": b"q" * 8},
    "gossip_syn": {"root": bytes(32)},
    "gossip_digest": {"root": bytes(32), "digest": DIGEST},
    "gossip_records": {"records": RECORDS, "digest": DIGEST},
}
ENCODED = [
    encode_envelope(kind=kind, sender=PEER, recipient=ME.public, body=body, now=NOW, rng=os.urandom)
    for kind, body in BODIES.items()
]
REAL = [*ENCODED, *RECORDS, _manifest(), encode_mail_poll(PEER, NOW)]

MSGPACK = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)  # fmt: skip


def _mutated(data: st.DataObject, base: bytes) -> bytes:
    how = data.draw(st.sampled_from(["flip", "cut", "splice", "insert"]))
    out = bytearray(base)
    if how == "flip" and out:
        for _ in range(data.draw(st.integers(1, 8))):
            out[data.draw(st.integers(0, len(out) - 1))] = data.draw(st.integers(0, 255))
    elif how == "cut":
        out = out[: data.draw(st.integers(0, len(out)))]
    elif how == "splice":
        cut = data.draw(st.integers(0, len(out)))
        out = out[:cut] + data.draw(st.binary(max_size=64))
    else:
        at = data.draw(st.integers(0, len(out)))
        out = out[:at] + data.draw(st.binary(min_size=1, max_size=16)) + out[at:]
    return bytes(out)


def _documented(call: object, *args: object, **kwargs: object) -> object:
    """``call`` returns, or raises a RemoteProtocolError; anything else fails the test."""
    try:
        return call(*args, **kwargs)  # type: ignore[operator]
    except RemoteProtocolError:
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_encodings_raise_only_documented_errors(data: st.DataObject) -> None:
    blob = _mutated(data, data.draw(st.sampled_from(REAL)))
    _documented(decode_envelope, blob, recipient=ME, replay=None, now=NOW)
    _documented(decode_document, blob)
    _documented(Manifest.decode, blob, now=NOW)
    _documented(decode_mail_poll, blob, NOW)
    _documented(split_documents, blob + blob)
    assert isinstance(_directory().add(blob, NOW), str)  # taken, stale or ignored


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_signed_mutated_payloads_reach_the_engines_safely(data: st.DataObject) -> None:
    """An admitted peer signs whatever payload it likes: the schema, then the engines."""
    kind = data.draw(st.sampled_from(sorted(BODIES)))
    spec = KINDS_BY_NAME[kind]
    if data.draw(st.booleans()):
        payload = _mutated(data, pack(BODIES[kind]))
    else:
        value = data.draw(st.fixed_dictionaries({k: MSGPACK for k in BODIES[kind]}))
        payload = msgpack.packb(value)
    nonce = data.draw(st.binary(min_size=24, max_size=24))
    flags = 0
    if spec.encrypted:
        box = nacl.public.Box(PEER.x25519(), ME.public.x25519())
        payload, flags = box.encrypt(payload, nonce).ciphertext, FLAG_ENCRYPTED
    blob = raw_envelope(
        PEER, code=spec.code, payload=payload, flags=flags, recipient=ME.public.key,
        nonce=nonce, kind_name=kind,
    )  # fmt: skip
    envelope = _documented(decode_envelope, blob, recipient=ME, replay=None, now=NOW)
    if envelope is None:
        return
    directory = _directory()
    liveness = Liveness(me=ME.public.key, rng=FixedRng("liveness"), now=NOW)
    liveness.set_members(set(directory.view(NOW).admitted), NOW)
    gossip = GossipEngine(me=ME.public.key, directory=directory, rng=FixedRng("gossip"), now=NOW)
    engine = liveness if kind in LIVENESS_KINDS else gossip
    answers = _documented(engine.receive, PEER.public.key, kind, envelope.body, NOW)  # type: ignore[attr-defined]
    for message in answers or []:
        encode_envelope(
            kind=message.kind, sender=ME, recipient=PEER.public, body=message.body, now=NOW,
            rng=os.urandom,
        )  # fmt: skip
