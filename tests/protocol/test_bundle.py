from __future__ import annotations

import random
import struct

import msgpack
import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.bundle import (
    CHUNK_AAD,
    BundleHeader,
    BundleOpener,
    BundleReader,
    BundleSealer,
    FileData,
    FileEnd,
    Manifest,
    choose_chunk_size,
    chunk_nonce,
    encode_plaintext_header,
)
from protocol.documents import MIN_CHUNK_SIZE, digest, encode_document
from protocol.errors import (
    BadSignatureError,
    ExpiredError,
    IntegrityError,
    LocalProtocolError,
    MalformedError,
    UnknownSignerError,
)
from tests.protocol.helpers import NOW, FixedRng, identity

SENDER, READER, GROUP, EVE = (identity(n) for n in ("cotonou", "erasme", "dakar", "eve"))
KiB = 1024
DAY = 86_400_000


def seal(
    files: list[tuple[str, bytes]],
    *,
    chunk_size: int = MIN_CHUNK_SIZE,
    recipients: tuple = (READER,),  # type: ignore[type-arg]
    label: str = "b",
    piece: int = 10_000,
) -> tuple[list[bytes], bytes]:
    sealer = BundleSealer(
        sender=SENDER,
        recipients=[r.public for r in recipients],
        chunk_size=chunk_size,
        rng=FixedRng(label),
    )
    plaintext = encode_plaintext_header(
        {"modality": "CR", "urgency": "routine"}, [(n, len(d)) for n, d in files]
    ) + b"".join(d for _, d in files)
    chunks: list[bytes] = []
    for start in range(0, len(plaintext), piece):
        chunks += sealer.push(plaintext[start : start + piece])
    rest, manifest = sealer.finish(now=NOW, ttl=30 * DAY, priority=1)
    return chunks + rest, manifest


def read_all(chunks: list[bytes], manifest: bytes, who=READER, order=None):  # type: ignore[no-untyped-def]
    m = Manifest.decode(manifest, now=NOW)
    opener = BundleOpener.for_recipient(m, who)
    indices = order or range(len(chunks))
    plain = {i: opener.open_chunk(i, chunks[i]) for i in indices}
    reader = BundleReader()
    events = []
    for i in range(m.chunk_count):
        events += reader.feed(plain[i])
    header = reader.close()
    files: dict[str, bytes] = {}
    for event in events:
        if isinstance(event, FileData):
            files[event.name] = files.get(event.name, b"") + event.data
        elif isinstance(event, FileEnd):
            files.setdefault(event.name, b"")
    return header, files


FILES = [
    ("1.2.3/IM0001.dcm", random.Random(1).randbytes(200 * KiB)),
    ("1.2.3/empty.dcm", b""),
    ("photo.jpg", random.Random(2).randbytes(70 * KiB)),
]


def test_round_trip_in_order_and_in_any_order() -> None:
    chunks, manifest = seal(FILES)
    header, files = read_all(chunks, manifest)
    assert header == BundleHeader(
        case={"modality": "CR", "urgency": "routine"},
        files=[(n, len(d)) for n, d in FILES],
    )
    assert files == dict(FILES)
    shuffled = list(range(len(chunks)))
    random.Random(3).shuffle(shuffled)
    assert read_all(chunks, manifest, order=shuffled)[1] == dict(FILES)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 150 * KiB), max_size=4),
    piece=st.integers(1, 200 * KiB),
    chunk_size=st.sampled_from([64 * KiB, 128 * KiB]),
)
def test_round_trip_whatever_the_sizes(sizes: list[int], piece: int, chunk_size: int) -> None:
    files = [(f"f{i}.dcm", bytes([i]) * size) for i, size in enumerate(sizes)]
    chunks, manifest = seal(files, chunk_size=chunk_size, piece=piece)
    m = Manifest.decode(manifest)
    assert len(chunks) == m.chunk_count
    assert all(len(c) <= chunk_size + 16 for c in chunks)
    assert read_all(chunks, manifest)[1] == dict(files)


def test_every_recipient_opens_and_no_one_else() -> None:
    chunks, manifest = seal(FILES, recipients=(READER, GROUP))
    assert read_all(chunks, manifest, who=GROUP)[1] == dict(FILES)
    with pytest.raises(UnknownSignerError):
        read_all(chunks, manifest, who=EVE)


def test_a_relay_verifies_chunks_without_the_key() -> None:
    chunks, manifest = seal(FILES)
    m = Manifest.decode(manifest)
    for i, chunk in enumerate(chunks):
        m.verify_chunk(i, chunk)
    bad = bytearray(chunks[1])
    bad[10] ^= 1
    with pytest.raises(IntegrityError):
        m.verify_chunk(1, bytes(bad))


def test_reordered_chunks_are_detected() -> None:
    chunks, manifest = seal(FILES)
    opener = BundleOpener.for_recipient(Manifest.decode(manifest), READER)
    with pytest.raises(IntegrityError):
        opener.open_chunk(0, chunks[1])


def test_a_chunk_from_another_bundle_is_detected() -> None:
    _chunks, manifest = seal(FILES)
    other_chunks, _ = seal(FILES, label="other")
    opener = BundleOpener.for_recipient(Manifest.decode(manifest), READER)
    with pytest.raises(IntegrityError):
        opener.open_chunk(1, other_chunks[1])


def test_a_dropped_last_chunk_is_detected() -> None:
    chunks, manifest = seal(FILES)
    m = Manifest.decode(manifest)
    opener = BundleOpener.for_recipient(m, READER)
    reader = BundleReader()
    for i in range(len(chunks) - 1):
        reader.feed(opener.open_chunk(i, chunks[i]))
    with pytest.raises(MalformedError, match="ended inside a file"):
        reader.close()


def test_truncation_is_detected_even_when_the_manifest_lies() -> None:
    """A sender (or anyone with its key) signs a manifest that drops the last chunk:
    the new last chunk was sealed without the last-chunk flag, so it does not open."""
    chunks, manifest = seal(FILES)
    m = Manifest.decode(manifest)
    key = m.unwrap_key(READER)
    body = dict(m.document.body)
    kept = chunks[:-1]
    body.update(
        chunk_count=len(kept),
        plaintext_size=m.chunk_size * len(kept),
        chunk_hashes=b"".join(digest(c) for c in kept),
    )
    lying = Manifest.decode(encode_document("manifest", body, SENDER))
    opener = BundleOpener(lying, key)
    opener.open_chunk(0, kept[0])
    with pytest.raises(IntegrityError):
        opener.open_chunk(len(kept) - 1, kept[-1])


def test_a_substituted_chunk_with_a_valid_tag_is_detected() -> None:
    """Another recipient knows the bundle key and forges a chunk that decrypts: its hash
    is not the one the sender signed."""
    _chunks, manifest = seal(FILES, recipients=(READER, EVE))
    m = Manifest.decode(manifest)
    key = m.unwrap_key(EVE)
    forged = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        b"\x00" * MIN_CHUNK_SIZE, CHUNK_AAD, chunk_nonce(m.bundle_id, 1, False), key
    )
    with pytest.raises(IntegrityError, match="does not match the manifest"):
        BundleOpener.for_recipient(m, READER).open_chunk(1, forged)


def test_a_chunk_checked_on_arrival_is_not_hashed_again_and_damage_is_still_caught() -> None:
    """``checked=True``: the caller checked the chunk's hash as it arrived (the node does,
    in RunWriter); opening does not hash it again, and the AEAD tag still refuses a chunk
    damaged where it was held since, or put at another index."""
    chunks, manifest = seal(FILES)
    m = Manifest.decode(manifest)
    opener = BundleOpener.for_recipient(m, READER)
    assert [opener.open_chunk(i, c, checked=True) for i, c in enumerate(chunks)] == [
        opener.open_chunk(i, c) for i, c in enumerate(chunks)
    ]
    damaged = bytearray(chunks[1])
    damaged[100] ^= 1
    with pytest.raises(IntegrityError, match="chunk 1 does not decrypt"):
        opener.open_chunk(1, bytes(damaged), checked=True)
    with pytest.raises(IntegrityError):
        opener.open_chunk(0, chunks[1], checked=True)


@pytest.mark.parametrize("offset", [8, 44, 60, 100, -1, -70])
def test_a_flipped_manifest_is_rejected(offset: int) -> None:
    _, manifest = seal(FILES)
    corrupted = bytearray(manifest)
    corrupted[offset] ^= 0x10
    with pytest.raises((BadSignatureError, MalformedError)):
        Manifest.decode(bytes(corrupted))


def test_inconsistent_manifest_numbers_are_rejected() -> None:
    _chunks, manifest = seal(FILES)
    body = dict(Manifest.decode(manifest).document.body)
    body["plaintext_size"] += 10 * MIN_CHUNK_SIZE
    with pytest.raises(MalformedError, match="chunk_count"):
        Manifest.decode(encode_document("manifest", body, SENDER))


def test_expired_bundle_is_refused() -> None:
    _, manifest = seal(FILES)
    m = Manifest.decode(manifest)
    m.check_fresh(NOW)
    with pytest.raises(ExpiredError):
        m.check_fresh(NOW + 31 * DAY)


@pytest.mark.parametrize("name", ["../etc/passwd", "/abs", "a//b", "a\\b", "ok/../x", ""])
def test_unsafe_file_names_are_refused(name: str) -> None:
    with pytest.raises(LocalProtocolError):
        encode_plaintext_header({}, [(name, 1)])


def test_unsafe_file_names_from_a_bundle_are_refused_on_reading() -> None:
    body = msgpack.packb({"case": {}, "files": [["../../.bashrc", 3]]})
    with pytest.raises(MalformedError, match="unsafe file name"):
        BundleReader().feed(struct.pack(">I", len(body)) + body + b"abc")


def test_bytes_after_the_last_file_are_refused() -> None:
    plaintext = encode_plaintext_header({}, [("a", 2)]) + b"abX"
    with pytest.raises(MalformedError, match="after its last file"):
        BundleReader().feed(plaintext)


def test_chunk_size_grows_with_the_study() -> None:
    assert choose_chunk_size(15 * 1024 * KiB) == 64 * KiB  # a chest film
    assert choose_chunk_size(260 * 1024 * KiB) == 128 * KiB  # a thin-slice CT
    assert choose_chunk_size(2048 * 1024 * KiB) == 512 * KiB
    assert choose_chunk_size(64 * 1024 * 1024 * KiB) == 1024 * KiB


def test_sealer_misuse_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        BundleSealer(sender=SENDER, recipients=[], chunk_size=MIN_CHUNK_SIZE, rng=FixedRng("x"))
    with pytest.raises(LocalProtocolError):
        BundleSealer(sender=SENDER, recipients=[READER.public], chunk_size=1000, rng=FixedRng("x"))
    sealer = BundleSealer(
        sender=SENDER, recipients=[READER.public], chunk_size=MIN_CHUNK_SIZE, rng=FixedRng("x")
    )
    sealer.finish(now=NOW, ttl=DAY)
    with pytest.raises(LocalProtocolError):
        sealer.push(b"late")


def test_an_rng_giving_short_keys_is_a_local_error_before_any_encryption() -> None:
    """Chunks are encrypted by libsodium directly (no binding checks the lengths): a key
    or bundle id of the wrong length is refused before it could reach it."""
    with pytest.raises(LocalProtocolError, match="wrong length"):
        BundleSealer(
            sender=SENDER,
            recipients=[READER.public],
            chunk_size=MIN_CHUNK_SIZE,
            rng=lambda n: bytes(n - 1),
        )


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_chunks_are_plain_xchacha20_poly1305_whatever_the_pieces_type(kind: type) -> None:
    """Each chunk is the standard AEAD of its plaintext (PyNaCl's binding opens it), made
    into a bytes object of its own: one returned earlier is not changed by later ones."""
    plaintext = random.Random(3).randbytes(3 * MIN_CHUNK_SIZE + 5000)
    sealer = BundleSealer(
        sender=SENDER, recipients=[READER.public], chunk_size=MIN_CHUNK_SIZE, rng=FixedRng("t")
    )
    chunks: list[bytes] = []
    kept: list[bytes] = []
    for start in range(0, len(plaintext), 50_000):
        for chunk in sealer.push(kind(plaintext[start : start + 50_000])):
            assert type(chunk) is bytes
            chunks.append(chunk)
            kept.append(bytes(bytearray(chunk)))  # a copy made when it was returned
    rest, manifest = sealer.finish(now=NOW, ttl=DAY)
    chunks += rest
    assert chunks[: len(kept)] == kept
    m = Manifest.decode(manifest)
    key = m.unwrap_key(READER)
    opened = b"".join(
        nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            c, CHUNK_AAD, chunk_nonce(m.bundle_id, i, i == len(chunks) - 1), key
        )
        for i, c in enumerate(chunks)
    )
    assert opened == plaintext
    opener = BundleOpener.for_recipient(m, READER)
    assert b"".join(opener.open_chunk(i, c) for i, c in enumerate(chunks)) == plaintext


def test_empty_bundle_has_one_empty_chunk() -> None:
    sealer = BundleSealer(
        sender=SENDER, recipients=[READER.public], chunk_size=MIN_CHUNK_SIZE, rng=FixedRng("e")
    )
    chunks, manifest = sealer.finish(now=NOW, ttl=DAY)
    m = Manifest.decode(manifest)
    assert m.chunk_count == 1
    assert BundleOpener.for_recipient(m, READER).open_chunk(0, chunks[0]) == b""
