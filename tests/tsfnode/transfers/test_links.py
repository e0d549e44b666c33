"""Bad links and full disks: a slow link that breaks every few seconds, a link cut before
a window of chunks can cross, a recipient's disk that fills up."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.cluster import Cluster, configure
from tests.harness.data import pydicom_data_folder
from tests.harness.mounts import small_tmpfs
from tests.harness.nodes import tsfnode
from tests.harness.waiting import wait_for
from tests.tsfnode.transfers.conftest import (
    SMALLER_RADIOGRAPH,
    acknowledged_puts,
    delivered,
    expected_files,
    paced,
    received_files,
    seal_all,
    sealed_radiograph,
    state_of,
    transfers,
)

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)  # a link paced in real time: slower when the machine is busy
def test_a_slow_link_that_breaks_every_few_seconds_still_delivers(pair: Cluster) -> None:
    sender, reader = pair.dirs
    # 849 KB on the wire (13 chunks): more than 2 s of this link even if it never broke,
    # so no attempt can carry it all between two cuts; with the chunks in flight lost at
    # each cut and the pause before each resumption it crosses four to six cuts. (The 4.2
    # MB radiograph crossed about 26, 55 s of the suite, and showed nothing more.)
    study, bundle = sealed_radiograph(pair, SMALLER_RADIOGRAPH)
    proxy = paced(pair, 400_000, 0.05, 2.0)  # about 3 Mbit/s
    configure(reader, log={"level": "debug"})  # each chunk PUT acknowledged: acknowledged_puts
    pair.start()
    out = delivered(pair, bundle, "the delivery through a breaking link")
    assert proxy.cuts >= 2
    assert out["attempts"] >= 2  # cut connections ended attempts, the next resumed
    assert received_files(reader, bundle) == expected_files(sender / "intake" / study)
    # A cut can lose the answer to a PUT the reader completed: only such chunks, in
    # flight at a cut (at most a window of them per cut), may cross twice.
    puts = acknowledged_puts(reader.parent / "node1.log")
    again = sum(n - 1 for n in puts.values())
    assert again <= 4 * proxy.cuts, puts


@pytest.mark.timeout(300)  # a link paced in real time: slower when the machine is busy
def test_a_link_cut_before_a_window_of_chunks_can_cross_still_delivers(
    pair: Cluster,
) -> None:
    """1 Mbit/s cut every 2 s: four 64 KiB chunks side by side need 2.1 s, so an attempt
    that keeps the first window never finishes a chunk; the next attempts halve it."""
    sender, reader = pair.dirs
    # The files of one study of pydicom-data (four ultrasound stills, three once imported),
    # not the whole folder: the smallest of its studies between 300 KB and 1 MB on the
    # link, the one this test always took from the whole folder.
    ultrasound = sorted(pydicom_data_folder().glob("US1_*.dcm"))
    result = tsfnode("import", *ultrasound, "--node", sender, "--quiet")
    assert result.returncode == 0, result.stderr
    journey = {  # bytes each study takes on the link
        study.name: sum(len(b) for b in expected_files(study).values())
        for study in (sender / "intake").iterdir()
        if study.is_dir()
    }
    study = min((n, s) for s, n in journey.items() if 300_000 <= n <= 1_000_000)[1]
    (bundle,) = seal_all(sender, pair.ids[1], 1, studies=[study])
    paced(pair, 125_000, 0.02, 2.0)  # 1 Mbit/s
    pair.start()
    out = delivered(pair, bundle, "the delivery through a link cut every 2 s")
    assert out["size"] > 4 * 65536  # more than a first window
    assert out["attempts"] >= 2
    assert received_files(reader, bundle) == expected_files(sender / "intake" / study)


@pytest.fixture
def small_disk(pair: Cluster) -> Iterator[Path]:
    """The reader's chunk files on a 1 MB tmpfs."""
    with small_tmpfs(pair.dirs[1] / "chunks", "1m") as where:
        try:
            yield where
        finally:
            pair.close()  # the node lets go of the mount before it goes


def test_a_full_disk_pauses_the_transfer_and_it_resumes_when_space_is_back(
    pair: Cluster, small_disk: Path
) -> None:
    sender, reader = pair.dirs
    study, bundle = sealed_radiograph(pair)
    pair.start()
    wait_for(
        "the sender says the recipient's disk is full",
        lambda: any(
            "disk is full" in t["last_error"]
            for t in transfers(pair.url(0))
            if t["bundle_id"] == bundle
        ),
        timeout=60,
    )
    (inbound,) = [t for t in transfers(pair.url(1)) if t["bundle_id"] == bundle]
    assert inbound["last_error"] == "disk full: paused"
    assert 0 < inbound["bytes_done"] < inbound["size"]
    # Nothing is lost at the sender: its chunks are all there, and it keeps trying
    # (waiting for its next attempt, or in one: the two alternate with the backoff).
    assert state_of(pair.url(0), bundle, "out") in ("pending", "sending")
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    wait_for(
        "the transfer resumes and completes",
        lambda: state_of(pair.url(0), bundle, "out") == "delivered",
        timeout=90,
    )
    assert received_files(reader, bundle) == expected_files(sender / "intake" / study)
