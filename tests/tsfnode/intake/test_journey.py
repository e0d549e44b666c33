"""An import encodes what it writes for the journey meanwhile (intake/journey.py): only
an import of several files, and only for the bytes it was made from."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy
import pydicom
import pytest

from tests.harness.studies import ct_series
from tsfnode.intake.importer import importer_for
from tsfnode.intake.journey import DIGEST, PREPARE_FROM, journey_path, prepared

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_an_import_of_several_files_prepares_each_for_its_own_bytes_only(
    node_dir: Path, tmp_path: Path
) -> None:
    """A study of ``PREPARE_FROM - 1`` files is left to sealing (no worker started for
    it); one of six has every instance prepared: a lossless JPEG-LS of the intake file,
    offered only while the intake file holds the bytes it was made from."""
    few, many = tmp_path / "few", tmp_path / "many"
    few.mkdir()
    many.mkdir()
    ct_series(few, PREPARE_FROM - 1)
    ct_series(many, 6)
    intake = node_dir / "intake"
    for folder in (few, many):
        report = importer_for(node_dir, prepare=True).run([folder])
        assert len(report.taken) == len(list(folder.iterdir()))
    studies = {len(list(s.glob("*/*.dcm"))): s for s in intake.iterdir() if s.is_dir()}
    assert not list(studies[PREPARE_FROM - 1].rglob("*.journey"))
    sources = sorted(studies[6].glob("*/*.dcm"))
    for source in sources:
        found = prepared(source, source.read_bytes())
        assert found == (journey_path(source), DIGEST)
        encoded = pydicom.dcmread(io.BytesIO(journey_path(source).read_bytes()[DIGEST:]))
        assert encoded.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"
        assert numpy.array_equal(encoded.pixel_array, pydicom.dcmread(source).pixel_array)
    changed = bytearray(sources[0].read_bytes())
    changed[-1] ^= 1  # one pixel's bit, as a mask would change many
    assert prepared(sources[0], bytes(changed)) is None
    assert prepared(tmp_path / "nothing.dcm", b"") is None


def test_the_encoding_workers_come_from_a_fork_server_not_from_the_importer(
    tmp_path: Path,
) -> None:
    """The import's (and sealing's) worker processes are forked from a fork server
    started fresh, which imported the encoder once (pydicom): none is a child of the
    importing process (spawned, each imported pydicom again, half a second of a core
    each, and the caller's ``__main__`` with it), and they encode."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    from tsfnode.intake.journey import prepare, worker_context

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this system: workers are spawned")
    (source,) = ct_series(tmp_path, 1)
    with ProcessPoolExecutor(2, mp_context=worker_context()) as pool:
        parents = {pool.submit(os.getppid).result() for _ in range(4)}
        assert pool.submit(prepare, source).result()
    assert os.getpid() not in parents
    assert prepared(source, source.read_bytes()) == (journey_path(source), DIGEST)


def test_tsfnode_import_of_many_files_starts_the_fork_server_before_its_workers() -> None:
    """`tsfnode import` starts the workers' fork server as soon as it has counted its
    files (their imports beside the importer's own), only for an import that will have
    workers: ``PREPARE_FROM`` files or more, two cores or more."""
    import multiprocessing
    from multiprocessing import forkserver

    from tsfnode.intake.journey import start_workers_early

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this system: workers are spawned")
    assert not start_workers_early(PREPARE_FROM - 1)
    if (os.cpu_count() or 1) < 2:
        assert not start_workers_early(PREPARE_FROM)
        return
    assert start_workers_early(PREPARE_FROM)
    server = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    assert server is not None
    os.kill(server, 0)  # running (raises if not)
