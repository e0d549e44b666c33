"""Nodes killed with SIGKILL at random moments in the middle of twenty transfers: nothing
is lost, no acknowledged chunk crosses twice."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from tests.harness.cluster import Cluster, configure
from tests.harness.data import pydicom_data_folder
from tests.harness.nodes import tsfnode
from tests.harness.waiting import wait_for
from tests.tsfnode.transfers.conftest import (
    acknowledged_puts,
    expected_files,
    received_files,
    seal_all,
    state_of,
    transfers,
)

pytestmark = pytest.mark.slow


@pytest.mark.timeout(400)
def test_kill_9_anywhere_in_20_transfers_loses_and_repeats_nothing(
    tmp_path: Path, anchor_key: Path
) -> None:
    limited = {
        # Waits between attempts capped at 2 s (a node's default: an hour): nine kills
        # fail attempts again and again, and a delivery's doubling wait reached 10 s (88 s
        # with kills closer together), the test waiting for it with nothing else to do.
        "transfer": {
            "poll_interval_ms": 500,
            "retry_base_ms": 200,
            "retry_cap_ms": 2_000,
            "upload_kbit_s": 12_000,
        },
        "log": {"level": "debug"},  # each chunk PUT acknowledged: acknowledged_puts
    }
    c = Cluster(tmp_path, anchor_key, 3, **limited)
    try:
        sender, relay, reader = c.dirs
        configure(c.dirs[1], relay={"enabled": True})
        configure(reader, transfer={"relays": [c.ids[1]]})
        result = tsfnode("import", pydicom_data_folder(), "--node", sender, "--quiet")
        assert result.returncode == 0, result.stderr
        bundles = seal_all(sender, c.ids[2], 20)
        assert len(bundles) == 20
        c.start()
        rng = random.Random(20261128)  # the same kill schedule in every run
        deadline = time.monotonic() + 240
        kills = 0
        # Up 0.5-1.5 s between kills (each restart takes about as long again), down
        # 0.2-2 s (the sender turns to the relay while the reader is down): the nine
        # kills land within the twenty transfers; with 1-3 s up, the last kills could
        # meet nodes with nothing left to send.
        while time.monotonic() < deadline and kills < 9:
            time.sleep(rng.uniform(0.5, 1.5))
            victim = kills % 3  # sender, relay, reader in turn, at random moments
            c.stop_node(victim, signal.SIGKILL)
            kills += 1
            time.sleep(rng.uniform(0.2, 2.0))
            c.start_node(victim)
        wait_for(
            "every bundle delivered and acknowledged",
            lambda: all(state_of(c.url(0), b, "out") == "delivered" for b in bundles),
            timeout=max(30, deadline - time.monotonic() + 60),
        )
        assert kills == 9
        out = [t for t in transfers(c.url(0)) if t["direction"] == "out"]
        # The kills landed mid-transfer (attempts failed) and some went through the relay.
        # A delivery's last route is not the evidence: an attempt through the relay that
        # a later kill cut is followed by a direct one. The relay's own log is.
        assert any(t["attempts"] > 1 for t in out)
        assert {t["route"] for t in out} <= {"direct", "relay"}
        assert acknowledged_puts(relay.parent / f"{relay.name}.log"), "the relay took no chunk"
        for bundle, study in bundles.items():
            assert state_of(c.url(2), bundle, "in") == "complete"
            assert received_files(reader, bundle) == expected_files(sender / "intake" / study)
        assert sorted(p.name for p in (reader / "received").iterdir()) == sorted(bundles)
        for node in (relay, reader):
            repeated = {
                k: n
                for k, n in acknowledged_puts(node.parent / f"{node.name}.log").items()
                if n > 1
            }
            assert not repeated, f"acknowledged chunks sent again to {node.name}: {repeated}"
    finally:
        c.close()
