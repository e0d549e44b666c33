"""Sealing refuses a study whose flagged images nobody checked (no node process: the
CLI in this process on a node directory)."""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Callable
from pathlib import Path

import numpy
import pydicom
import pytest

from protocol.bundle import BundleOpener, BundleReader, FileData, Manifest
from protocol.identity import Identity
from tests.harness.data import PYDICOM_FILES
from tests.harness.nodes import tsfnode
from tests.harness.studies import ct_series
from tests.tsfnode.transfers.conftest import import_study
from tsfnode.intake.journey import SUFFIX, journey_path
from tsfnode.intake.review import ReviewBook
from tsfnode.keyfile import read_key
from tsfnode.store.blobs import BlobStore
from tsfnode.transfers.sealing import TransportPool, seal_study

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_a_study_with_an_unchecked_image_is_not_sealed(node_dir: Path) -> None:
    study = import_study(node_dir, PYDICOM_FILES / "examples_rgb_color.dcm")
    reader = Identity.generate(secrets.token_bytes).public.text
    result = tsfnode("seal", node_dir, study, "--to", reader)
    assert result.returncode == 2
    assert "may show the patient's identity" in result.stderr
    assert not (node_dir / "blobs").exists() or not any((node_dir / "blobs").rglob("*"))


def _counter_rng() -> Callable[[int], bytes]:
    """The same bundle id and key for both sealings, so equal plaintexts give equal
    chunks."""
    state = {"n": 0}

    def rng(n: int) -> bytes:
        state["n"] += 1
        return hashlib.blake2b(state["n"].to_bytes(8, "big"), digest_size=n).digest()

    return rng


def _opened(manifest: Manifest, reader: Identity, blobs: BlobStore) -> dict[str, bytes]:
    """The bundle's files as the reader's node opens them."""
    opener = BundleOpener.for_recipient(manifest, reader)
    bundle = BundleReader()
    files: dict[str, bytearray] = {}
    for i in range(manifest.chunk_count):
        for event in bundle.feed(opener.open_chunk(i, blobs.get(manifest.chunk_hash(i)))):
            if isinstance(event, FileData):
                files.setdefault(event.name, bytearray()).extend(event.data)
    bundle.close()
    return {name: bytes(data) for name, data in files.items()}


def test_sealing_on_every_core_gives_the_bundle_sealing_on_one_gives(
    node_dir: Path, tmp_path: Path
) -> None:
    """A 12-slice CT (JPEG-LS), a structured report (no image codec: deflate) and a JPEG
    baseline image (already compressed: as stored), each sealed by worker processes and
    in the caller alone: the same plaintext (equal chunks under the same key), and at the
    reader every frame has the pixels of the intake's file."""
    folder = tmp_path / "ct"
    folder.mkdir()
    ct_series(folder, 12)
    reader = Identity.generate(secrets.token_bytes)
    sender = read_key(node_dir / "node.key")
    book = ReviewBook(node_dir / "intake")
    studies = []
    for source in (folder, PYDICOM_FILES / "test-SR.dcm", PYDICOM_FILES / "SC_rgb_jpeg_dcmtk.dcm"):
        before = set(book.studies())
        import_study(node_dir, source)
        (new,) = set(book.studies()) - before
        studies.append(new)
    for prepared in (node_dir / "intake").rglob(f"*{SUFFIX}"):
        prepared.unlink()  # encoded at sealing, as a study the listener took in
    parallel = TransportPool(workers=2)
    try:
        for study in studies:
            book.confirm(study, None, now_ms=1)
            sealed = {}
            for name, pool in (("serial", TransportPool(workers=1)), ("parallel", parallel)):
                blobs = BlobStore(tmp_path / f"blobs-{name}")
                result = seal_study(
                    intake=node_dir / "intake",
                    blobs=blobs,
                    scratch=tmp_path / "scratch",
                    sender=sender,
                    recipients=[reader.public],
                    study_uid=study,
                    case={"study_uid": study},
                    priority=0,
                    now=1_000_000,
                    rng=_counter_rng(),
                    pool=pool,
                )
                sealed[name] = (result.manifest, blobs)
            serial, in_parallel = sealed["serial"][0], sealed["parallel"][0]
            assert serial.document.body["chunk_hashes"] == in_parallel.document.body["chunk_hashes"]
            files = _opened(in_parallel, reader, sealed["parallel"][1])
            intake = sorted((node_dir / "intake" / study).glob("*/*.dcm"))
            assert len(files) == len(intake)
            for source in intake:
                got = pydicom.dcmread(io.BytesIO(files[f"{source.parent.name}/{source.name}"]))
                want = pydicom.dcmread(source)
                if "PixelData" in want:
                    assert numpy.array_equal(got.pixel_array, want.pixel_array), source.name
                else:
                    assert got == want
                assert got.SOPInstanceUID == want.SOPInstanceUID
        assert parallel.started == 1  # worker processes did the CT, once started
    finally:
        parallel.close()


def _seal(
    node_dir: Path, tmp_path: Path, study: str, to: Identity, pool: TransportPool
) -> Manifest:
    blobs = BlobStore(tmp_path / f"blobs-{secrets.token_hex(4)}")
    return seal_study(
        intake=node_dir / "intake", blobs=blobs, scratch=tmp_path / "scratch",
        sender=read_key(node_dir / "node.key"), recipients=[to.public], study_uid=study,
        case={"study_uid": study}, priority=0, now=1_000_000, rng=_counter_rng(), pool=pool,
    ).manifest  # fmt: skip


def test_an_imported_study_is_sealed_from_what_the_import_encoded_and_a_changed_file_again(
    node_dir: Path, tmp_path: Path
) -> None:
    """The CLI's import of a 12-slice CT encodes each instance for the journey as it goes
    (intake/journey.py): sealing it starts no worker and gives the bundle that encoding
    it at sealing gives; an intake file changed after the import (as masking does) is
    encoded again, and the reader gets its new pixels, not the import's."""
    folder = tmp_path / "ct"
    folder.mkdir()
    ct_series(folder, 12)
    study = import_study(node_dir, folder)
    ReviewBook(node_dir / "intake").confirm(study, None, now_ms=1)
    intake = sorted((node_dir / "intake" / study).glob("*/*.dcm"))
    assert all(journey_path(source).is_file() for source in intake)
    reader = Identity.generate(secrets.token_bytes)
    pool = TransportPool(workers=2)
    try:
        from_import = _seal(node_dir, tmp_path, study, reader, pool)
        assert pool.started == 0  # nothing encoded a second time
        for source in intake:
            journey_path(source).rename(source.with_name(source.name + ".kept"))
        encoded_now = _seal(node_dir, tmp_path, study, reader, TransportPool(workers=1))
        hashes = from_import.document.body["chunk_hashes"]
        assert hashes == encoded_now.document.body["chunk_hashes"]
        for source in intake:  # the import's encodings back, then one file changes
            source.with_name(source.name + ".kept").rename(journey_path(source))
        changed = pydicom.dcmread(intake[3])
        pixels = changed.pixel_array.copy()
        pixels[:40, :40] = pixels.min()
        changed.PixelData = pixels.tobytes()
        changed.save_as(intake[3], enforce_file_format=True)
        blobs_before = set((tmp_path).glob("blobs-*"))
        after = _seal(node_dir, tmp_path, study, reader, TransportPool(workers=1))
        (blobs,) = set(tmp_path.glob("blobs-*")) - blobs_before
        files = _opened(after, reader, BlobStore(blobs))
    finally:
        pool.close()
    for source in intake:
        got = pydicom.dcmread(io.BytesIO(files[f"{source.parent.name}/{source.name}"]))
        assert numpy.array_equal(got.pixel_array, pydicom.dcmread(source).pixel_array)
    assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"  # JPEG-LS lossless


def test_a_sealed_bundle_is_made_durable_once_whole_before_its_manifest_is_returned(
    node_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks are written without an fsync each, then flushed together (one syncfs on
    Linux) before sealing returns the manifest that gets them queued: every chunk the
    manifest lists is in that flush, already written."""
    from tsfnode.transfers import sealing

    flushed: list[list[Path]] = []

    def durable(paths: list[Path]) -> None:
        assert all(p.is_file() for p in paths)
        flushed.append(paths)

    monkeypatch.setattr(sealing, "make_durable", durable)
    folder = tmp_path / "ct"
    folder.mkdir()
    ct_series(folder, 6)
    study = import_study(node_dir, folder)
    ReviewBook(node_dir / "intake").confirm(study, None, now_ms=1)
    manifest = _seal(
        node_dir, tmp_path, study, Identity.generate(secrets.token_bytes), TransportPool(1)
    )
    (paths,) = flushed
    blobs = BlobStore(paths[0].parent.parent)
    assert sorted(paths) == sorted(
        blobs.path_of(manifest.chunk_hash(i)) for i in range(manifest.chunk_count)
    )
