"""Issue 21, item 6: phantom relay bundles. An admitted node listed a relay without its
consent and offered manifests with sizes and no chunks: the relay's quota filled with
nothing on disk, honest offers then got 507, and after the offender's revocation its
rows kept the quota. Now the quota is spent by what the relay holds (manifests and the
chunks on disk), no sender holds more than a share of it, an offer that brings nothing
expires within minutes, and a revoked sender's copies are dropped.

Four real nodes on loopback: 0 an honest sender, 1 the relay, 2 a reader who lists the
relay, 3 the offender, who lists the relay for itself and offers it its own bundles."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from protocol.bundle import Manifest
from tests.harness.cluster import Cluster, add_records, configure
from tests.harness.nodes import get_json, tsfnode
from tests.harness.waiting import wait_for
from tests.tsfnode.transfers.conftest import QUICK, _sealed_from, post, put
from tsfnode.transfers.service import RELAY_OFFER_MS

pytestmark = pytest.mark.slow

QUOTA_MB = 4  # a sender's share: 1 MiB
PHANTOMS = 8


def _relay_rows(directory: Path) -> list[tuple[bytes, bytes, str, int, int]]:
    """(bundle, sender, state, created, expires) of the relay's copies, from its database."""
    with sqlite3.connect(f"file:{directory / 'node.db'}?mode=ro", uri=True) as db:
        return db.execute(
            "SELECT bundle_id, sender, state, created_ms, expires_ms FROM bundles"
            " WHERE role = 'relay'"
        ).fetchall()


def _push(relay: str, manifest: Manifest, chunks: list[bytes]) -> tuple[int, str]:
    at = f"{relay}/{manifest.bundle_id.hex()}"
    return put(f"{at}/chunks/0-{len(chunks) - 1}", b"".join(chunks))


def test_phantom_offers_neither_fill_a_relay_nor_outlive_their_sender(
    tmp_path: Path, anchor_key: Path
) -> None:
    c = Cluster(tmp_path, anchor_key, 4, **QUICK)
    try:
        configure(c.dirs[1], transfer={"relay_quota_mb": QUOTA_MB}, relay={"enabled": True})
        configure(c.dirs[2], transfer={"relays": [c.ids[1]]})
        configure(c.dirs[3], transfer={"relays": [c.ids[1]]})  # the relay holds mail for any node
        c.start()
        wait_for(
            "the relay knows every node and whom they list",
            lambda: len(get_json(f"{c.url(1)}/api/v1/directory?kind=node")) == 4,
        )
        relay = f"{c.url(1)}/peer/v1/bundles"
        # The offender announces 8 bundles of 900 kB (7.2 MB for a 4 MB relay), brings
        # no chunk: each costs the relay its manifest only.
        phantoms = [_sealed_from(c.dirs[3], c.ids[3], 900_000) for _ in range(PHANTOMS)]
        for raw, _ in phantoms:
            assert post(relay, raw) == (200, "")
        # An honest offer is taken, and its chunks held.
        raw, chunks = _sealed_from(c.dirs[0], c.ids[2], 500_000)
        assert post(relay, raw) == (200, "")
        assert _push(relay, Manifest.decode(raw), chunks) == (204, "")
        # The offender's chunks count against its share (1 MiB): one bundle fits, the
        # next is refused; the honest sender still has room.
        first, second = phantoms[0], phantoms[1]
        assert _push(relay, Manifest.decode(first[0]), first[1]) == (204, "")
        assert _push(relay, Manifest.decode(second[0]), second[1]) == (
            507,
            "this sender's share of this relay's quota is full",
        )
        raw, chunks = _sealed_from(c.dirs[0], c.ids[2], 300_000)
        assert post(relay, raw) == (200, "")
        assert _push(relay, Manifest.decode(raw), chunks) == (204, "")
        # An offer that brought nothing expires within minutes, not at the manifest's day.
        rows = _relay_rows(c.dirs[1])
        empty = [r for r in rows if r[0] == Manifest.decode(phantoms[2][0]).bundle_id]
        (_, _, state, created, expires) = empty[0]
        assert state == "holding"
        assert expires - created <= RELAY_OFFER_MS + 1000
        # The offender is revoked: the relay drops what it held, on disk too.
        revocation = tmp_path / "revoke3.tsfd"
        made = tsfnode(
            "revoke", "--network", c.network_file, "--key", c.anchor_key,
            "--target", c.ids[3], "--reason", "phantom bundles", "--out", revocation,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        add_records(c.dirs[1], revocation)
        mine = Manifest.decode(first[0]).sender.key
        wait_for(
            "the relay drops the revoked node's copies",
            lambda: all(r[2] != "holding" for r in _relay_rows(c.dirs[1]) if r[1] == mine),
        )
        assert not (c.dirs[1] / "chunks" / Manifest.decode(first[0]).bundle_id.hex()).exists()
        honest = [r for r in _relay_rows(c.dirs[1]) if r[1] != mine]
        assert len(honest) == 2
        assert all(r[2] in ("holding", "delivered") for r in honest)  # the reader may pull
    finally:
        c.close()
