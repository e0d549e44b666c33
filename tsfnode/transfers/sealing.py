"""Sealing a study from the intake into a bundle for its recipients' nodes.

Only a study whose flagged images were all confirmed or masked may be sealed (the
review gate, intake/review.py). Each file is compressed for the journey (lossless
JPEG-LS or deflate when smaller, intake/compress.py) into a scratch folder, so that the
bundle's header can list the sizes; then header and files stream through the sealer,
whose chunks go to the blob store under their BLAKE3 name (the hash the manifest lists).
Memory stays at about one file plus one chunk.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from protocol.bundle import BundleSealer, Manifest, choose_chunk_size, encode_plaintext_header
from protocol.identity import Identity, PublicIdentity
from tsfnode.errors import NodeError
from tsfnode.intake.review import ReviewBook
from tsfnode.store.blobs import BlobStore

DAY_MS = 86_400_000
BUNDLE_TTL_MS = 30 * DAY_MS
READ_PIECE = 1024 * 1024


DOCUMENTS_FILE = "documents.tsfd"


@dataclass(frozen=True)
class Sealed:
    manifest: Manifest
    files: int
    plaintext_bytes: int
    original_bytes: int


def _transport_bytes(path: Path) -> bytes:
    from pydicom import dcmread

    from tsfnode.intake.compress import encode_for_transport

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings may quote values
        return encode_for_transport(dcmread(path))


def seal_study(
    *,
    intake: Path,
    blobs: BlobStore,
    scratch: Path,
    sender: Identity,
    recipients: list[PublicIdentity],
    study_uid: str,
    case: dict[str, object],
    priority: int,
    now: int,
    rng: Callable[[int], bytes] = os.urandom,
    compress: bool = True,
    documents: bytes = b"",
) -> Sealed:
    """Seal ``study_uid`` for ``recipients``; NotReviewed (a NodeError) while a flagged
    image is unchecked. ``documents`` (signed documents, one after the other: the case's
    request) go first, as the file ``documents.tsfd``."""
    book = ReviewBook(intake)
    book.require_reviewed(study_uid)
    folder = book.study_folder(study_uid)
    sources = sorted(folder.glob("*/*.dcm"))
    if not sources:
        raise NodeError(f"study {study_uid} has no image in the intake")
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="seal-", dir=scratch))
    try:
        files: list[tuple[str, Path, int]] = []
        original = 0
        for source in sources:
            name = f"{source.parent.name}/{source.name}"
            original += source.stat().st_size
            if compress:
                target = work / f"{len(files)}.dcm"
                target.write_bytes(_transport_bytes(source))
            else:
                target = source
            files.append((name, target, target.stat().st_size))
        if documents:
            target = work / "documents.tsfd"
            target.write_bytes(documents)
            files.insert(0, (DOCUMENTS_FILE, target, len(documents)))
        header = encode_plaintext_header(case, [(n, size) for n, _, size in files])
        total = len(header) + sum(size for _, _, size in files)

        def pieces() -> Iterator[bytes]:
            yield header
            for _, path, _ in files:
                with open(path, "rb") as f:
                    while piece := f.read(READ_PIECE):
                        yield piece

        manifest = _seal(blobs, sender, recipients, total, pieces(), now, priority, rng)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Sealed(manifest, len(files), total, original)


def _seal(
    blobs: BlobStore,
    sender: Identity,
    recipients: list[PublicIdentity],
    total: int,
    pieces: Iterable[bytes],
    now: int,
    priority: int,
    rng: Callable[[int], bytes],
) -> Manifest:
    """Seal the plaintext given in ``pieces`` (``total`` bytes); chunks go to the blob
    store under their BLAKE3 name."""
    sealer = BundleSealer(
        sender=sender, recipients=recipients, chunk_size=choose_chunk_size(total), rng=rng
    )
    for piece in pieces:
        for chunk in sealer.push(piece):
            blobs.put(chunk)
    rest, manifest = sealer.finish(now=now, ttl=BUNDLE_TTL_MS, priority=priority)
    for chunk in rest:
        blobs.put(chunk)
    return Manifest.decode(manifest, now=now)


def seal_documents(
    *,
    blobs: BlobStore,
    sender: Identity,
    recipients: list[PublicIdentity],
    documents: bytes,
    case: dict[str, object],
    now: int,
    priority: int,
    rng: Callable[[int], bytes] = os.urandom,
) -> Manifest:
    """A small bundle of signed documents (a report, a message, case events...) for
    ``recipients``: header ``case`` and one file, ``documents.tsfd``."""
    header = encode_plaintext_header(case, [(DOCUMENTS_FILE, len(documents))])
    total = len(header) + len(documents)
    return _seal(blobs, sender, recipients, total, (header, documents), now, priority, rng)
