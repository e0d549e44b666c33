"""Liveness of peer nodes: SWIM failure detection with Lifeguard's refinements.

Each protocol period the engine probes one peer (round-robin over a shuffled list):
``ping``, and if no ``pong`` comes within the probe timeout, ``ping_req`` to a few other
peers who probe it on our behalf and answer ``ping_ack``. A peer that answers nothing by
the end of the period becomes *suspect*; if no one refutes within the suspicion timeout
it is *down*. State changes ride on pings and pongs (SWIM's piggybacking), each sent a
few times (log N). A node that hears it is suspected raises its incarnation number and
says it is alive, which overrides the suspicion.

Lifeguard (Dadgar et al., 2018): a *local health* multiplier stretches this node's own
probe interval and timeouts when it misses acks itself (a node on a saturated uplink
does not accuse healthy peers); the suspicion timeout starts long and shrinks as other
nodes independently confirm the suspicion; a probed peer we suspect is told so at once.

Down nodes are still probed, less often, since hospitals lose power for hours and come
back: any answer makes them alive again.

Only a node raises its own incarnation, one step per refutation, so a rumour carrying
an incarnation far beyond what its subject has said is a lie: a rumour about a peer more
than ``INCARNATION_SLACK`` above the incarnation held for it (unless the peer says it
itself), or about this node more than that above its own, is ignored and counted
(``stats["implausible_incarnation"]``). Without this, one admitted node could mark any
other down at an incarnation its refutation could not exceed (SPEC.md section 8.4).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from protocol.errors import LocalProtocolError
from protocol.gossip import Outgoing
from protocol.kinds import MAX_INCARNATION
from protocol.sampling import Rng, randbelow, sample

ALIVE, SUSPECT, DOWN = "alive", "suspect", "down"
MAX_UPDATES = 16
LIVENESS_KINDS = ("ping", "pong", "ping_req", "ping_ack")
INCARNATION_SLACK = 16


@dataclass(frozen=True, kw_only=True)
class LivenessConfig:
    """Defaults for WAN links with 80-600 ms RTT: a probe every 10 s, 3 s to answer."""

    probe_interval_ms: int = 10_000
    probe_timeout_ms: int = 3_000
    indirect_probes: int = 3
    suspicion_mult: int = 6
    suspicion_max_factor: int = 6
    retransmit_mult: int = 3
    max_local_health: int = 8
    down_probe_every: int = 6
    """Probe a down node once every this many cycles through the peers."""

    def __post_init__(self) -> None:
        if not 0 < self.probe_timeout_ms < self.probe_interval_ms:
            raise LocalProtocolError("0 < probe timeout < probe interval")


@dataclass
class PeerState:
    status: str = ALIVE
    incarnation: int = 0
    since: int = 0
    suspect_deadline: int = 0
    confirmations: set[bytes] = field(default_factory=set)
    last_heard: int | None = None


@dataclass
class _Probe:
    target: bytes
    probe: bytes
    started: int
    timeout_at: int
    ends_at: int
    acked: bool = False
    indirect_sent: bool = False


class Liveness:
    def __init__(
        self, *, me: bytes, rng: Rng, now: int, config: LivenessConfig | None = None
    ) -> None:
        self.me = me
        self.config = config or LivenessConfig()
        self.incarnation = 0
        self.local_health = 0
        self.peers: dict[bytes, PeerState] = {}
        self.stats: Counter[str] = Counter()
        self._rng = rng
        self._order: list[bytes] = []
        self._cycle = 0
        self._probe: _Probe | None = None
        self._next_probe = now + randbelow(rng, self.config.probe_interval_ms)
        self._updates: dict[bytes, list[Any]] = {}  # node -> [status, incarnation, sends left]
        self._relayed: dict[bytes, tuple[bytes, bytes]] = {}  # our probe -> (requester, theirs)

    # --- membership from the directory ----------------------------------------------

    def set_members(self, members: set[bytes], now: int) -> None:
        """The admitted nodes (from the directory); others are forgotten."""
        members = members - {self.me}
        for node in sorted(members - self.peers.keys()):  # sorted: same order every run
            self.peers[node] = PeerState(since=now)
        for node in self.peers.keys() - members:
            del self.peers[node]
            self._updates.pop(node, None)

    def status(self) -> dict[bytes, PeerState]:
        return dict(self.peers)

    def counts(self) -> Counter[str]:
        return Counter(p.status for p in self.peers.values())

    # --- timers ----------------------------------------------------------------------

    def _scale(self, ms: int) -> int:
        return ms * (self.local_health + 1)

    def get_timer(self) -> int:
        deadlines = [self._next_probe]
        if self._probe is not None:
            deadlines.append(self._probe.ends_at)
            if not self._probe.indirect_sent:
                deadlines.append(self._probe.timeout_at)
        deadlines += [p.suspect_deadline for p in self.peers.values() if p.status == SUSPECT]
        return min(deadlines)

    def handle_timer(self, now: int) -> list[Outgoing]:
        out: list[Outgoing] = []
        for node, peer in self.peers.items():
            if peer.status == SUSPECT and now >= peer.suspect_deadline:
                self._set(node, DOWN, peer.incarnation, now)
        probe = self._probe
        if probe is not None:
            if not probe.acked and not probe.indirect_sent and now >= probe.timeout_at:
                probe.indirect_sent = True
                helpers = [
                    n for n, p in self.peers.items() if n != probe.target and p.status == ALIVE
                ]
                for helper in sample(self._rng, helpers, self.config.indirect_probes):
                    out.append(
                        Outgoing(helper, "ping_req", {"target": probe.target, "probe": probe.probe})
                    )
            if now >= probe.ends_at:
                self._finish_probe(probe, now)
        if self._probe is None and now >= self._next_probe:
            out += self._start_probe(now)
        return out

    def _finish_probe(self, probe: _Probe, now: int) -> None:
        self._probe = None
        peer = self.peers.get(probe.target)
        if probe.acked:
            self.local_health = max(0, self.local_health - 1)
            return
        self.local_health = min(self.config.max_local_health, self.local_health + 1)
        self.stats["probes_failed"] += 1
        if peer is not None and peer.status == ALIVE:
            self._set(probe.target, SUSPECT, peer.incarnation, now, by=self.me)

    def _next_target(self) -> bytes | None:
        for _ in range(2 * len(self.peers) + 1):
            if not self._order:
                self._order = sample(self._rng, sorted(self.peers), len(self.peers))
                self._cycle += 1
                if not self._order:
                    return None
            node = self._order.pop()
            peer = self.peers.get(node)
            if peer is None:
                continue
            if peer.status != DOWN or self._cycle % self.config.down_probe_every == 0:
                return node
        return None

    def _start_probe(self, now: int) -> list[Outgoing]:
        self._next_probe = now + self._scale(self.config.probe_interval_ms)
        target = self._next_target()
        if target is None:
            return []
        probe = _Probe(
            target=target,
            probe=self._rng(8),
            started=now,
            timeout_at=now + self._scale(self.config.probe_timeout_ms),
            ends_at=now + self._scale(self.config.probe_interval_ms) - 1,
        )
        self._probe = probe
        self.stats["probes"] += 1
        return [
            Outgoing(target, "ping", {"probe": probe.probe, "updates": self._piggyback(target)})
        ]

    # --- messages --------------------------------------------------------------------

    def receive(self, peer: bytes, kind: str, body: dict[str, Any], now: int) -> list[Outgoing]:
        """Handle a liveness message from ``peer`` (its envelope verified by the caller,
        and ``peer`` an admitted node); return the messages to send."""
        state = self.peers.get(peer)
        if state is None:
            self.stats["ignored_unknown"] += 1
            return []
        state.last_heard = now
        self._merge(body.get("updates") or [], peer, now)
        if kind == "ping":
            return [
                Outgoing(peer, "pong", {"probe": body["probe"], "updates": self._piggyback(peer)})
            ]
        if kind == "pong":
            self._acked(peer, body["probe"], now)
            relay = self._relayed.pop(body["probe"], None)
            if relay is not None:
                requester, their_probe = relay
                return [Outgoing(requester, "ping_ack", {"target": peer, "probe": their_probe})]
            return []
        if kind == "ping_req":
            target = body["target"]
            if target not in self.peers or target == peer:
                return []
            ours = self._rng(8)
            self._relayed[ours] = (peer, body["probe"])
            if len(self._relayed) > 64:  # answers that never came: forget the oldest
                self._relayed.pop(next(iter(self._relayed)))
            return [Outgoing(target, "ping", {"probe": ours, "updates": self._piggyback(target)})]
        if kind == "ping_ack":
            self._acked(body["target"], body["probe"], now)
            return []
        raise LocalProtocolError(f"not a liveness message: {kind}")

    def _acked(self, node: bytes, probe: bytes, now: int) -> None:
        current = self._probe
        if current is not None and current.target == node and current.probe == probe:
            current.acked = True
            self._finish_probe(current, now)
        peer = self.peers.get(node)
        if peer is not None and peer.status != ALIVE:
            # A direct or relayed answer: it is up. Its own refutation will carry a higher
            # incarnation; until then, make it alive locally at its current incarnation.
            self._set(node, ALIVE, min(peer.incarnation + 1, MAX_INCARNATION), now)

    # --- state changes and dissemination ---------------------------------------------

    def _set(
        self, node: bytes, status: str, incarnation: int, now: int, by: bytes | None = None
    ) -> None:
        peer = self.peers[node]
        if status == SUSPECT:
            if peer.status != SUSPECT or peer.incarnation != incarnation:
                peer.confirmations = set()
                peer.since = now
            if by is not None:
                peer.confirmations.add(by)
            peer.suspect_deadline = peer.since + self._suspicion_timeout(len(peer.confirmations))
        elif peer.status != status:
            peer.since = now
        if peer.status != status:
            self.stats[f"became_{status}"] += 1
        peer.status, peer.incarnation = status, incarnation
        sends = self.config.retransmit_mult * math.ceil(math.log10(len(self.peers) + 2))
        self._updates[node] = [status, incarnation, sends]

    def _suspicion_timeout(self, confirmations: int) -> int:
        """Lifeguard: from max down to min as independent confirmations arrive."""
        n = len(self.peers) + 1
        minimum = int(
            self.config.suspicion_mult * max(1.0, math.log10(n)) * self.config.probe_interval_ms
        )
        maximum = minimum * self.config.suspicion_max_factor
        expected = max(1, self.config.suspicion_mult - 2)
        fraction = math.log(confirmations + 1) / math.log(expected + 1)
        return max(minimum, int(maximum - (maximum - minimum) * min(1.0, fraction)))

    def _merge(self, updates: list[Any], source: bytes, now: int) -> None:
        for node, status, incarnation in updates:
            if node == self.me:
                if incarnation > self.incarnation + INCARNATION_SLACK:
                    self.stats["implausible_incarnation"] += 1
                    continue
                if status in (SUSPECT, DOWN) and incarnation >= self.incarnation:
                    self.incarnation = min(incarnation + 1, MAX_INCARNATION)
                    self.stats["refuted"] += 1
                    self._updates[self.me] = [
                        ALIVE,
                        self.incarnation,
                        2 * self.config.retransmit_mult,
                    ]
                continue
            peer = self.peers.get(node)
            if peer is None:
                continue
            if node != source and incarnation > peer.incarnation + INCARNATION_SLACK:
                self.stats["implausible_incarnation"] += 1
                continue
            if status == ALIVE:
                if incarnation > peer.incarnation:
                    self._set(node, ALIVE, incarnation, now)
            elif status == SUSPECT:
                if peer.status == SUSPECT and incarnation == peer.incarnation:
                    self._set(node, SUSPECT, incarnation, now, by=source)
                elif incarnation > peer.incarnation or (
                    incarnation == peer.incarnation and peer.status == ALIVE
                ):
                    self._set(node, SUSPECT, incarnation, now, by=source)
            elif status == DOWN:
                if incarnation >= peer.incarnation and peer.status != DOWN:
                    self._set(node, DOWN, incarnation, now)

    def _piggyback(self, to: bytes) -> list[list[Any]]:
        """Updates to carry: first what concerns the recipient (Lifeguard's buddy
        system), then those sent the fewest times."""
        chosen: list[list[Any]] = []
        mine = self.peers.get(to)
        if mine is not None and mine.status != ALIVE:
            chosen.append([to, mine.status, mine.incarnation])
        ordered = sorted(self._updates.items(), key=lambda kv: -kv[1][2])
        for node, entry in ordered:
            if len(chosen) >= MAX_UPDATES:
                break
            if node == to and chosen:
                continue
            chosen.append([node, entry[0], entry[1]])
            entry[2] -= 1
        self._updates = {n: e for n, e in self._updates.items() if e[2] > 0}
        return chosen
