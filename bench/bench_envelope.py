"""Envelope sign + encode + decode + verify, against raw Ed25519 sign + verify."""

from __future__ import annotations

import itertools
import secrets

import nacl.signing

from bench.result import Result, interleaved
from protocol.envelope import decode_envelope, encode_envelope
from protocol.identity import Identity
from protocol.replay import ReplayWindow

PAYLOAD = 1024


def envelope_roundtrip(*, quick: bool = False) -> Result:
    n = 200 if quick else 5000
    sender = Identity.generate(secrets.token_bytes)
    document = secrets.token_bytes(PAYLOAD - 16)
    clock = itertools.count(1_800_000_000_000)

    def ours() -> None:
        window = ReplayWindow()
        for _ in range(n):
            now = next(clock)
            data = encode_envelope(
                kind="manifest",
                sender=sender,
                recipient=None,
                body={"document": document},
                now=now,
                rng=secrets.token_bytes,
            )
            decode_envelope(data, recipient=None, replay=window, now=now)

    key = nacl.signing.SigningKey(sender.seed)
    verify = key.verify_key
    message = secrets.token_bytes(PAYLOAD + 108)

    def raw() -> None:
        for _ in range(n):
            signed = key.sign(message)
            verify.verify(signed)

    t_ours, t_raw = interleaved(2 if quick else 5, ours, raw)
    return Result(
        name="envelope_roundtrip",
        value=n / t_ours,
        unit="envelopes/s",
        baseline="raw libsodium Ed25519 sign + verify of the same bytes",
        baseline_value=n / t_raw,
        higher_is_better=True,
        target=">= 10000 envelopes/s (1 KiB payload)",
    )


BENCHMARKS = {"envelope_roundtrip": envelope_roundtrip}
