"""Issue 21: an admitted node listed another node as its relay without its consent, and
that node then held (and served, and spent its disk and uplink on) whatever was offered
for it. A node now holds mail for others only when its operator says so (`[relay]
enabled`, optionally `[relay] nodes`, the only nodes it holds mail for), and its directory
record says so (the `relay` capability). An offer to a node that does not consent is
refused with 403 and the reason, and senders deposit only at relays that consent.

Four real nodes: 0 sends; 1 is listed as a relay by the reader without its consent; 2 is
a relay that consents for the reader only; 3 the reader, who lists 1 and 2. The sender
lists 2 as its own relay, which 2 does not accept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.harness.cluster import Cluster, configure
from tests.harness.nodes import get_json
from tests.harness.waiting import wait_for
from tests.tsfnode.transfers.conftest import (
    CT,
    QUICK,
    _sealed_from,
    import_study,
    met,
    post,
    seal,
    transfers,
)

pytestmark = pytest.mark.slow


def _relay_copies(directory: Path) -> list[bytes]:
    with sqlite3.connect(f"file:{directory / 'node.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT bundle_id FROM bundles WHERE role = 'relay'").fetchall()
    return [bytes(b) for (b,) in rows]


def test_a_node_relays_only_with_its_consent(tmp_path: Path, anchor_key: Path) -> None:
    c = Cluster(tmp_path, anchor_key, 4, **QUICK)
    try:
        sender, unwilling, relay, reader = c.dirs
        configure(relay, relay={"enabled": True, "nodes": [c.ids[3]]})
        configure(reader, transfer={"relays": [c.ids[1], c.ids[2]]})  # 1 did not agree
        configure(sender, transfer={"relays": [c.ids[2]]})  # 2 does not hold mail for 0
        study = import_study(sender, CT)
        c.start()
        met(c)

        def consents(i: int) -> bool:
            """Whether node ``i`` says it relays, as node 0's directory lists it."""
            nodes = get_json(f"{c.url(0)}/api/v1/directory?kind=node")
            (node,) = [n for n in nodes if n["id"] == c.ids[i]]
            return bool(node["details"]["relay"])

        wait_for("the relay's consent is in the directory", lambda: consents(2))
        assert not consents(1)

        # The attack as it was made: an offer to a node listed without its consent.
        raw, _ = _sealed_from(sender, c.ids[3], 100_000)
        assert post(f"{c.url(1)}/peer/v1/bundles", raw) == (
            403,
            "this node is not a relay: its operator has not enabled [relay]"
            " (the recipient lists it without its consent)",
        )
        assert _relay_copies(unwilling) == []
        # The consenting relay takes it, for the reader; not for a node it did not agree to.
        assert post(f"{c.url(2)}/peer/v1/bundles", raw) == (200, "")
        raw, _ = _sealed_from(reader, c.ids[0], 100_000)
        assert post(f"{c.url(2)}/peer/v1/bundles", raw) == (
            403,
            "this relay does not hold mail for that recipient ([relay] nodes)",
        )

        # The sender deposits only at the relay that consents.
        c.stop_node(3)
        bundle = seal(sender, study, c.ids[3])
        wait_for(
            "the bundle is deposited at the consenting relay",
            lambda: any(
                t["bundle_id"] == bundle and t["state"] == "deposited" for t in transfers(c.url(0))
            ),
            timeout=90,
        )
        assert bytes.fromhex(bundle) in _relay_copies(relay)
        assert _relay_copies(unwilling) == []
    finally:
        c.close()
