from __future__ import annotations

import nacl.exceptions
import nacl.public
import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import BadSignatureError, MalformedError
from protocol.identity import ID_TEXT_LENGTH, Identity, PublicIdentity, domain_message
from tests.protocol.helpers import identity

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@given(st.binary(min_size=32, max_size=32))
def test_text_form_round_trips(seed: bytes) -> None:
    public = Identity(seed).public
    text = public.text
    assert len(text.replace("-", "")) == ID_TEXT_LENGTH
    assert [len(g) for g in text.split("-")] == [7] * 8
    assert PublicIdentity.from_text(text) == public
    assert PublicIdentity.from_text(text.lower().replace("-", " ")) == public


def test_confusable_digits_are_read_as_letters() -> None:
    public = identity("confusable").public
    text = public.text.replace("O", "0").replace("I", "1").replace("B", "8")
    assert PublicIdentity.from_text(text) == public


def test_every_single_mistyped_character_is_caught() -> None:
    text = identity("typo").public.text.replace("-", "")
    for position in range(ID_TEXT_LENGTH):
        for replacement in ALPHABET:
            if replacement == text[position]:
                continue
            typo = text[:position] + replacement + text[position + 1 :]
            with pytest.raises(MalformedError):
                PublicIdentity.from_text(typo)


def test_most_swaps_of_neighbours_are_caught() -> None:
    caught = total = 0
    for n in range(20):
        text = identity(f"swap{n}").public.text.replace("-", "")
        for i in range(ID_TEXT_LENGTH - 1):
            if text[i] == text[i + 1]:
                continue
            total += 1
            swapped = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
            try:
                PublicIdentity.from_text(swapped)
            except MalformedError:
                caught += 1
    assert caught / total > 0.95


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ABC", "56 characters"),
        ("!" * 56, "A-Z and the digits 2-7"),
    ],
)
def test_bad_text_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(MalformedError, match=message):
        PublicIdentity.from_text(text)


def test_signatures_are_domain_separated() -> None:
    me = identity("signer")
    signature = me.sign("envelope/ping", b"data")
    me.public.verify("envelope/ping", b"data", signature)
    with pytest.raises(BadSignatureError):
        me.public.verify("envelope/pong", b"data", signature)
    with pytest.raises(BadSignatureError):
        me.public.verify("envelope/ping", b"datA", signature)
    with pytest.raises(BadSignatureError):
        identity("other").public.verify("envelope/ping", b"data", signature)


@given(st.binary(max_size=3000), st.integers(0, 63))
def test_signatures_are_plain_ed25519_over_the_domain_message(data: bytes, flip: int) -> None:
    """libsodium is called without PyNaCl's bindings: what it signs and accepts is still
    exactly Ed25519 over ``domain_message`` (PyNaCl's own verify agrees), for data given
    as bytes or as a memoryview, and a signature with any bit changed is refused."""
    me = identity("signer")
    signature = me.sign("document/report", data)
    nacl.signing.VerifyKey(me.public.key).verify(domain_message("document/report", data), signature)
    me.public.verify("document/report", data, signature)
    me.public.verify("document/report", memoryview(data), signature)
    forged = bytearray(signature)
    forged[flip] ^= 0x01
    with pytest.raises(nacl.exceptions.BadSignatureError):
        nacl.signing.VerifyKey(me.public.key).verify(
            domain_message("document/report", data), bytes(forged)
        )
    with pytest.raises(BadSignatureError):
        me.public.verify("document/report", data, bytes(forged))


def test_x25519_keys_derived_from_the_identity_agree() -> None:
    a, b = identity("a"), identity("b")
    box_ab = nacl.public.Box(a.x25519(), b.public.x25519())
    box_ba = nacl.public.Box(b.x25519(), a.public.x25519())
    assert box_ab.shared_key() == box_ba.shared_key()


def test_an_id_from_a_header_field_is_the_same_id() -> None:
    key = bytes(range(32))
    fast = PublicIdentity.from_key_field(key)
    assert fast == PublicIdentity(key)
    assert hash(fast) == hash(PublicIdentity(key))
    assert fast.text == PublicIdentity(key).text
    with pytest.raises(MalformedError, match="exactly 32 bytes"):
        PublicIdentity.from_key_field(key[:31])
