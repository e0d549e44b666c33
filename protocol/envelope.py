"""Envelopes: every message between nodes, signed over the exact bytes carried.

Layout (SPEC.md section 4), all integers big-endian::

    0    4  magic "TSFE"
    4    1  version (1)
    5    1  kind code
    6    1  flags: bit 0 = payload encrypted to the recipient; other bits zero
    7    1  reserved, zero
    8   32  sender id (Ed25519 public key)
    40  32  recipient id (all zero: none, only for kinds that are not encrypted)
    72   8  timestamp, milliseconds since the Unix epoch
    80  24  nonce
    104  4  payload length n
    108  n  payload (msgpack map, or its crypto_box ciphertext)
    108+n 64 Ed25519 signature over "tsf/1/envelope/<kind>" 0x00 bytes[0:108+n]

Decoding checks the layout and the limits, then the signature, and only then parses the
payload. Encrypted payloads use crypto_box (X25519 of sender and recipient,
XSalsa20-Poly1305) with the envelope nonce, so only the named sender could have made
them and only the recipient can read them.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

import nacl.exceptions
import nacl.public

from protocol.codec import pack, unpack
from protocol.errors import (
    IntegrityError,
    LocalProtocolError,
    MalformedError,
    TooLargeError,
    UnknownSignerError,
)
from protocol.frames import check_size, kind_of
from protocol.identity import SIGNATURE_SIZE, Identity, PublicIdentity, Rng
from protocol.kinds import KINDS_BY_CODE, KINDS_BY_NAME, EnvelopeKind
from protocol.replay import ReplayWindow

MAGIC = b"TSFE"
VERSION = 1
NONCE_SIZE = 24
NO_RECIPIENT = bytes(32)
_HEADER = struct.Struct(">4sBBBB32s32sQ24sI")
HEADER_SIZE = _HEADER.size  # 108
MAX_ENVELOPE_SIZE = HEADER_SIZE + 4 * 1024 * 1024 + SIGNATURE_SIZE
FLAG_ENCRYPTED = 0x01
BOX_OVERHEAD = 16


class Envelope(NamedTuple):
    """A verified, decrypted and parsed envelope. (A NamedTuple rather than a frozen
    dataclass: as immutable, and cheaper to build on the hot receive path.)"""

    kind: str
    sender: PublicIdentity
    recipient: PublicIdentity | None
    timestamp: int
    nonce: bytes
    body: dict[str, Any]


_TAGS = {kind.code: f"envelope/{kind.name}" for kind in KINDS_BY_CODE.values()}


def encode_envelope(
    *,
    kind: str,
    sender: Identity,
    recipient: PublicIdentity | None,
    body: dict[str, Any],
    now: int,
    rng: Rng,
) -> bytes:
    """Sign (and, for confidential kinds, encrypt) ``body`` as an envelope of ``kind``."""
    spec = KINDS_BY_NAME.get(kind)
    if spec is None:
        raise LocalProtocolError(f"unknown envelope kind {kind!r}")
    try:
        spec.check_body(body)
    except MalformedError as exc:
        raise LocalProtocolError(str(exc)) from exc
    nonce = rng(NONCE_SIZE)
    payload = pack(body)
    flags = 0
    if spec.encrypted:
        if recipient is None:
            raise LocalProtocolError(f"{kind} envelopes are encrypted and need a recipient")
        box = nacl.public.Box(sender.x25519(), recipient.x25519())
        payload = box.encrypt(payload, nonce).ciphertext
        flags |= FLAG_ENCRYPTED
    if len(payload) > spec.max_payload:
        raise LocalProtocolError(f"{kind} payload of {len(payload)} bytes exceeds its limit")
    if not 0 <= now < 2**64:
        raise LocalProtocolError("timestamp out of range")
    header = _HEADER.pack(
        MAGIC,
        VERSION,
        spec.code,
        flags,
        0,
        sender.public.key,
        recipient.key if recipient else NO_RECIPIENT,
        now,
        nonce,
        len(payload),
    )
    signed = header + payload
    return signed + sender.sign(_TAGS[spec.code], signed)


class SignedEnvelope(NamedTuple):
    """An envelope whose layout and signature are checked, its payload not yet parsed.

    ``peek_envelope`` returns it so that the caller can check freshness and replay (and
    who the sender is) before spending work on decryption and parsing."""

    kind: EnvelopeKind
    sender: PublicIdentity
    recipient: PublicIdentity | None
    timestamp: int
    nonce: bytes
    encrypted: bool
    payload: bytes


def peek_envelope(data: bytes, *, max_size: int | None = None) -> SignedEnvelope:
    """Check layout, limits and signature of ``data``; parse nothing of the payload."""
    check_size(data, MAX_ENVELOPE_SIZE if max_size is None else max_size, HEADER_SIZE, "envelope")
    magic, version, code, flags, reserved, sender, recipient, ts, nonce, n = _HEADER.unpack_from(
        data
    )
    spec = kind_of(KINDS_BY_CODE, (magic, version, code), (MAGIC, VERSION), "envelope")
    if reserved != 0 or flags & ~FLAG_ENCRYPTED:
        raise MalformedError("reserved envelope bits are set")
    encrypted = bool(flags & FLAG_ENCRYPTED)
    if encrypted != spec.encrypted:
        must = "must" if spec.encrypted else "must not"
        raise MalformedError(f"{spec.name} envelopes {must} be encrypted")
    if n > spec.max_payload:
        raise TooLargeError(f"{spec.name} payload of {n} bytes exceeds {spec.max_payload}")
    if len(data) != HEADER_SIZE + n + SIGNATURE_SIZE:
        raise MalformedError("envelope length does not match its payload length field")
    if encrypted and recipient == NO_RECIPIENT:
        raise MalformedError("an encrypted envelope must name its recipient")
    sender_id = PublicIdentity.from_key_field(sender)
    signed_end = HEADER_SIZE + n
    sender_id.verify(_TAGS[spec.code], memoryview(data)[:signed_end], data[signed_end:])
    # tuple.__new__ is what a NamedTuple's __new__ does, without its Python frame.
    return tuple.__new__(
        SignedEnvelope,
        (
            spec,
            sender_id,
            None if recipient == NO_RECIPIENT else PublicIdentity.from_key_field(recipient),
            ts,
            nonce,
            encrypted,
            data[HEADER_SIZE:signed_end],
        ),
    )


def open_envelope(signed: SignedEnvelope, *, recipient: Identity | None) -> Envelope:
    """Decrypt (when needed) and parse the payload of an envelope checked by peek."""
    payload = signed.payload
    if signed.encrypted:
        if recipient is None or signed.recipient != recipient.public:
            raise UnknownSignerError("this envelope is addressed to another node")
        if len(payload) < BOX_OVERHEAD:
            raise MalformedError("encrypted payload shorter than its tag")
        box = nacl.public.Box(recipient.x25519(), signed.sender.x25519())
        try:
            payload = box.decrypt(payload, signed.nonce)
        except nacl.exceptions.CryptoError as exc:
            raise IntegrityError("encrypted payload does not open") from exc
    kind = signed.kind
    body = kind.check_body(unpack(payload, max_size=kind.max_payload))
    return tuple.__new__(  # as in peek_envelope
        Envelope,
        (kind.name, signed.sender, signed.recipient, signed.timestamp, signed.nonce, body),
    )


def decode_envelope(
    data: bytes,
    *,
    recipient: Identity | None,
    replay: ReplayWindow | None,
    now: int,
) -> Envelope:
    """peek, then the replay window (when given), then open: the usual receive path."""
    signed = peek_envelope(data)
    if replay is not None:
        replay.check(signed.sender.key, signed.nonce, signed.timestamp, now)
    return open_envelope(signed, recipient=recipient)
