"""SWIM/Lifeguard liveness of real engines in virtual time."""

from __future__ import annotations

from collections import Counter

from protocol.liveness import LivenessConfig
from simulations.network import LivenessNetwork
from tests.protocol.helpers import NOW, identity

PERIOD = LivenessConfig().probe_interval_ms
MINUTE = 60_000


def network(n: int, loss: float = 0.0, seed: int = 1) -> tuple[list[bytes], LivenessNetwork]:
    nodes = [identity(f"live-{i}").public.key for i in range(n)]
    return nodes, LivenessNetwork(nodes, start=NOW, loss=loss, seed=seed)


def test_a_crashed_node_is_seen_down_by_all_and_alive_again_when_back() -> None:
    nodes, net = network(12)
    net.loop.run_until(NOW + 3 * MINUTE)
    assert net.seen_as(nodes[5]) == {"alive": 11}
    net.crash(nodes[5])
    net.loop.run_until(
        net.loop.now + 30 * MINUTE, stop=lambda: net.seen_as(nodes[5]) == {"down": 11}
    )
    assert net.seen_as(nodes[5]) == {"down": 11}
    assert net.loop.now - (NOW + 3 * MINUTE) < 20 * MINUTE
    # Power comes back: the node answers probes and refutes; everyone sees it alive.
    net.recover(nodes[5])
    net.loop.run_until(
        net.loop.now + 30 * MINUTE, stop=lambda: net.seen_as(nodes[5]) == {"alive": 11}
    )
    assert net.seen_as(nodes[5]) == {"alive": 11}


def test_no_healthy_node_is_declared_down_under_loss() -> None:
    nodes, net = network(12, loss=0.05, seed=7)
    net.loop.run_until(NOW + 60 * MINUTE)
    for node in nodes:
        assert net.seen_as(node)["down"] == 0, net.seen_as(node)
    stats = sum((e.stats for e in net.liveness.values()), Counter())
    assert stats["probes_failed"] > 0  # the loss did cause suspicions (seeded: repeatable)
    assert stats["refuted"] > 0  # which the suspected nodes refuted
    assert stats["became_down"] == 0


def test_a_suspected_node_refutes_with_a_higher_incarnation() -> None:
    nodes, net = network(6)
    net.loop.run_until(NOW + MINUTE)
    watcher = net.liveness[nodes[0]]
    # Another node spreads a (false) suspicion of nodes[1].
    watcher._merge([[nodes[1], "suspect", 0]], nodes[2], net.loop.now)
    assert watcher.peers[nodes[1]].status == "suspect"
    net.loop.run_until(
        net.loop.now + 10 * MINUTE, stop=lambda: watcher.peers[nodes[1]].status == "alive"
    )
    assert watcher.peers[nodes[1]].status == "alive"
    assert net.liveness[nodes[1]].incarnation >= 1 or watcher.peers[nodes[1]].incarnation >= 1


def test_probing_costs_little_per_node() -> None:
    _nodes, net = network(20)
    net.loop.run_until(NOW + 10 * MINUTE)
    per_node_per_second = sum(net.bytes_sent.values()) / 20 / 600
    assert per_node_per_second < 100  # bytes/s: well under 1 kbit/s on a 256 kbit/s uplink
