"""The real gossip engines in virtual time: spread, loss, partitions, budgets."""

from __future__ import annotations

from protocol.directory import Directory
from protocol.gossip import GossipConfig
from simulations.network import GossipNetwork
from tests.protocol.directory_world import World
from tests.protocol.helpers import NOW, identity

INTERVAL = GossipConfig().interval_ms


def network_of(n: int, *, loss: float = 0.0, budget: int = 64 * 1024, seed: int = 1):  # type: ignore[no-untyped-def]
    world = World()
    nodes = [identity(f"sim-node-{i}") for i in range(n)]
    base = Directory(world.network)
    base.add_many([world.node_cert(node) for node in nodes], NOW)
    net = GossipNetwork(
        [node.public.key for node in nodes],
        base,
        start=NOW,
        seed=seed,
        loss=loss,
        config=GossipConfig(budget=budget),
    )
    return world, nodes, net


def has(record: bytes):  # type: ignore[no-untyped-def]
    return lambda directory: any(d.raw == record for d in directory)


def test_a_record_published_at_one_node_reaches_all() -> None:
    world, nodes, net = network_of(30, loss=0.1)
    record = world.node_record(nodes[0], "Hôpital Erasme")
    assert net.gossip[nodes[0].public.key].directory.add(record, NOW) == "added"
    net.loop.run_until(NOW + 30 * INTERVAL, stop=lambda: net.holders(has(record)) == 30)
    assert net.holders(has(record)) == 30
    roots = {e.directory.root() for e in net.gossip.values()}
    assert len(roots) == 1


def test_a_partition_heals_and_both_halves_converge() -> None:
    world, nodes, net = network_of(16)
    keys = [n.public.key for n in nodes]
    left, right = set(keys[:8]), set(keys[8:])
    net.partition(left, right)
    a = world.node_record(nodes[0], "left news")
    b = world.node_record(nodes[15], "right news")
    net.gossip[keys[0]].directory.add(a, NOW)
    net.gossip[keys[15]].directory.add(b, NOW)
    net.loop.run_until(NOW + 20 * INTERVAL)
    assert net.holders(has(a)) == 8
    assert net.holders(has(b)) == 8
    net.heal()
    net.loop.run_until(
        net.loop.now + 30 * INTERVAL,
        stop=lambda: net.holders(has(a)) == 16 and net.holders(has(b)) == 16,
    )
    assert net.holders(has(a)) == 16
    assert net.holders(has(b)) == 16


def test_small_budgets_truncate_without_gaps_and_still_converge() -> None:
    world, nodes, net = network_of(6, budget=4096)
    origin = net.gossip[nodes[0].public.key].directory
    extra = [identity(f"late-{i}") for i in range(40)]
    for node in extra:  # 40 certificates (~400 bytes each): several rounds of 4 KiB
        origin.add(world.node_cert(node), NOW)
    target = origin.root()
    net.loop.run_until(
        NOW + 40 * INTERVAL,
        stop=lambda: all(e.directory.root() == target for e in net.gossip.values()),
    )
    assert all(e.directory.root() == target for e in net.gossip.values())
    assert max(net.messages.values()) > 0


def test_a_revoked_node_is_cut_off_everywhere() -> None:
    world, nodes, net = network_of(10)
    revoked = nodes[3].public.key
    revocation = world.revocation(nodes[3], world.anchor)
    net.gossip[nodes[0].public.key].directory.add(revocation, NOW)
    net.loop.run_until(NOW + 30 * INTERVAL, stop=lambda: net.holders(has(revocation)) >= 9)
    others = [e for k, e in net.gossip.items() if k != revoked]
    assert all(not e.directory.view(net.loop.now).is_admitted(revoked) for e in others)
    # Its gossip is refused by every other node from then on.
    before = sum(e.stats["refused_unadmitted"] for e in others)
    net.loop.run_until(net.loop.now + 10 * INTERVAL)
    assert sum(e.stats["refused_unadmitted"] for e in others) > before


def test_steady_state_costs_one_small_message_per_peer_and_round() -> None:
    _, _nodes, net = network_of(10)
    net.loop.run_until(NOW + 5 * INTERVAL)
    sent_before = sum(net.bytes_sent.values())
    net.loop.run_until(net.loop.now + 10 * INTERVAL)
    per_node_round = (sum(net.bytes_sent.values()) - sent_before) / 10 / 10
    assert set(net.messages) == {"gossip_syn"}
    assert per_node_round < 2 * 250  # fanout 2 x one signed 32-byte root
