"""How long a change of the directory (a revoked reader, a new member) takes to reach
every node of a scenario: the node's own ``GossipEngine`` on each node, real signed
records, latencies between the scenario's regions, loss, and its outages.

A change is published at one node on ``publish_day``. Nodes down for a power cut at that
moment wait until they are back; nodes cut off with their region get the change only
once the cut heals: the run stops when every node it can reach holds the change, then
takes up again, with each node's own directory, when the cut ends (a month of gossip
rounds in between changes nothing and would take hours to simulate).

Every node holds every node's record, which lists ``RANGES_CAPABILITY``, so the nodes
reconcile by ranges (SPEC.md §8.3.1) unless the gossip config says ``ranges=False`` (the
full digest, as before). What the change cost is measured too: the bytes each node sent
(envelopes as the node would send them) from the change until the run stops, in
``Spread.bytes_per_node``; ``change_cost`` does the same on a gossip-only network of any
size, without a scenario (the benchmarks' 10,000 nodes).
"""

from __future__ import annotations

import functools
import hashlib
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field

from protocol.directory import Directory, key_hash, make_record, record_key
from protocol.documents import decode_document
from protocol.gossip import RANGES_CAPABILITY, GossipConfig
from protocol.identity import Identity
from simulations.casesim import DAY, CaseWorld
from simulations.network import GossipNetwork, admitted_directory
from simulations.scenario import Scenario

TARGET = 0.9999


@dataclass
class Spread:
    """The share of nodes holding the change over time (seconds after it was made)."""

    points: list[tuple[float, float]]
    seconds_to: dict[str, float | None]
    bytes_per_node: dict[str, float] = field(default_factory=dict)
    """Bytes each node sent while the change spread: "median", "mean", "max"."""
    messages: dict[str, int] = field(default_factory=dict)
    """Messages sent while the change spread, by envelope kind."""


def node_fields(name: str) -> dict[str, object]:
    """A simulated node's record: no address, and the gossip it speaks."""
    return {
        "name": name,
        "institution": "",
        "country": "",
        "addresses": [],
        "relays": [],
        "capabilities": ["gossip", RANGES_CAPABILITY],
        "capacity": 1,
    }


def network_directory(
    name: str, anchor: Identity, nodes: list[Identity], *, now: int, ttl: int
) -> Directory:
    """Every node admitted by the anchor, and every node's own record (real signatures):
    two records a node, as in a real network."""
    directory = admitted_directory(name, anchor, nodes, now=now, ttl=ttl)
    records = [
        make_record("node", node_fields(f"node {i}"), signer=node, network=name,
                    version=now + 1, now=now, ttl=ttl)
        for i, node in enumerate(nodes)
    ]  # fmt: skip
    directory.add_many(records, now)
    return directory


def _sent(nets: list[GossipNetwork], nodes: list[bytes]) -> tuple[dict[str, float], dict[str, int]]:
    per_node = Counter[bytes]()
    messages = Counter[str]()
    for net in nets:
        per_node.update(net.bytes_sent)
        messages.update(net.messages)
    sizes = [per_node[n] for n in nodes]
    figures = {
        "median": float(statistics.median(sizes)),
        "mean": statistics.fmean(sizes),
        "max": float(max(sizes)),
    }
    return figures, dict(sorted(messages.items()))


def spread(
    scenario: Scenario,
    world: CaseWorld,
    *,
    publish_day: float,
    loss: float = 0.02,
    config: GossipConfig | None = None,
    horizon_rounds: int = 1000,
) -> Spread:
    config = config or GossipConfig()
    names = [n.name for n in scenario.nodes]
    seed = world.seed
    keys = {
        name: Identity(hashlib.sha256(f"sim/{seed}/node/{name}".encode()).digest())
        for name in names
    }
    by_key = {k.public.key: name for name, k in keys.items()}
    anchor = Identity(hashlib.sha256(f"sim/{seed}/anchor".encode()).digest())
    start = int(publish_day * DAY)
    base = network_directory(
        "sim", anchor, [keys[n] for n in names], now=0, ttl=int(scenario.days * DAY) + 30 * DAY
    )

    def latency(a: bytes, b: bytes) -> int:
        return scenario.latency(world.region[by_key[a]], world.region[by_key[b]])

    nodes = [keys[n].public.key for n in names]
    change = make_record(
        "node",
        node_fields("changed"),
        signer=keys[names[0]],
        network="sim",
        version=start,
        now=start,
        ttl=365 * DAY,  # outlives any cut of the scenario
    )
    changed_doc = decode_document(change)
    changed = key_hash(record_key(changed_doc))
    # every node holds an earlier record of that key: the change is this version of it
    entry = (int(changed_doc.body["version"]), changed_doc.digest[:4])
    points: list[tuple[float, float]] = []
    directories: dict[bytes, Directory] | None = None
    phase_start = start
    nets: list[GossipNetwork] = []
    for _phase in range(1 + len(world.cut)):
        net = GossipNetwork(
            nodes,
            base,
            start=phase_start,
            seed=seed,
            loss=loss,
            latency_ms=latency,
            config=config,
            directories=directories,
        )
        nets.append(net)
        if directories is None:
            net.gossip[nodes[0]].directory.add(change, start)
        _outages(net, world, by_key, phase_start, horizon_rounds * config.interval_ms)
        healed_at = _apply_cuts(net, world, keys, phase_start)

        def holding(net: GossipNetwork = net) -> int:
            return net.holders(lambda d: d.digest().get(changed) == entry)

        reachable = _reachable(world, names, phase_start)
        end = phase_start + horizon_rounds * config.interval_ms
        while net.loop.now < end:
            net.loop.run_until(net.loop.now + config.interval_ms)
            share = holding() / len(nodes)
            points.append(((net.loop.now - start) / 1000, share))
            if holding() >= math.ceil(TARGET * reachable):
                break
        directories = {k: e.directory for k, e in net.gossip.items()}
        if healed_at is None or holding() >= math.ceil(TARGET * len(nodes)):
            break
        phase_start = healed_at
    sent, messages = _sent(nets, nodes)
    return Spread(points, _thresholds(points), sent, messages)


@dataclass
class ChangeCost:
    """One change of the directory on a gossip-only network, until ``TARGET`` of the
    nodes hold it: the bytes each node sent meanwhile, and how long it took."""

    nodes: int
    rounds: float
    bytes_per_node: dict[str, float]
    messages: dict[str, int]
    steady_bytes_per_node_s: float
    """Before the change, every root the same: what gossip costs a node per second."""


def change_cost(
    n: int,
    *,
    config: GossipConfig | None = None,
    loss: float = 0.1,
    latency_ms: int = 150,
    seed: int = 1,
    horizon_rounds: int = 100,
) -> ChangeCost:
    """``n`` nodes holding the same directory (a certificate and a node record each);
    one node's record changes; the run goes on, checked every twentieth of a round, until
    ``TARGET`` of the nodes hold the change. Bytes are counted from the change on."""
    config = config or GossipConfig()
    start = 1_800_000_000_000
    anchor = Identity(hashlib.sha256(f"sim/{seed}/anchor".encode()).digest())
    keys = [Identity(hashlib.sha256(f"sim/{seed}/node/{i}".encode()).digest()) for i in range(n)]
    base = network_directory("sim", anchor, keys, now=start, ttl=30 * DAY)
    nodes = [k.public.key for k in keys]
    net = GossipNetwork(
        nodes, base, start=start, seed=seed, loss=loss, latency_ms=latency_ms, config=config
    )
    net.loop.run_until(start + 2 * config.interval_ms)  # in step, every root the same
    net.bytes_sent.clear()
    net.loop.run_until(start + 6 * config.interval_ms)
    steady = sum(net.bytes_sent.values()) / n / (4 * config.interval_ms / 1000)
    net.bytes_sent.clear()
    net.messages.clear()
    now = net.loop.now
    change = make_record("node", node_fields("changed"), signer=keys[0], network="sim",
                         version=now, now=now, ttl=DAY)  # fmt: skip
    first = net.gossip[nodes[0]].directory
    first.add(change, now)
    target, needed = first.root(), math.ceil(TARGET * n)
    step = config.interval_ms // 20
    while net.holders(lambda d: d.root() == target) < needed:
        if net.loop.now > now + horizon_rounds * config.interval_ms:
            raise RuntimeError(f"no convergence of {n} nodes in {horizon_rounds} rounds")
        net.loop.run_until(net.loop.now + step)
    sent, messages = _sent([net], nodes)
    return ChangeCost(n, (net.loop.now - now) / config.interval_ms, sent, messages, steady)


def change_day(scenario: Scenario) -> float:
    """When the scenario's change of the directory is made: as it says; else a day into
    its first cut (to see the cut's effect); else half-way."""
    if scenario.directory_day is not None:
        return scenario.directory_day
    if scenario.cuts:
        return scenario.cuts[0].start_day + 1
    return scenario.days / 2


def _thresholds(points: list[tuple[float, float]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for label, share in (("50%", 0.5), ("99%", 0.99), ("99.99%", TARGET)):
        out[label] = next((t for t, s in points if s >= share - 1e-12), None)
    return out


def _reachable(world: CaseWorld, names: list[str], now: int) -> int:
    """Nodes on the publishing node's side of the cuts in force (a power cut only
    delays a node: it is counted, and waited for)."""
    first = names[0]
    return sum(
        1
        for n in names
        if not any(b <= now < e and ((first in nodes) != (n in nodes)) for nodes, b, e in world.cut)
    )


def _outages(
    net: GossipNetwork, world: CaseWorld, by_key: dict[bytes, str], start: int, span: int
) -> None:
    """Power cuts during the phase: the node stops, then comes back."""
    for key, name in by_key.items():
        for down, up in world.down[name]:
            if up <= start or down >= start + span:
                continue
            if down <= start:
                net.crash(key)
            else:
                net.loop.at(down, functools.partial(net.crash, key))
            net.loop.at(max(up, start), functools.partial(net.recover, key))


def _apply_cuts(
    net: GossipNetwork, world: CaseWorld, keys: dict[str, Identity], now: int
) -> int | None:
    """Partitions in force at ``now``; when the last of them heals (None: none)."""
    healed: int | None = None
    for nodes, begin, end in world.cut:
        if begin <= now < end:
            inside = {keys[n].public.key for n in nodes}
            outside = {k.public.key for k in keys.values()} - inside
            net.partition(inside, outside)
            healed = max(healed or 0, end)
    return healed
