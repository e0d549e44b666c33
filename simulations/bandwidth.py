"""What a node's gossip and liveness cost its line, in kbit/s, over a run of cases.

Both are background traffic: they do not depend on the cases, only on the node being up.
Their sizes are the node's own: the liveness engine of ``protocol/liveness.py`` sends a
ping every ``LivenessConfig.probe_interval_ms`` and answers the pings it gets (as many,
on average: every node probes one peer a period), each an envelope as the node sends it
(``envelope_size``: header, msgpack body, signature); the gossip engine of
``protocol/gossip.py`` runs with the default ``GossipConfig`` on a network of the
scenario's size (at most ``GOSSIP_SAMPLE`` nodes: with range-based reconciliation a
round between peers that agree costs the same whatever the size), every node holding the
same directory, and what it sends per second in that steady state is measured. A node
pays both only while it is up (power cuts, churn, ``node_down`` events).
"""

from __future__ import annotations

import functools
import hashlib

from protocol.gossip import GossipConfig
from protocol.identity import Identity
from protocol.liveness import Liveness, LivenessConfig
from simulations.network import GossipNetwork, envelope_size, seeded_rng

GOSSIP_SAMPLE = 64
START = 1_800_000_000_000


def probe_bytes(config: LivenessConfig | None = None) -> tuple[int, int]:
    """The bytes of a ping and of its pong between two engines that agree (nothing to
    piggyback), as envelopes on the wire."""
    a, b = (hashlib.sha256(f"probe/{k}".encode()).digest() for k in "ab")
    one = Liveness(me=a, rng=seeded_rng("probe/a"), now=START, config=config)
    other = Liveness(me=b, rng=seeded_rng("probe/b"), now=START, config=config)
    one.set_members({a, b}, START)
    other.set_members({a, b}, START)
    now = START
    for _ in range(16):  # the first probes carry "alive" updates; later ones nothing
        now = one.get_timer()
        for ping in one.handle_timer(now):
            (pong,) = other.receive(a, ping.kind, ping.body, now)
            one.receive(b, pong.kind, pong.body, now)
    now = one.get_timer()
    while not (pings := one.handle_timer(now)):  # bounded: a probe each interval
        now = one.get_timer()
    (pong,) = other.receive(a, pings[0].kind, pings[0].body, now)
    return envelope_size("ping", pings[0].body), envelope_size("pong", pong.body)


def liveness_bytes_per_s(config: LivenessConfig | None = None) -> float:
    """What a node that is up sends a second for liveness: its ping and one pong."""
    config = config or LivenessConfig()
    ping, pong = probe_bytes(config)
    return (ping + pong) / (config.probe_interval_ms / 1000)


@functools.lru_cache(maxsize=8)
def gossip_bytes_per_s(nodes: int, config: GossipConfig | None = None) -> float:
    """What a node sends a second for gossip when every node agrees, measured on a
    network of ``min(nodes, GOSSIP_SAMPLE)`` real engines (real signed records)."""
    from simulations.directorysim import network_directory

    config = config or GossipConfig()
    n = max(2, min(nodes, GOSSIP_SAMPLE))
    anchor = Identity(hashlib.sha256(b"bandwidth/anchor").digest())
    keys = [Identity(hashlib.sha256(f"bandwidth/node/{i}".encode()).digest()) for i in range(n)]
    base = network_directory("sim", anchor, keys, now=START, ttl=30 * 86_400_000)
    net = GossipNetwork([k.public.key for k in keys], base, start=START, config=config)
    net.loop.run_until(START + 2 * config.interval_ms)  # in step
    net.bytes_sent.clear()
    net.loop.run_until(START + 6 * config.interval_ms)
    return sum(net.bytes_sent.values()) / n / (4 * config.interval_ms / 1000)


def background_kbit_s(nodes: list[str], up_share: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per node: gossip and liveness in kbit/s averaged over the run (``up_share``: the
    share of the run the node was up)."""
    gossip = gossip_bytes_per_s(len(nodes)) * 8 / 1000
    liveness = liveness_bytes_per_s() * 8 / 1000
    return {
        n: {
            "gossip": round(gossip * up_share[n], 3),
            "liveness": round(liveness * up_share[n], 3),
        }
        for n in nodes
    }
