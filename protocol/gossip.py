"""Anti-entropy gossip of the directory, in the manner of Scuttlebutt reconciliation
(the version held per record key; see directory.py for why per key).

Every ``interval`` the engine picks ``fanout`` random admitted peers and sends each the
root hash of its digest. A peer with the same root answers nothing: in steady state a
round costs one small signed message per peer. Otherwise they reconcile push-pull, by
ranges when the node that sent the syn lists ``RANGES_CAPABILITY`` in its node record
(reconcile.py: the bytes grow with what differs, not with the directory):

    A ── gossip_syn {root} ──────────────────────────▶ B   (roots differ)
    A ◀── gossip_ranges {1, fingerprints of B's ranges} B
    A ── gossip_ranges {2, A's answer: sub-ranges} ──▶ B   (only where they differ)
      ...                                                   (log16 of the directory)
    A ◀── gossip_ranges {k, records A lacks, want} ──── B   (where a range was listed)
    A ── gossip_ranges {k+1, records B wants} ───────▶ B

and otherwise (a node of an earlier version, or not known to list it yet) with the whole
digest, as before:

    A ◀── gossip_digest {root, digest} ──────────────── B
    A ── gossip_records {records B lacks, digest A} ──▶ B
    A ◀── gossip_records {records A lacks} ──────────── B

Records are sent within ``budget`` bytes, certificates first, so a truncated exchange
leaves both sides consistent (every record stands alone, nothing arrives before what
vouches for it) and the next round goes on from there.
Sans-IO: the caller sends what ``handle_timer`` and ``receive`` return and feeds back what
arrives; time is ``now`` in ms.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from protocol.directory import Directory, decode_digest
from protocol.errors import LocalProtocolError
from protocol.reconcile import MAX_ROUNDS, parse_ranges, parse_want
from protocol.sampling import Rng, jitter, sample


@dataclass(frozen=True, kw_only=True)
class GossipConfig:
    """Defaults for 256 kbit/s uplinks and 300 ms RTT: a round every 30 s to 2 peers, and
    at most 64 KiB of records per message (2 s of a 256 kbit/s link)."""

    interval_ms: int = 30_000
    fanout: int = 2
    budget: int = 64 * 1024
    ranges: bool = True
    """Answer a syn from a node that lists ``RANGES_CAPABILITY`` by range-based
    reconciliation; False: always with the whole digest (the engine of protocol version
    1 before it, kept as the baseline of the benchmarks)."""

    def __post_init__(self) -> None:
        if self.interval_ms < 100 or self.fanout < 1 or self.budget < 4096:
            raise LocalProtocolError("gossip interval >= 100 ms, fanout >= 1, budget >= 4 KiB")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for the caller to send: envelope kind and body, to ``peer`` (node id)."""

    peer: bytes
    kind: str
    body: dict[str, Any]


GOSSIP_KINDS = ("gossip_syn", "gossip_digest", "gossip_records", "gossip_ranges")
RANGES_CAPABILITY = "gossip-ranges"
"""Listed in a node record's ``capabilities``: the node takes part in range-based
reconciliation (``gossip_ranges``, SPEC.md §8.3)."""


class PeerBudget:
    """A token bucket per peer, sans-IO: ``allow(peer, now)`` spends one token of the
    peer's bucket (``burst`` at most, ``refill`` tokens every ``per_ms``), False when it
    is empty. At most ``max_peers`` buckets are kept: past it, the full ones (peers
    that asked nothing lately) are forgotten first, then all."""

    def __init__(self, *, burst: int, refill: int, per_ms: int, max_peers: int = 4096) -> None:
        if burst < 1 or refill < 1 or per_ms < 1:
            raise LocalProtocolError("a budget has a burst, a refill and a period above 0")
        self.burst, self.rate, self.max_peers = burst, refill / per_ms, max_peers
        self._buckets: dict[bytes, tuple[float, int]] = {}  # peer -> (tokens, at)

    def allow(self, peer: bytes, now: int) -> bool:
        tokens, at = self._buckets.get(peer, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0, now - at) * self.rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        if peer not in self._buckets and len(self._buckets) >= self.max_peers:
            self._forget(now)
        self._buckets[peer] = (tokens, now)
        return allowed

    def _forget(self, now: int) -> None:
        full = [
            p
            for p, (tokens, at) in self._buckets.items()
            if tokens + max(0, now - at) * self.rate >= self.burst
        ]
        for p in full:
            del self._buckets[p]
        if len(self._buckets) >= self.max_peers:
            self._buckets.clear()


# Range reconciliation a peer may ask of this node (its syns and gossip_ranges
# messages): four whole exchanges at once, two more every gossip interval. An honest
# peer opens about one exchange with a given node per interval (fanout 2 among all).
EXCHANGE_BURST = 4 * MAX_ROUNDS
EXCHANGE_REFILL = 2 * MAX_ROUNDS
RATED_KINDS = ("gossip_syn", "gossip_ranges")


class GossipEngine:
    def __init__(
        self,
        *,
        me: bytes,
        directory: Directory,
        rng: Rng,
        now: int,
        config: GossipConfig | None = None,
    ) -> None:
        self.me = me
        self.directory = directory
        self.config = config or GossipConfig()
        self._rng = rng
        self._next = now + jitter(rng, self.config.interval_ms, 0.5)
        self.stats: Counter[str] = Counter()
        self.budget = PeerBudget(
            burst=EXCHANGE_BURST, refill=EXCHANGE_REFILL, per_ms=self.config.interval_ms
        )

    def get_timer(self) -> int:
        """When ``handle_timer`` wants to run next (ms)."""
        return self._next

    def peers(self, now: int) -> list[bytes]:
        """The admitted nodes but this one, in order."""
        return [n for n in self.directory.view(now).admitted_in_order if n != self.me]

    def handle_timer(self, now: int) -> list[Outgoing]:
        if now < self._next:
            return []
        self._next = now + jitter(self._rng, self.config.interval_ms)
        self.directory.prune(now)
        # ``fanout`` others, uniformly: one more drawn in case this node is among them
        # (the admitted list is the view's, shared, not copied per node)
        fanout = self.config.fanout
        admitted = self.directory.view(now).admitted_in_order
        chosen = [n for n in sample(self._rng, admitted, fanout + 1) if n != self.me][:fanout]
        root = self.directory.root()
        self.stats["rounds"] += 1
        return [Outgoing(peer, "gossip_syn", {"root": root}) for peer in chosen]

    def receive(self, peer: bytes, kind: str, body: dict[str, Any], now: int) -> list[Outgoing]:
        """Handle a gossip message from ``peer`` (whose envelope the caller verified);
        return the reply, if any. Messages from nodes not admitted are dropped."""
        if not self.directory.view(now).is_admitted(peer):
            self.stats["refused_unadmitted"] += 1
            return []
        self.stats[f"received_{kind}"] += 1
        if kind in RATED_KINDS and not self.budget.allow(peer, now):
            self.stats["reconcile_throttled"] += 1  # asked too often: not answered
            return []
        if kind == "gossip_syn":
            root = self.directory.root()
            if body["root"] == root:
                self.stats["in_sync"] += 1
                return []
            if self.config.ranges and self.speaks_ranges(peer, now):
                self.stats["ranges_opened"] += 1
                opening = [r.to_wire() for r in self.directory.range_index().opening()]
                body = {"round": 1, "ranges": opening, "want": b"", "records": []}
                return [Outgoing(peer, "gossip_ranges", body)]
            mine = self.directory.encoded_digest()
            return [Outgoing(peer, "gossip_digest", {"root": root, "digest": mine})]
        if kind == "gossip_ranges":
            return self._ranges(peer, body, now)
        if kind == "gossip_digest":
            theirs = decode_digest(body["digest"])
            mine = self.directory.encoded_digest()
            records = self.directory.missing_for(theirs, self.config.budget - len(mine))
            return [Outgoing(peer, "gossip_records", {"records": records, "digest": mine})]
        if kind == "gossip_records":
            outcome = self.directory.add_many(body["records"], now)
            self.stats.update({f"records_{k}": v for k, v in outcome.items()})
            if body["digest"] is None:
                return []
            missing = self.directory.missing_for(decode_digest(body["digest"]), self.config.budget)
            if not missing:
                return []
            return [Outgoing(peer, "gossip_records", {"records": missing, "digest": None})]
        raise LocalProtocolError(f"not a gossip message: {kind}")

    def speaks_ranges(self, peer: bytes, now: int) -> bool:
        """Whether ``peer``'s node record lists ``RANGES_CAPABILITY``."""
        record = self.directory.view(now).nodes.get(peer)
        return record is not None and RANGES_CAPABILITY in record.body["capabilities"]

    def _ranges(self, peer: bytes, body: dict[str, Any], now: int) -> list[Outgoing]:
        """One step of a range-based exchange: check the message whole (MalformedError),
        take its records in, answer its ranges, send the records the peer lacks or
        wants, and ask for those this node lacks. Nothing is answered once there is
        nothing left to say, nor past ``MAX_ROUNDS`` messages."""
        ranges, want = parse_ranges(body["ranges"]), parse_want(body["want"])
        if body["records"]:
            outcome = self.directory.add_many(body["records"], now)
            self.stats.update({f"records_{k}": v for k, v in outcome.items()})
        step = body["round"]
        if step >= MAX_ROUNDS:
            self.stats["ranges_cut"] += 1
            return []
        if step == MAX_ROUNDS - 1:  # the last answer: the records asked for, no more
            ranges = []
        answer = self.directory.range_index().answer(ranges)
        records = self.directory.records_for([*want, *answer.push], self.config.budget)
        if answer.settled and not answer.want and not records:
            self.stats["ranges_settled"] += 1
            return []
        reply = {
            "round": step + 1,
            "ranges": [r.to_wire() for r in answer.ranges],
            "want": b"".join(sorted(answer.want)) if step + 1 < MAX_ROUNDS else b"",
            "records": records,
        }
        return [Outgoing(peer, "gossip_ranges", reply)]
