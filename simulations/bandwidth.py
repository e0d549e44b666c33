"""What a node's gossip and liveness cost its line, in kbit/s, over a run of cases.

Both are background traffic: they do not depend on the cases, only on the node being up.
Their sizes are the node's own: the liveness engine of ``protocol/liveness.py`` sends a
ping every ``LivenessConfig.probe_interval_ms`` and answers the pings it gets (as many,
on average: every node probes one peer a period), each an envelope as the node sends it
(``envelope_size``: header, msgpack body, signature). When a direct probe gets no pong
in time, the engine asks ``indirect_probes`` (k) other peers to probe on its behalf
(SWIM's ping-req): k ``ping_req`` from the prober, a ``ping`` and a ``ping_ack`` from
each helper, a ``pong`` from the target to each helper. Every node is prober, helper and
target as often as any other, so on average a node sends, a period::

    ping + pong + q * k * (ping_req + ping + pong + ping_ack)

where q is the share of its direct probes that fail. Liveness goes over HTTP (TCP): a
lost segment is sent again after TCP's initial retransmission timeout (1 s, RFC 6298),
still within the probe timeout; a message misses it when it is lost and its
retransmission too (``loss**2``), and a probe fails when its ping or its pong misses it
(``loss`` is the share lost on the two lines between prober and target). The indirect
messages are counted as if none of them were lost (a slight overestimate). The gossip
engine of
``protocol/gossip.py`` runs with the default ``GossipConfig`` on a network of the
scenario's size (at most ``GOSSIP_SAMPLE`` nodes: with range-based reconciliation a
round between peers that agree costs the same whatever the size), every node holding the
same directory, and what it sends per second in that steady state is measured. A node
pays both only while it is up (power cuts, churn, ``node_down`` events).
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter

from protocol.gossip import GossipConfig
from protocol.identity import Identity
from protocol.liveness import LIVENESS_KINDS, Liveness, LivenessConfig
from simulations.network import GossipNetwork, envelope_size, seeded_rng

GOSSIP_SAMPLE = 64
START = 1_800_000_000_000


@functools.lru_cache(maxsize=8)
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


@functools.lru_cache(maxsize=8)
def indirect_probe_bytes(config: LivenessConfig | None = None) -> dict[str, int]:
    """The bytes of each message of an indirect probe between engines that agree, as
    envelopes on the wire: the prober's ``ping_req`` to a helper, the helper's ``ping``
    to the target, the target's ``pong`` and the helper's ``ping_ack``."""
    config = config or LivenessConfig()
    keys = [hashlib.sha256(f"probe/{k}".encode()).digest() for k in "abc"]
    engines = {
        k: Liveness(me=k, rng=seeded_rng(f"probe/{k.hex()}"), now=START, config=config)
        for k in keys
    }
    for engine in engines.values():
        engine.set_members(set(keys), START)
    prober, helpers = keys[0], set(keys[1:])
    sizes: dict[str, int] = {}
    for rounds in range(64):  # bounded: a probe each interval
        now = min(e.get_timer() for e in engines.values())
        due = [(k, e) for k, e in engines.items() if e.get_timer() <= now]
        queue = [(k, m) for k, e in due for m in e.handle_timer(now)]
        while queue:  # bounded: every answer is to a message sent before it
            source, message = queue.pop(0)
            lost = rounds >= 32 and source == prober and message.kind == "ping"
            if lost:  # the direct ping is lost (the first probes carry "alive" updates)
                continue
            if (message.kind == "ping_req" and rounds >= 32) or (
                "ping_req" in sizes and (source in helpers or message.peer in helpers)
            ):
                sizes.setdefault(message.kind, envelope_size(message.kind, message.body))
            answers = engines[message.peer].receive(source, message.kind, message.body, now)
            queue += [(message.peer, m) for m in answers]
        if len(sizes) == len(LIVENESS_KINDS):
            return {k: sizes[k] for k in ("ping_req", "ping", "pong", "ping_ack")}
    raise AssertionError("no indirect probe completed")  # the engine asks helpers: cannot happen


def probe_failure(loss: float) -> float:
    """The share of direct probes that fail on a path losing ``loss`` of its packets:
    the ping or the pong lost, and its retransmission too."""
    return 1 - (1 - loss**2) ** 2


def liveness_bytes_per_s(
    config: LivenessConfig | None = None, *, failed: float = 0.0, helpers: int | None = None
) -> float:
    """What a node that is up sends a second for liveness: its ping and one pong, and,
    for the share ``failed`` of its probes that get no pong, its part of the indirect
    probes (``helpers``: how many it asks; default ``indirect_probes``)."""
    config = config or LivenessConfig()
    ping, pong = probe_bytes(config)
    per_period = float(ping + pong)
    k = config.indirect_probes if helpers is None else helpers
    if failed > 0 and k > 0:
        indirect = indirect_probe_bytes(config)
        per_period += failed * k * sum(indirect.values())
    return per_period / (config.probe_interval_ms / 1000)


def failed_share(loss: dict[str, float]) -> dict[str, float]:
    """Per node, the share of its direct probes that fail: over its peers (each probed
    as often), the loss of its line and the peer's."""
    by_loss = Counter(loss.values())
    out = {}
    for node, mine in loss.items():
        peers = by_loss.copy()
        peers[mine] -= 1
        count = sum(peers.values())
        out[node] = (
            sum(c * probe_failure(1 - (1 - mine) * (1 - other)) for other, c in peers.items())
            / count
            if count
            else 0.0
        )
    return out


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


def background_kbit_s(
    nodes: list[str], up_share: dict[str, float], loss: dict[str, float] | None = None
) -> dict[str, dict[str, float]]:
    """Per node: gossip and liveness in kbit/s averaged over the run (``up_share``: the
    share of the run the node was up; ``loss``: the share of packets its line loses,
    which makes probes fail and brings indirect ones)."""
    gossip = gossip_bytes_per_s(len(nodes)) * 8 / 1000
    failed = failed_share(loss or dict.fromkeys(nodes, 0.0))
    helpers = max(0, min(LivenessConfig().indirect_probes, len(nodes) - 2))
    return {
        n: {
            "gossip": round(gossip * up_share[n], 3),
            "liveness": round(
                liveness_bytes_per_s(failed=failed[n], helpers=helpers) * 8 / 1000 * up_share[n],
                3,
            ),
        }
        for n in nodes
    }
