"""Sealing and opening bundles: throughput against raw libsodium, and peak memory."""

from __future__ import annotations

import secrets
import subprocess
import sys

import nacl.bindings

from bench.result import Result, interleaved
from protocol.bundle import BundleOpener, BundleSealer, Manifest
from protocol.identity import Identity

MiB = 1024 * 1024


def seal_open_throughput(*, quick: bool = False) -> Result:
    total = (16 if quick else 256) * MiB
    chunk = 1 * MiB
    piece = secrets.token_bytes(chunk)
    sender = Identity.generate(secrets.token_bytes)
    recipient = Identity.generate(secrets.token_bytes)

    def ours() -> None:
        sealer = BundleSealer(
            sender=sender, recipients=[recipient.public], chunk_size=chunk, rng=secrets.token_bytes
        )
        chunks: list[bytes] = []
        for _ in range(total // chunk):
            chunks.extend(sealer.push(piece))
        rest, manifest = sealer.finish(now=1_800_000_000_000, ttl=86_400_000)
        chunks.extend(rest)
        opener = BundleOpener.for_recipient(Manifest.decode(manifest), recipient)
        for index, ciphertext in enumerate(chunks):
            opener.open_chunk(index, ciphertext)

    key = secrets.token_bytes(32)
    nonces = [secrets.token_bytes(24) for _ in range(total // chunk)]

    def raw() -> None:
        encrypt = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt
        decrypt = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt
        chunks = [encrypt(piece, b"", nonce, key) for nonce in nonces]
        for nonce, ciphertext in zip(nonces, chunks, strict=True):
            decrypt(ciphertext, b"", nonce, key)

    t_ours, t_raw = interleaved(2 if quick else 3, ours, raw)
    return Result(
        name="bundle_seal_open_throughput",
        value=total / MiB / t_ours,
        unit="MiB/s",
        baseline="raw libsodium XChaCha20-Poly1305 encrypt + decrypt, same bytes, 1 MiB chunks",
        baseline_value=total / MiB / t_raw,
        higher_is_better=True,
        target="ratio >= 0.8 (256 MiB bundle)",
    )


_MEMORY_CHILD = """
import secrets, sys
from protocol.bundle import BundleSealer, choose_chunk_size, encode_plaintext_header
from protocol.identity import Identity
total = int(sys.argv[1])
sender = Identity.generate(secrets.token_bytes)
recipient = Identity.generate(secrets.token_bytes)
piece = secrets.token_bytes(1 << 20)
def peak_kib():
    # VmHWM: this process's own peak RSS (unlike ru_maxrss, not inherited from the parent)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
before = peak_kib()
sealer = BundleSealer(sender=sender, recipients=[recipient.public],
                      chunk_size=choose_chunk_size(total), rng=secrets.token_bytes)
written = 0
for chunk in sealer.push(encode_plaintext_header({}, [("study.bin", total)])):
    written += len(chunk)
for _ in range(total // len(piece)):
    for chunk in sealer.push(piece):
        written += len(chunk)
rest, manifest = sealer.finish(now=1_800_000_000_000, ttl=86_400_000)
after = peak_kib()
print(before, after, written + sum(map(len, rest)), len(manifest))
"""


def seal_peak_memory(*, quick: bool = False) -> Result:
    total = (64 if quick else 2048) * MiB
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(total)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    before_kib, after_kib = int(out[0]), int(out[1])
    return Result(
        name="bundle_seal_peak_memory",
        value=after_kib / 1024,
        unit="MiB peak RSS",
        baseline="the same interpreter after imports, before sealing",
        baseline_value=before_kib / 1024,
        higher_is_better=False,
        target=f"< 100 MiB above the baseline while sealing {total // MiB} MiB",
    )


BENCHMARKS = {
    "bundle_seal_open_throughput": seal_open_throughput,
    "bundle_seal_peak_memory": seal_peak_memory,
}
