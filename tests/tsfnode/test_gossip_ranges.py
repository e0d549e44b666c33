"""Three real node processes on loopback (each behind its proxy) reconcile their
directories by ranges (SPEC.md §8.3.1): a record published at one reaches the others
without a full digest crossing, and a malformed range is refused with 400."""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from protocol.envelope import encode_envelope
from protocol.identity import PublicIdentity
from tests.harness.cluster import Cluster, directory_names
from tests.harness.nodes import get_json
from tests.harness.waiting import wait_for
from tsfnode.keyfile import read_key

pytestmark = pytest.mark.slow
N = 3


def stats(url: str) -> dict[str, int]:
    return dict(get_json(f"{url}/api/v1/peers")["stats"])


def sent(cluster: Cluster, kind: str) -> int:
    return sum(stats(cluster.url(i)).get(f"sent_{kind}", 0) for i in range(N))


def test_a_record_published_at_one_node_reaches_the_others_by_ranges(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.wait_until_everyone_knows_everyone()
    # each node record lists the capability, so the others answer its syns by ranges
    wait_for("gossip by ranges goes on", lambda: sent(cluster, "gossip_ranges") > 0)
    digests_before = sent(cluster, "gossip_digest")
    cluster.publish_group(1, "Imagerie de la femme")
    assert sent(cluster, "gossip_digest") == digests_before  # no full digest crossed
    received = sum(stats(cluster.url(i)).get("received_gossip_ranges", 0) for i in range(N))
    assert received > 0


def test_a_malformed_range_from_an_admitted_node_is_refused(cluster: Cluster) -> None:
    wait_for(
        "node 0 knows node 1",
        lambda: "Hôpital 1" in directory_names(cluster.url(0), "node"),
    )
    node1 = read_key(cluster.dirs[1] / "node.key")
    node0 = PublicIdentity.from_text(cluster.ids[0])
    bounds_out_of_order = [[b"\x02" * 8, 0, b""], [b"\x01" * 8, 0, b""]]
    envelope = encode_envelope(
        kind="gossip_ranges",
        sender=node1,
        recipient=node0,
        body={"round": 1, "ranges": bounds_out_of_order, "want": b"", "records": []},
        now=int(time.time() * 1000),
        rng=secrets.token_bytes,
    )
    request = urllib.request.Request(f"{cluster.url(0)}/peer/v1/envelope", data=envelope)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    refused.value.close()
    assert refused.value.code == 400
    assert stats(cluster.url(0)).get("bad_gossip_ranges") == 1
