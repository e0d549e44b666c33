"""Deterministic keys, clocks and randomness for protocol tests (no I/O anywhere)."""

from __future__ import annotations

import hashlib
import struct

from protocol.envelope import HEADER_SIZE, MAGIC, NO_RECIPIENT
from protocol.identity import Identity

NOW = 1_795_000_000_000  # a fixed "now", in ms


def identity(name: str) -> Identity:
    """The same identity for the same name, in every run."""
    return Identity(hashlib.sha256(name.encode()).digest())


class FixedRng:
    """Deterministic 'randomness': SHA-256 in counter mode over a label."""

    def __init__(self, label: str) -> None:
        self.label = label.encode()
        self.counter = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.label + struct.pack(">Q", self.counter)).digest()
            self.counter += 1
        return out[:n]


def raw_envelope(
    sender: Identity,
    *,
    code: int,
    payload: bytes,
    flags: int = 0,
    version: int = 1,
    recipient: bytes = NO_RECIPIENT,
    timestamp: int = NOW,
    nonce: bytes = bytes(24),
    kind_name: str = "ping",
    length: int | None = None,
) -> bytes:
    """An envelope with any header and payload, correctly signed: to test the parser
    behind the signature check."""
    header = struct.pack(
        ">4sBBBB32s32sQ24sI",
        MAGIC,
        version,
        code,
        flags,
        0,
        sender.public.key,
        recipient,
        timestamp,
        nonce,
        len(payload) if length is None else length,
    )
    assert len(header) == HEADER_SIZE
    signed = header + payload
    return signed + sender.sign(f"envelope/{kind_name}", signed)
