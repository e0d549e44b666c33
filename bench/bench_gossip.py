"""Gossip convergence on 1,000 in-process engines against the epidemic model that
Serf's convergence simulator uses, for the same fanout and loss; 10,000 nodes against
linear growth; a 10,000-node directory taken in against its signature checks alone; the
bytes a change of the directory costs each node, reconciled by ranges, against the full
digest of the engine before (kept as ``GossipConfig(ranges=False)``), and the steady
state's bandwidth per node from 100 to 10,000 nodes."""

from __future__ import annotations

import hashlib
import json
import math
import random
import subprocess
import sys
import time

from bench.result import Result, interleaved
from protocol.directory import Directory, Network, make_record
from protocol.documents import decode_document
from protocol.gossip import GossipConfig
from protocol.identity import Identity
from simulations.directorysim import ChangeCost, change_cost
from simulations.network import GossipNetwork, LivenessNetwork, admitted_directory

START = 1_800_000_000_000
DAY = 86_400_000
TARGET = 0.9999


def model_rounds(n: int, fanout: int, loss: float, target: float = TARGET) -> float:
    """Rounds x at which 1/(1+(N+1)e^(-cNx)) reaches ``target``, c = fanout/N*(1-loss)*0.5."""
    c = fanout / n * (1 - loss) * 0.5
    return math.log((n + 1) * target / (1 - target)) / (c * n)


def gossip_convergence(*, quick: bool = False) -> Result:
    n = 100 if quick else 1000
    loss = 0.1
    config = GossipConfig()
    anchor = Identity(hashlib.sha256(b"bench anchor").digest())
    nodes = [Identity(hashlib.sha256(f"bench node {i}".encode()).digest()) for i in range(n)]
    base = admitted_directory("bench", anchor, nodes, now=START, ttl=30 * DAY)
    net = GossipNetwork([x.public.key for x in nodes], base, start=START, loss=loss, config=config)
    # Steady state first: every node holds the same directory.
    net.loop.run_until(START + 3 * config.interval_ms)
    before = sum(net.bytes_sent.values())
    steady_start = net.loop.now
    net.loop.run_until(steady_start + 5 * config.interval_ms)
    steady = (sum(net.bytes_sent.values()) - before) / n / 5
    # Publish a new record at one node and count rounds until 99.99% hold it.
    record = make_record(
        "node",
        {
            "name": "Nouveau",
            "institution": "",
            "country": "NE",
            "addresses": [],
            "relays": [],
            "capabilities": [],
            "capacity": 5,
        },
        signer=nodes[0],
        network="bench",
        version=START + 10 * DAY,
        now=net.loop.now,
        ttl=DAY,
    )
    net.gossip[nodes[0].public.key].directory.add(record, net.loop.now)
    published = net.loop.now
    needed = math.ceil(TARGET * n)

    def holders() -> int:
        return net.holders(lambda d: d.root() == net.gossip[nodes[0].public.key].directory.root())

    net.loop.run_until(published + 100 * config.interval_ms, stop=lambda: holders() >= needed)
    rounds = (net.loop.now - published) / config.interval_ms
    # Liveness in steady state: SWIM probes at their defaults, no loss, 5 minutes.
    keys = [x.public.key for x in nodes]
    live = LivenessNetwork(keys, start=START)
    live.loop.run_until(START + 60_000)
    before_live = sum(live.bytes_sent.values())
    live.loop.run_until(START + 360_000)
    liveness_bps = (sum(live.bytes_sent.values()) - before_live) / n / 300
    gossip_bps = steady / (config.interval_ms / 1000)
    return Result(
        name="gossip_convergence",
        value=rounds,
        unit=f"rounds until 99.99% of {n} nodes hold a new record (interval "
        f"{config.interval_ms} ms, fanout {config.fanout}, 10% loss); steady state "
        f"{steady:.0f} bytes sent/node/round",
        baseline="Serf convergence model 1/(1+(N+1)e^(-cNx)), c = fanout/N*(1-loss)*0.5",
        baseline_value=model_rounds(n, config.fanout, loss),
        higher_is_better=False,
        target="no more rounds than the model",
        extra={
            "steady_gossip_bytes_per_node_round": steady,
            "steady_gossip_bits_per_s_per_node": gossip_bps * 8,
            "steady_liveness_bits_per_s_per_node": liveness_bps * 8,
        },
    )


def directory_load_10000_nodes(*, quick: bool = False) -> Result:
    """A node taking in the directory of a 10,000-node network at start or in one gossip
    batch (a certificate and a node record per node, shuffled), beside the signature
    checks and decoding of the same records alone, which it cannot do without."""
    n = 1000 if quick else 10_000
    anchor = Identity(hashlib.sha256(b"bench anchor").digest())
    nodes = [Identity(hashlib.sha256(f"bench node {i}".encode()).digest()) for i in range(n)]
    records = [
        make_record("node_cert", {"node": node.public.key}, signer=anchor, network="bench",
                    version=START + i + 1, now=START, ttl=30 * DAY)
        for i, node in enumerate(nodes)
    ] + [_new_record(node, START) for node in nodes]  # fmt: skip
    random.Random(0).shuffle(records)  # noqa: S311 - an order, not a secret
    network = Network("bench", frozenset({anchor.public.key}))

    def take_in() -> None:
        directory = Directory(network)
        directory.add_many(records, START)
        if len(directory.view(START).nodes) != n:
            raise AssertionError("not every node record was taken in")

    def decode_only() -> None:
        for raw in records:
            decode_document(raw)

    repeats = 2 if quick else 3
    t_ours, t_decode = interleaved(repeats, take_in, decode_only)
    return Result(
        name="directory_load_10000_nodes",
        value=t_ours,
        unit=f"s to take in {len(records)} records ({n} nodes, shuffled), best of {repeats}",
        baseline="decoding and checking the signatures of the same records, alone",
        baseline_value=t_decode,
        higher_is_better=False,
        target="ratio <= 2 (it grows with the records, not with their square)",
    )


def _spread_run(n: int, loss: float, config: GossipConfig) -> dict[str, float]:
    """A gossip-only network of ``n`` nodes: wall time to set it up, and the rounds until
    99.99% of them hold a record published at one (checked every 1/20 of a round)."""
    began = time.perf_counter()
    anchor = Identity(hashlib.sha256(b"bench anchor").digest())
    nodes = [Identity(hashlib.sha256(f"bench node {i}".encode()).digest()) for i in range(n)]
    base = admitted_directory("bench", anchor, nodes, now=START, ttl=30 * DAY)
    net = GossipNetwork([x.public.key for x in nodes], base, start=START, loss=loss, config=config)
    net.loop.run_until(START + 2 * config.interval_ms)  # steady state
    made = time.perf_counter()
    first = net.gossip[nodes[0].public.key].directory
    first.add(_new_record(nodes[0], net.loop.now), net.loop.now)
    target, published = first.root(), net.loop.now
    needed = math.ceil(TARGET * n)
    step = config.interval_ms // 20
    while net.holders(lambda d: d.root() == target) < needed:
        if net.loop.now > published + 100 * config.interval_ms:
            raise AssertionError(f"no convergence of {n} nodes within 100 rounds")
        net.loop.run_until(net.loop.now + step)
    return {
        "rounds": (net.loop.now - published) / config.interval_ms,
        "setup_s": made - began,
        "spread_s": time.perf_counter() - made,
        "wall_s": time.perf_counter() - began,
    }


def _new_record(signer: Identity, now: int) -> bytes:
    return make_record(
        "node",
        {"name": "Nouveau", "institution": "", "country": "NE", "addresses": [],
         "relays": [], "capabilities": [], "capacity": 5},
        signer=signer, network="bench", version=START + 10 * DAY, now=now, ttl=DAY,
    )  # fmt: skip


_CHILD = """
import json, sys
from bench.bench_gossip import _spread_run
from protocol.gossip import GossipConfig
out = _spread_run(int(sys.argv[1]), float(sys.argv[2]), GossipConfig())
# VmHWM, not getrusage's maxrss (which keeps the forking parent's peak across exec)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
out["peak_rss_mb"] = int(hwm.split()[1]) / 1024
print(json.dumps(out))
"""


def _in_child(n: int, loss: float) -> dict[str, float]:
    """``_spread_run`` in a fresh interpreter, for its own peak memory."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(n), str(loss)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def gossip_10000_nodes(*, quick: bool = False) -> Result:
    """A gossip-only run of 10,000 nodes (quick: 1,000) to 99.99% convergence, beside
    the same run at a tenth of the size: wall time and peak memory, and how the time
    grows with the network (nodes share their directory's state until it differs: see
    ``Directory.copy``)."""
    n = 1000 if quick else 10_000
    loss = 0.1
    small = _in_child(n // 10, loss)
    large = _in_child(n, loss)
    config = GossipConfig()
    return Result(
        name="gossip_10000_nodes",
        value=large["wall_s"],
        unit=f"s of wall time, {n} nodes to 99.99% of them holding a new record "
        f"({large['rounds']:.2f} rounds of {config.interval_ms} ms, fanout {config.fanout}, "
        f"10% loss; peak {large['peak_rss_mb']:.0f} MiB)",
        baseline=f"10 x the same run with {n // 10} nodes (linear growth)",
        baseline_value=10 * small["wall_s"],
        higher_is_better=False,
        target="report wall time and memory",
        extra={
            "peak_rss_mib": large["peak_rss_mb"],
            "peak_rss_mib_at_a_tenth": small["peak_rss_mb"],
            "rounds": large["rounds"],
            "model_rounds": model_rounds(n, config.fanout, loss),
            "setup_s": large["setup_s"],
            "spread_s": large["spread_s"],
            "wall_s_at_a_tenth": small["wall_s"],
        },
    )


CHANGES_PER_HOUR = 1  # network-wide, in the steady state


def _steady_kbps(cost: ChangeCost) -> float:
    """A node's gossip in the steady state, kbit/s: its rounds with every root the same,
    plus ``CHANGES_PER_HOUR`` changes of the directory each costing it the median."""
    per_s = cost.steady_bytes_per_node_s + CHANGES_PER_HOUR * cost.bytes_per_node["median"] / 3600
    return per_s * 8 / 1000


def directory_change_cost(*, quick: bool = False) -> list[Result]:
    """One change of the directory on a gossip-only network of 10,000 nodes (quick:
    1,000) holding 20,000 records (a certificate and a node record each), at 10% loss,
    until 99.99% of the nodes hold it: the bytes each node sent (median), by ranges
    against the full digest of today's engine, same network, same seed, same run. Then
    the steady state per node at 100 and at 10,000 nodes (quick: 1,000) by ranges."""
    n, small = (1000, 100) if quick else (10_000, 100)
    began = time.perf_counter()
    ranges = change_cost(n, config=GossipConfig())
    ranges_s = time.perf_counter() - began
    digest = change_cost(n, config=GossipConfig(ranges=False))
    digest_s = time.perf_counter() - began - ranges_s
    ranges_small = change_cost(small, config=GossipConfig())
    digest_small = change_cost(small, config=GossipConfig(ranges=False))
    change = Result(
        name="directory_change_cost_vs_full_digest",
        value=ranges.bytes_per_node["median"],
        unit=f"bytes sent per node (median) while one change reached 99.99% of {n} nodes "
        f"({2 * n} records, 10% loss) by range reconciliation, in {ranges.rounds:.2f} rounds",
        baseline=f"the same with today's full-digest exchange ({digest.rounds:.2f} rounds)",
        baseline_value=digest.bytes_per_node["median"],
        higher_is_better=False,
        target="ratio <= 0.05 (at most 1/20 of the full digest)",
        extra={
            "max_bytes_per_node": ranges.bytes_per_node["max"],
            "max_bytes_per_node_full_digest": digest.bytes_per_node["max"],
            "mean_bytes_per_node": ranges.bytes_per_node["mean"],
            "mean_bytes_per_node_full_digest": digest.bytes_per_node["mean"],
            "rounds": ranges.rounds,
            "rounds_full_digest": digest.rounds,
            "wall_s": ranges_s,
            "wall_s_full_digest": digest_s,
        },
    )
    steady = Result(
        name="gossip_steady_state_per_node_flat",
        value=_steady_kbps(ranges),
        unit=f"kbit/s per node at {n} nodes: gossip rounds in step, plus "
        f"{CHANGES_PER_HOUR} change of the directory an hour (its median cost above)",
        baseline=f"the same at {small} nodes",
        baseline_value=_steady_kbps(ranges_small),
        higher_is_better=False,
        target=f"ratio {n}/{small} <= 1.2",
        extra={
            "rounds_only_kbps": ranges.steady_bytes_per_node_s * 8 / 1000,
            "rounds_only_kbps_at_small": ranges_small.steady_bytes_per_node_s * 8 / 1000,
            "full_digest_kbps": _steady_kbps(digest),
            "full_digest_kbps_at_small": _steady_kbps(digest_small),
            "full_digest_ratio": _steady_kbps(digest) / _steady_kbps(digest_small),
            "change_median_bytes_at_small": ranges_small.bytes_per_node["median"],
            "change_median_bytes_at_small_full_digest": digest_small.bytes_per_node["median"],
        },
    )
    return [change, steady]


BENCHMARKS = {
    "gossip_convergence": gossip_convergence,
    "directory_change_cost": directory_change_cost,
    "gossip_10000_nodes": gossip_10000_nodes,
    "directory_load_10000_nodes": directory_load_10000_nodes,
}
