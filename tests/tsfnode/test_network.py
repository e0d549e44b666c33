"""Real node processes on loopback gossip their directory: convergence, partitions and
their healing (through userspace proxies), revocation, failure detection, and discovery
by mDNS on 127.0.0.1."""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from protocol.directory import make_record
from protocol.envelope import encode_envelope
from protocol.identity import Identity
from tests.harness.cluster import (
    FAST,
    Cluster,
    add_records,
    configure,
    directory_names,
    node_id,
)
from tests.harness.nodes import RunningNode, get_json, tsfnode
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.slow
N = 8


def test_eight_nodes_converge_partition_heal_revoke_and_detect_failure(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.wait_until_everyone_knows_everyone()
    # A record published at one node reaches all.
    coordinator_id = cluster.publish_group(2, "Radiopédiatrie")

    # Partition into two halves: news on each side stays on that side, until healed.
    left, right = list(range(N // 2)), list(range(N // 2, N))
    cluster.partition(left, right)
    for origin, name in ((0, "Left group"), (N - 1, "Right group")):
        records = cluster.new_group(tmp_path, name, coordinator_id)
        add_records(cluster.dirs[origin], records)
    wait_for(
        "each half converges on its own news",
        lambda: (
            all("Left group" in directory_names(cluster.url(i), "group") for i in left)
            and all("Right group" in directory_names(cluster.url(i), "group") for i in right)
        ),
    )
    # Many gossip rounds later, nothing crossed the partition.
    gossiped = [gossip_sent(cluster.url(i)) for i in range(N)]
    wait_for(
        "every node gossips ten more times",
        lambda: all(gossip_sent(cluster.url(i)) >= gossiped[i] + 10 for i in range(N)),
    )
    assert all("Right group" not in directory_names(cluster.url(i), "group") for i in left)
    assert all("Left group" not in directory_names(cluster.url(i), "group") for i in right)
    cluster.heal()
    wanted = {"Radiopédiatrie", "Left group", "Right group"}
    wait_for(
        "the healed network converges",
        lambda: all(directory_names(cluster.url(i), "group") == wanted for i in range(N)),
    )

    # Revoke node 3: every node drops it and refuses its requests.
    revocation = tmp_path / "revoke3.tsfd"
    assert (
        tsfnode(
            "revoke",
            "--network",
            cluster.network_file,
            "--key",
            cluster.anchor_key,
            "--target",
            cluster.ids[3],
            "--reason",
            "left the network",
            "--out",
            revocation,
        ).returncode
        == 0
    )
    add_records(cluster.dirs[0], revocation)
    others = [i for i in range(N) if i != 3]
    wait_for(
        "node 3 is cut off everywhere",
        lambda: all("Hôpital 3" not in directory_names(cluster.url(i), "node") for i in others),
    )
    refused_before = get_json(f"{cluster.url(3)}/api/v1/peers")["stats"].get("refused_403", 0)
    wait_for(
        "node 3's requests are refused",
        lambda: (
            get_json(f"{cluster.url(3)}/api/v1/peers")["stats"].get("refused_403", 0)
            > refused_before
        ),
    )
    for i in others:
        listed = {p["id"] for p in get_json(f"{cluster.url(i)}/api/v1/peers")["peers"]}
        assert cluster.ids[3] not in listed

    # Node 5 stops (a power cut): the others see it suspect, then down.
    node5 = cluster.nodes[5]
    assert node5 is not None
    node5.stop()
    cluster.nodes[5] = None
    watchers = [i for i in range(N) if i not in (3, 5)]

    def status_of_5(i: int) -> str:
        peers = get_json(f"{cluster.url(i)}/api/v1/peers")["peers"]
        return next(p["status"] for p in peers if p["id"] == cluster.ids[5])

    wait_for("node 5 is seen down by all", lambda: all(status_of_5(i) == "down" for i in watchers))
    assert "down" in tsfnode("peers", cluster.dirs[0]).stdout


def gossip_sent(url: str) -> int:
    """How many gossip exchanges the node at ``url`` began and got an answer to."""
    return int(get_json(f"{url}/api/v1/peers")["stats"].get("sent_gossip_syn", 0))


@pytest.mark.usefixtures("lan")
def test_two_nodes_discover_each_other_by_mdns_on_loopback(tmp_path: Path) -> None:
    # A network of their own: nodes of other networks announcing on 127.0.0.1 (another
    # run's demo) are found too, but never admitted.
    network, key = tmp_path / "lan.toml", tmp_path / "lan-anchor.key"
    made = tsfnode(
        "network", "create", f"lan-{secrets.token_hex(4)}", "--anchor-key", key, "--out", network
    )
    assert made.returncode == 0, made.stderr
    dirs = [tmp_path / "a", tmp_path / "b"]
    for i, directory in enumerate(dirs):
        assert tsfnode("init", directory, "--name", f"LAN {i}", "--port", "0").returncode == 0
        configure(
            directory,
            node={"network": str(network)},
            discovery={"mdns": True, "mdns_interface": "127.0.0.1"},
            **FAST,
        )
        cert = tmp_path / f"cert{i}.tsfd"
        admitted = tsfnode(
            "admit", node_id(directory), "--network", network, "--key", key, "--out", cert
        )
        assert admitted.returncode == 0, admitted.stderr
        add_records(directory, cert)
    with RunningNode(dirs[0]) as a, RunningNode(dirs[1]) as b:
        wait_for(
            "each node finds the other on the LAN",
            lambda: (
                directory_names(a.url, "node") == {"LAN 0", "LAN 1"}
                and directory_names(b.url, "node") == {"LAN 0", "LAN 1"}
            ),
            timeout=30,
        )
        wait_for(
            "and sees it alive",
            lambda: get_json(f"{a.url}/api/v1/peers")["counts"].get("alive") == 1,
            timeout=30,
        )
    assert '"mdns found node"' in a.logs() or '"mdns found node"' in b.logs()


def test_unadmitted_node_is_refused(tmp_path: Path, anchor_key: Path) -> None:
    """A node without a certificate can neither publish records nor be heard."""
    member = tmp_path / "member"
    assert tsfnode("init", member, "--name", "Member", "--port", "0").returncode == 0
    configure(member, discovery={"mdns": False}, **FAST)
    cert = tmp_path / "cert.tsfd"
    assert (
        tsfnode(
            "admit", node_id(member), "--network", "demo", "--key", anchor_key, "--out", cert
        ).returncode
        == 0
    )
    add_records(member, cert)
    stranger = Identity.generate(secrets.token_bytes)
    now = int(time.time() * 1000)
    record = make_record(
        "node",
        {
            "name": "Stranger",
            "institution": "",
            "country": "XX",
            "addresses": [],
            "relays": [],
            "capabilities": [],
            "capacity": 0,
        },
        signer=stranger,
        network="demo",
        version=now,
        now=now,
        ttl=86_400_000,
    )
    with RunningNode(member) as node:
        assert get_json(f"{node.url}/api/v1/node")["admitted"] is True
        # Its records are ignored, and counted.
        request = urllib.request.Request(f"{node.url}/peer/v1/introduce", data=record)
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        info = get_json(f"{node.url}/api/v1/node")
        assert info["directory_ignored"] == {"unknown_signer": 1}
        assert "Stranger" not in directory_names(node.url, "node")
        # Its envelopes are refused.
        envelope = encode_envelope(
            kind="gossip_syn",
            sender=stranger,
            recipient=None,
            body={"root": bytes(32)},
            now=now,
            rng=secrets.token_bytes,
        )
        request = urllib.request.Request(f"{node.url}/peer/v1/envelope", data=envelope)
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(request, timeout=5)
