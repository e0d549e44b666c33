from __future__ import annotations

import struct

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.envelope import (
    HEADER_SIZE,
    decode_envelope,
    encode_envelope,
    open_envelope,
    peek_envelope,
)
from protocol.errors import (
    BadSignatureError,
    ExpiredError,
    IntegrityError,
    LocalProtocolError,
    MalformedError,
    ProtocolError,
    RemoteProtocolError,
    ReplayError,
    TooLargeError,
    UnknownSignerError,
    UnsupportedVersionError,
)
from protocol.kinds import KINDS_BY_NAME
from protocol.replay import ReplayWindow
from tests.protocol.helpers import NOW, FixedRng, identity, raw_envelope

ALICE, BOB, EVE = identity("alice"), identity("bob"), identity("eve")


def ping(probe: bytes = b"are you there", now: int = NOW) -> bytes:
    return encode_envelope(
        kind="ping",
        sender=ALICE,
        recipient=None,
        body={"probe": probe, "updates": [[BOB.public.key, "suspect", 3]]},
        now=now,
        rng=FixedRng("p"),
    )


def document(now: int = NOW) -> bytes:
    return encode_envelope(
        kind="document",
        sender=ALICE,
        recipient=BOB.public,
        body={"document": b"signed report bytes", "case_id": bytes(range(16))},
        now=now,
        rng=FixedRng("d"),
    )


@settings(max_examples=200)
@given(probe=st.binary(max_size=64), now=st.integers(0, 2**63 - 1))
def test_public_envelope_round_trips(probe: bytes, now: int) -> None:
    envelope = decode_envelope(ping(probe, now), recipient=None, replay=None, now=now)
    assert envelope.kind == "ping"
    assert envelope.body == {"probe": probe, "updates": [[BOB.public.key, "suspect", 3]]}
    assert envelope.sender == ALICE.public
    assert envelope.recipient is None
    assert envelope.timestamp == now


@settings(max_examples=100)
@given(doc=st.binary(max_size=4096), case_id=st.binary(min_size=16, max_size=16))
def test_encrypted_envelope_round_trips(doc: bytes, case_id: bytes) -> None:
    data = encode_envelope(
        kind="document",
        sender=ALICE,
        recipient=BOB.public,
        body={"document": doc, "case_id": case_id},
        now=NOW,
        rng=FixedRng("r"),
    )
    assert doc not in data or len(doc) < 8  # the payload travels encrypted
    envelope = decode_envelope(data, recipient=BOB, replay=None, now=NOW)
    assert envelope.body == {"document": doc, "case_id": case_id}


def test_encrypted_envelope_is_refused_by_another_node() -> None:
    with pytest.raises(UnknownSignerError):
        decode_envelope(document(), recipient=EVE, replay=None, now=NOW)


def test_same_bytes_give_the_same_envelope() -> None:
    assert ping() == ping()  # Ed25519 is deterministic; the nonce comes from the rng


# --- every field of the header, flipped -----------------------------------------------

FIELDS = {
    "magic": (0, MalformedError),
    "version": (4, UnsupportedVersionError),
    "kind": (5, (MalformedError, TooLargeError, BadSignatureError)),
    "flags": (6, MalformedError),
    "reserved": (7, MalformedError),
    "sender": (8, (BadSignatureError, MalformedError)),
    "recipient": (40, BadSignatureError),
    "timestamp": (72, BadSignatureError),
    "nonce": (80, BadSignatureError),
    "length": (104, (MalformedError, TooLargeError)),
    "payload": (HEADER_SIZE, BadSignatureError),
    "signature": (-1, BadSignatureError),
}


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("make", [ping, document])
def test_a_flipped_field_is_rejected(field: str, make) -> None:  # type: ignore[no-untyped-def]
    offset, error = FIELDS[field]
    data = bytearray(make())
    for bit in (0x01, 0x80):
        corrupted = bytearray(data)
        corrupted[offset] ^= bit
        with pytest.raises(error):
            decode_envelope(bytes(corrupted), recipient=BOB, replay=None, now=NOW)


@pytest.mark.parametrize("cut", [1, 63, 64, 65, 200])
def test_truncation_is_rejected(cut: int) -> None:
    data = document()
    with pytest.raises(MalformedError):
        peek_envelope(data[:-cut])


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(MalformedError):
        peek_envelope(ping() + b"\x00")


def test_swapped_sender_is_rejected() -> None:
    data = bytearray(ping())
    data[8:40] = EVE.public.key
    with pytest.raises(BadSignatureError):
        peek_envelope(bytes(data))


def test_envelope_re_signed_by_someone_else_does_not_open() -> None:
    """Eve takes Alice's encrypted payload and signs it as her own: the crypto_box made
    by Alice does not open as coming from Eve."""
    signed = peek_envelope(document())
    forged = raw_envelope(
        EVE,
        code=4,
        kind_name="document",
        flags=1,
        recipient=BOB.public.key,
        nonce=signed.nonce,
        payload=signed.payload,
    )
    with pytest.raises(IntegrityError):
        decode_envelope(forged, recipient=BOB, replay=None, now=NOW)


def test_oversized_length_is_refused_before_reading() -> None:
    data = raw_envelope(ALICE, code=1, payload=b"", length=2**31)
    with pytest.raises(TooLargeError):
        peek_envelope(data)


def test_unknown_version_is_refused() -> None:
    with pytest.raises(UnsupportedVersionError):
        peek_envelope(raw_envelope(ALICE, code=1, payload=msgpack.packb({"probe": b""}), version=2))


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(MalformedError, match="unknown envelope kind"):
        peek_envelope(raw_envelope(ALICE, code=200, payload=b"\x80"))


def test_public_kind_sent_encrypted_is_refused() -> None:
    with pytest.raises(MalformedError, match="must not be encrypted"):
        peek_envelope(raw_envelope(ALICE, code=1, flags=1, payload=b"\x80"))


# --- the payload behind a valid signature ---------------------------------------------


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (msgpack.packb({1: b"x"}), "msgpack"),  # integer map key
        (msgpack.packb({"probe": 1.5}), "binary"),  # float
        (msgpack.packb({"probe": "text"}), "binary"),  # str where bin is due
        (msgpack.packb({"probe": b"x", "extra": 1}), "unknown field"),
        (msgpack.packb({}), "lacks field"),
        (msgpack.packb({"probe": b"x" * 65}), "0-64 bytes"),
        (msgpack.packb([b"x"]), "must be a map"),
        (msgpack.packb({"probe": msgpack.ExtType(1, b"x")}), "ext"),
        (msgpack.packb({"probe": b"x"}) + b"\x00", "msgpack"),  # trailing data
        (b"\xc1", "msgpack"),  # never-used byte
        (b"\xdf\xff\xff\xff\xff", "msgpack"),  # map announcing 4 billion entries
    ],
)
def test_strict_payload_decoding(payload: bytes, match: str) -> None:
    signed = peek_envelope(raw_envelope(ALICE, code=1, payload=payload))
    with pytest.raises(MalformedError, match=match):
        open_envelope(signed, recipient=None)


def test_sender_misuse_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        encode_envelope(
            kind="document", sender=ALICE, recipient=None, body={}, now=NOW, rng=FixedRng("x")
        )
    with pytest.raises(LocalProtocolError):
        encode_envelope(
            kind="nope", sender=ALICE, recipient=None, body={}, now=NOW, rng=FixedRng("x")
        )
    with pytest.raises(LocalProtocolError):
        encode_envelope(
            kind="ping", sender=ALICE, recipient=None, body={"x": 1}, now=NOW, rng=FixedRng("x")
        )


# --- replay and freshness -------------------------------------------------------------


def test_replay_is_rejected_and_the_window_survives_a_restart() -> None:
    window = ReplayWindow()
    data = ping()
    decode_envelope(data, recipient=None, replay=window, now=NOW)
    with pytest.raises(ReplayError):
        decode_envelope(data, recipient=None, replay=window, now=NOW + 1000)
    restored = ReplayWindow.from_state(window.to_state())
    with pytest.raises(ReplayError):
        decode_envelope(data, recipient=None, replay=restored, now=NOW + 2000)


@pytest.mark.parametrize("offset_s", [-301, 301])
def test_stale_or_future_messages_are_rejected(offset_s: int) -> None:
    with pytest.raises(ExpiredError):
        decode_envelope(
            ping(now=NOW), recipient=None, replay=ReplayWindow(), now=NOW - offset_s * 1000
        )


def test_the_window_forgets_what_it_would_refuse_anyway() -> None:
    window = ReplayWindow(max_skew=1000)
    for i in range(100):
        window.check(ALICE.public.key, struct.pack(">Q", i), NOW + i, NOW + i)
    assert len(window) == 100
    window.check(ALICE.public.key, b"late", NOW + 1050, NOW + 1050)
    assert len(window) == 51


def test_a_full_window_refuses_rather_than_forgets() -> None:
    window = ReplayWindow(max_entries=3)
    for i in range(3):
        window.check(ALICE.public.key, bytes([i]), NOW, NOW)
    with pytest.raises(ReplayError, match="full"):
        window.check(ALICE.public.key, b"\xff", NOW, NOW)


# --- the decoder under a fuzzer -------------------------------------------------------

VALID = [ping(), document()]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_decoder_only_raises_documented_errors(data: st.DataObject) -> None:
    choice = data.draw(st.sampled_from(["random", "mutate", "splice"]))
    if choice == "random":
        blob = data.draw(st.binary(max_size=600))
    else:
        base = bytearray(data.draw(st.sampled_from(VALID)))
        if choice == "mutate":
            for _ in range(data.draw(st.integers(1, 8))):
                i = data.draw(st.integers(0, len(base) - 1))
                base[i] = data.draw(st.integers(0, 255))
        else:
            cut = data.draw(st.integers(0, len(base)))
            base = base[:cut] + data.draw(st.binary(max_size=200))
        blob = bytes(base)
    try:
        decode_envelope(blob, recipient=BOB, replay=ReplayWindow(), now=NOW)
    except RemoteProtocolError:
        pass
    except ProtocolError as exc:  # pragma: no cover - a local error from remote bytes
        pytest.fail(f"remote input raised a local error: {exc!r}")


def test_kind_table_limits_are_sane() -> None:
    for kind in KINDS_BY_NAME.values():
        assert kind.max_payload <= 4 * 1024 * 1024
        assert kind.schema.fields
