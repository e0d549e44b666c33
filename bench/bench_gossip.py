"""Gossip convergence on 1,000 in-process engines against the epidemic model that
Serf's convergence simulator uses, for the same fanout and loss."""

from __future__ import annotations

import hashlib
import math

from bench.result import Result
from protocol.directory import make_record
from protocol.gossip import GossipConfig
from protocol.identity import Identity
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


BENCHMARKS = {"gossip_convergence": gossip_convergence}
