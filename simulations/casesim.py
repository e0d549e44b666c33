"""Cases over a modelled network, in virtual time, with the node's own engines: the case
coordinator of ``protocol/coordinator.py`` routes each case, counts the pair's weekly
quota, sets due dates and escalates overdue cases at their deadline (as the sender's
node does), the state machine of ``protocol/cases.py`` decides each step, and
``protocol/transfer.py``'s ``Upload`` (window, acknowledgements, failures) and
``Backoff`` move every bundle, chunk by chunk, over links with the bandwidth, latency,
loss, power cuts and regional cuts of the scenario. Only the links are modelled: a
chunk takes its size over the slower of the sender's uplink and the receiver's downlink
(each shared by all that node's transfers), plus the latency between their regions (and
a node's own, e.g. a satellite hop), after the sending node's own work on the bundle
(``delivery_overhead_s``: outbox, offer, manifest, receipt, as a node measured it; each
delivery draws one of the measured values). Packet loss lowers the rate as it lowers TCP's
(Mathis et al. 1997: at most MSS / (RTT * sqrt(2p/3)), capped by the line and by the
node's daytime upload cap); a chunk request fails with either end's chunk loss rate
(noticed a round trip later, then sent again), and when either end is down (power cut,
churn, a ``node_down`` event) or cut off. A relay holds mail up to its quota; a deposit
beyond it waits; a node behind NAT lists several relays and mail goes to the first one
up. Readers sign reports only when they read (their days and hours); a group that
assigns has its coordinator give each case to the least loaded member. A reader with a
capacity reads in sessions, at most so many cases a session, oldest first: their own
cases (their pair's, those assigned to them), then their group's pool; the delay grows
with the load.

What people do is modelled here (who claims first, when a coordinator assigns, when a
reader reads or accepts), and one thing the node does is simplified: a study goes only
to the node where it will be read (the node seals a group's case for every node of the
group's readers, and an overdue pair's case for every node of the reader's group).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from protocol import cases as machine
from protocol.bundle import choose_chunk_size
from protocol.cases import Case, Role, Routing, State
from protocol.coordinator import (
    Coordinator,
    GroupRoute,
    PairRoute,
    Route,
    counts_toward_quota,
    deadline,
    week_count,
)
from protocol.errors import CaseRefused
from protocol.transfer import Backoff, Upload
from simulations.bandwidth import background_kbit_s
from simulations.clock import EventLoop
from simulations.network import seeded_rng
from simulations.scenario import ListedCase, ReaderSpec, Scenario, SenderSpec, StudySpec

HOUR = 3_600_000
DAY = 24 * HOUR
TAG = 16  # each chunk's authentication tag
MSS = 1460  # bytes of a TCP segment (Ethernet MTU less IP and TCP headers)
REPORT_BYTES = 24 * 1024  # a report and its signatures, sealed
ACCEPT_HOURS = (1.0, 24.0)  # a reader asked to take a case beyond the pair's quota


@dataclass(frozen=True)
class Layout:
    """The chunks of a bundle that the simulator does not seal (a ChunkLayout)."""

    size: int
    chunk_size: int

    @property
    def chunk_count(self) -> int:
        return max(1, -(-self.size // self.chunk_size))

    def ciphertext_chunk_size(self, index: int) -> int:
        last = self.size - (self.chunk_count - 1) * self.chunk_size
        return (self.chunk_size if index < self.chunk_count - 1 else last) + TAG


@dataclass
class Link:
    """A node's uplink and downlink: each carries one chunk at a time, in turn."""

    up_bps: float
    down_bps: float
    up_free: int = 0
    down_free: int = 0
    sent: int = 0
    received: int = 0


@dataclass
class Transfer:
    source: str
    target: str
    upload: Upload
    on_done: Any
    attempts: int = 0
    generation: int = 0  # chunks sent before a cut do not count after it
    cables: tuple[int, ...] = ()  # the shared links it crosses (indexes in the scenario's)


@dataclass
class Outcome:
    """What the run produced, for the summary, the report and the plots."""

    cases: list[dict[str, Any]] = field(default_factory=list)
    backlog: list[tuple[float, int, int]] = field(default_factory=list)  # day, in transit, unread
    link_bytes: dict[str, tuple[int, int]] = field(default_factory=dict)
    chunk_failures: int = 0
    chunks_lost: int = 0
    relay_full_waits: int = 0
    relay_peak: dict[str, int] = field(default_factory=dict)  # most bytes held at once
    relay_fallbacks: int = 0  # mail left at a later relay because the first was down
    cable_bytes: dict[str, list[int]] = field(default_factory=dict)  # per cable, per day
    link_use: dict[str, Counter[int]] = field(default_factory=dict)
    """Per node, the bytes its uplink sent in each hour of the run (hour 0 first): a
    chunk's bytes spread over the time it took on the line."""
    background_kbit_s: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per node: its gossip and liveness traffic, kbit/s over the run (``bandwidth``)."""
    end_ms: int = 0


class CaseWorld:
    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.random = random.Random(self.seed)
        self.rng = seeded_rng(f"backoff/{self.seed}")
        self.loop = EventLoop(0)
        self.end = int(scenario.days * DAY)
        self.region = {n.name: n.region for n in scenario.nodes}
        self.links = {n.name: Link(n.up_kbit * 125.0, n.down_kbit * 125.0) for n in scenario.nodes}
        self.down = {
            n.name: _merged(
                self._outages(
                    n.name, "power", n.power_cuts_per_month / (30 * DAY), n.power_cut_hours, HOUR
                )
                + self._outages(n.name, "away", n.leaves_per_year / (365 * DAY), n.away_days, DAY)
                + [
                    (int(e.start_day * DAY), int(e.end_day * DAY))
                    for e in scenario.node_down
                    if e.node == n.name
                ]
            )
            for n in scenario.nodes
        }
        self.relays = {n.name: n.relays for n in scenario.nodes if n.nat}
        self.node = {n.name: n for n in scenario.nodes}
        self.held = {n.name: 0 for n in scenario.nodes}  # bytes held as a relay
        self.loss_rng = random.Random(f"{self.seed}/loss")
        self.overhead_rng = random.Random(f"{self.seed}/overhead")
        self.cut = [
            (set(c.nodes), int(c.start_day * DAY), int((c.start_day + c.days) * DAY))
            for c in scenario.cuts
        ]
        self.readers = {r.name: r for r in scenario.readers}
        self.cases: dict[bytes, Case] = {}
        self.meta: dict[bytes, dict[str, Any]] = {}
        self.backoff = Backoff(base_ms=5_000, cap_ms=HOUR)
        self.outcome = Outcome()
        self.outcome.link_use = {n.name: Counter() for n in scenario.nodes}
        self.relayed = 0
        self._coordinators: dict[str, Coordinator] = {}  # per sender's node
        self._routes = [self._route(s, k) for k, s in enumerate(scenario.senders)]
        self._pair_cases: dict[int, list[bytes]] = {}  # per sender, this week's (the quota)
        self._timers: dict[bytes, int] = {}  # per case, the deadline a tick waits for
        self.queue: dict[str, list[bytes]] = {}  # a reader with a capacity: their cases
        self.pool: dict[str, list[bytes]] = {}  # a group's cases waiting for such a reader
        self._rates: dict[tuple[str, str], float] = {}  # bytes/s TCP keeps between two nodes
        # per cable, the transfers across it now, by (source, target)
        self.crossing: list[Counter[tuple[str, str]]] = [Counter() for _ in scenario.cables]
        self.outcome.cable_bytes = {c.name: [0] * (int(scenario.days) + 1) for c in scenario.cables}
        self.evaluations = random.Random(f"{self.seed}/evaluations")

    # --- the model of the links ---------------------------------------------------------

    def _outages(
        self, node: str, why: str, rate_per_ms: float, span: tuple[float, float], unit: int
    ) -> list[tuple[int, int]]:
        """Intervals [start, end) when ``node`` is away (a Poisson process of ``rate``,
        each lasting ``span`` units): power cuts, and churn."""
        rnd = random.Random(f"{self.seed}/{why}/{node}")
        out: list[tuple[int, int]] = []
        if rate_per_ms <= 0:
            return out
        t = 0.0
        while True:
            t += rnd.expovariate(rate_per_ms)
            if t >= self.end:
                return out
            out.append((int(t), int(t + rnd.uniform(*span) * unit)))

    def is_down(self, node: str, now: int) -> bool:
        cuts = self.down[node]
        i = bisect.bisect_right(cuts, (now, 2**62)) - 1
        return i >= 0 and cuts[i][0] <= now < cuts[i][1]

    def up_share(self, node: str) -> float:
        """The share of the run ``node`` was up."""
        down = sum(min(end, self.end) - start for start, end in self.down[node] if start < self.end)
        return 1 - down / self.end if self.end else 1.0

    def reachable(self, a: str, b: str, now: int) -> bool:
        if self.is_down(a, now) or self.is_down(b, now):
            return False
        for nodes, start, end in self.cut:
            if start <= now < end and ((a in nodes) != (b in nodes)):
                return False
        return True

    # --- transfers, with the node's Upload engine ----------------------------------------

    def send(self, source: str, target: str, size: int, on_done: Any) -> None:
        """A bundle from ``source`` to ``target``, once ``source`` has done its own work
        on it (a draw of its ``delivery_overhead_s``; none when it gives none, and then
        no draw is made: such scenarios run as they always did)."""
        overhead = self.node[source].delivery_overhead_s
        if not overhead:
            self._send(source, target, size, on_done)
            return
        took = round(self.overhead_rng.choice(overhead) * 1000)
        self.loop.at(
            self.loop.now + took, functools.partial(self._send, source, target, size, on_done)
        )

    def _send(self, source: str, target: str, size: int, on_done: Any) -> None:
        """Directly, or, to a node behind NAT, deposited at the first of its relays that
        is up (the first listed if none is), from which it pulls it."""
        relay = self.relay_for(source, target, self.loop.now)
        if relay:
            self.relayed += 1
            self._deposit(source, relay, target, size, on_done)
        else:
            self._transfer(source, target, size, on_done)

    def relay_for(self, source: str, target: str, now: int) -> str:
        """The relay mail from ``source`` to ``target`` is left at ("": sent directly)."""
        listed = self.relays.get(target, ())
        if not listed or source in listed:
            return ""  # no relay, or the source is one of them: it holds the mail itself
        for k, relay in enumerate(listed):
            if not self.is_down(relay, now):
                self.outcome.relay_fallbacks += int(k > 0)
                return relay
        return listed[0]

    def _deposit(self, source: str, relay: str, target: str, size: int, on_done: Any) -> None:
        """Mail for ``target`` left at ``relay``, when its quota has room (else the
        sender tries again an hour later); the relay deletes it once delivered."""
        quota = self.node[relay].relay_quota_mb * 1_000_000
        if self.held[relay] + size > quota:
            self.outcome.relay_full_waits += 1
            self.loop.at(
                self.loop.now + HOUR,
                functools.partial(self._deposit, source, relay, target, size, on_done),
            )
            return
        self.held[relay] += size
        peak = self.outcome.relay_peak
        peak[relay] = max(peak.get(relay, 0), self.held[relay])

        def forwarded(at: int) -> None:
            self.held[relay] -= size
            on_done(at)

        self._transfer(
            source, relay, size, lambda _at: self._transfer(relay, target, size, forwarded)
        )

    def _transfer(self, source: str, target: str, size: int, on_done: Any) -> None:
        layout = Layout(size, choose_chunk_size(size))
        cables = tuple(
            k for k, c in enumerate(self.scenario.cables) if c.crossed_by(source, target)
        )
        for k in cables:
            self.crossing[k][source, target] += 1
        t = Transfer(source, target, Upload(layout), on_done, cables=cables)
        self._pump(t)

    def _pump(self, t: Transfer) -> None:
        now = self.loop.now
        if not self.reachable(t.source, t.target, now):
            self._retry(t)
            return
        up, down = self.links[t.source], self.links[t.target]
        latency = self.latency(t.source, t.target)
        for index in t.upload.next_sends(now):
            nbytes = t.upload.manifest.ciphertext_chunk_size(index)
            start = max(now, up.up_free, down.down_free)
            rate = self.rate(t.source, t.target, start)
            for k in t.cables:
                rate = min(rate, self.cable_share(k, start))
            took = math.ceil(nbytes / rate * 1000)
            up.up_free = down.down_free = start + took
            arrive = functools.partial(
                self._arrived, t, index, nbytes, t.generation, (start, start + took)
            )
            self.loop.at(start + took + latency, arrive)

    def rate(self, source: str, target: str, at: int) -> float:
        """Bytes per second from ``source`` to ``target`` at ``at``: the slower line, the
        source's daytime upload cap, and TCP's rate under the two lines' packet loss."""
        key = (source, target)
        found = self._rates.get(key)
        if found is None:
            found = min(self.links[source].up_bps, self.links[target].down_bps)
            kept = (1 - self.node[source].loss) * (1 - self.node[target].loss)
            rtt_s = 2 * self.latency(source, target) / 1000
            found = min(found, mathis_rate(1 - kept, rtt_s))
            self._rates[key] = found
        spec = self.node[source]
        if spec.day_up_kbit:
            hour = (at % DAY) / HOUR
            if spec.day_hours[0] <= hour < spec.day_hours[1]:
                return min(found, spec.day_up_kbit * 125.0)
        return found

    def cable_share(self, k: int, at: int) -> float:
        """Bytes per second a transfer gets of cable ``k`` at ``at``: what is left of its
        capacity on that day (its degradation schedule), shared fairly among the flows
        across it. A node's transfers take its uplink, and a receiver's its downlink,
        one chunk at a time: at most as many chunks cross the cable at once as there
        are nodes sending across it, or receiving, whichever is fewer."""
        cable = self.scenario.cables[k]
        pairs = self.crossing[k]
        flows = min(len({s for s, _ in pairs}), len({t for _, t in pairs}))
        return cable.capacity_kbit * 125.0 * cable.left(at / DAY) / max(1, flows)

    def latency(self, a: str, b: str) -> int:
        """One way, between two nodes: their regions', and their own."""
        extra = self.node[a].extra_latency_ms + self.node[b].extra_latency_ms
        return self.scenario.latency(self.region[a], self.region[b]) + extra

    def _lost(self, t: Transfer) -> bool:
        kept = (1 - self.node[t.source].chunk_loss) * (1 - self.node[t.target].chunk_loss)
        return kept < 1 and self.loss_rng.random() >= kept

    def _used(self, node: str, on_line: tuple[int, int], nbytes: int) -> None:
        """``nbytes`` sent by ``node``'s uplink from ``on_line[0]`` to ``on_line[1]`` (ms),
        spread over the hours of that span in proportion (whole bytes, none lost)."""
        start, end = on_line
        use = self.outcome.link_use[node]
        first, last = start // HOUR, max(start, end - 1) // HOUR
        if first == last:  # most chunks
            use[first] += nbytes
            return
        left = nbytes
        for hour in range(first, last):
            share = (
                nbytes * (min(end, (hour + 1) * HOUR) - max(start, hour * HOUR)) // (end - start)
            )
            use[hour] += share
            left -= share
        use[last] += left

    def _arrived(
        self, t: Transfer, index: int, nbytes: int, generation: int, on_line: tuple[int, int]
    ) -> None:
        now = self.loop.now
        if generation != t.generation or index not in t.upload.in_flight:
            return  # sent before a cut: sent again since
        if self._lost(t):  # no answer: the sender gives up on it a round trip later
            self.outcome.chunks_lost += 1
            self.links[t.source].sent += nbytes
            self._used(t.source, on_line, nbytes)
            self.loop.at(
                now + 2 * self.latency(t.source, t.target),
                functools.partial(self._timed_out, t, index, generation),
            )
            return
        if not self.reachable(t.source, t.target, now):
            self.outcome.chunk_failures += 1
            t.upload.on_failure(index, "cut")
            t.upload.reset_in_flight()
            self._retry(t)
            return
        t.upload.on_ack(index, now)
        self.links[t.source].sent += nbytes
        self._used(t.source, on_line, nbytes)
        self.links[t.target].received += nbytes
        for k in t.cables:
            self.outcome.cable_bytes[self.scenario.cables[k].name][now // DAY] += nbytes
        t.attempts = 0
        if t.upload.done:
            for k in t.cables:
                self.crossing[k][t.source, t.target] -= 1
                if not self.crossing[k][t.source, t.target]:
                    del self.crossing[k][t.source, t.target]
            t.on_done(now)
        elif len(t.upload.in_flight) < t.upload.window:
            self._pump(t)

    def _timed_out(self, t: Transfer, index: int, generation: int) -> None:
        if generation != t.generation or index not in t.upload.in_flight:
            return
        t.upload.on_failure(index, "lost")
        self._pump(t)

    def _retry(self, t: Transfer) -> None:
        t.upload.reset_in_flight()
        t.generation += 1
        t.attempts += 1
        self.loop.at(
            self.loop.now + self.backoff.delay(t.attempts, self.rng), lambda: self._pump(t)
        )

    # --- cases, with the node's coordinator and state machine ---------------------------

    def _study(self) -> tuple[StudySpec, int]:
        mix = self.scenario.studies
        chosen = self.random.choices(mix, weights=[s.weight for s in mix])[0]
        return chosen, int(self.random.uniform(*chosen.mb) * 1_000_000)

    def start(self) -> None:
        for listed in self.scenario.case_list or ():
            if listed.submitted_ms < self.end:
                sender = self.scenario.senders[listed.sender]
                self.loop.at(
                    listed.submitted_ms,
                    functools.partial(self._submit, sender, listed.sender, listed),
                )
        for k, sender in enumerate(self.scenario.senders):
            if self.scenario.case_list is not None:
                break  # the list replaces random arrivals
            rnd = random.Random(f"{self.seed}/cases/{k}/{sender.node}")
            t = 0.0
            while sender.cases_per_week > 0:
                t += rnd.expovariate(sender.cases_per_week / (7 * DAY))
                if t >= self.end:
                    break
                self.loop.at(int(t), functools.partial(self._submit, sender, k))
        for day in range(int(self.scenario.days) + 1):
            self.loop.at(day * DAY, self._sample)
        for reader in self.scenario.readers:
            if reader.has_capacity:
                self._next_session(reader, 0, 0)

    def _coordinator(self, node: str) -> Coordinator:
        """The coordinator of a sender's node (which decides that node's cases)."""
        found = self._coordinators.get(node)
        if found is None:
            found = Coordinator(node=node.encode(), default_delay_hours=self.scenario.delay_hours)
            self._coordinators[node] = found
        return found

    def _route(self, sender: SenderSpec, k: int) -> Route:
        """What the directory says of a sender's pair or group, from the scenario."""
        if sender.pair:
            reader = self.readers[sender.pair]
            return PairRoute(
                pair_id=f"pair/{k}".encode(),
                sender=f"sender/{k}".encode(),
                reader=reader.name.encode(),
                weekly_quota=sender.weekly_quota or None,  # 0 in a scenario: no quota
                delay_hours=self.scenario.delay_hours,
                status="active",
                reader_node=reader.node.encode(),
                group=reader.group.encode(),
                group_nodes=self._reading_nodes(reader.group),
            )
        return GroupRoute(
            group=sender.group.encode(), community=False, nodes=self._reading_nodes(sender.group)
        )

    def _reading_nodes(self, group: str) -> tuple[bytes, ...]:
        return tuple(sorted({r.node.encode() for r in self.scenario.readers if r.group == group}))

    def _keep(self, case_id: bytes, case: Case) -> None:
        """The case after a step; its next deadline gets a tick (as the node's loop
        sleeps until its next deadline)."""
        self.cases[case_id] = case
        when = deadline(case)
        if when is not None and self._timers.get(case_id) != when:
            self._timers[case_id] = when
            self.loop.at(when, functools.partial(self._tick, case_id))

    def _decide(self, case_id: bytes, event: str, by: str, role: Role, **kwargs: Any) -> bool:
        """A person's request, decided by the case's sender's node; False if refused
        (someone else has the case)."""
        meta = self.meta[case_id]
        try:
            step = self._coordinator(meta["sender_node"]).decide(
                self.cases[case_id],
                event,
                by=by.encode(),
                roles=frozenset({role}),
                now=self.loop.now,
                **kwargs,
            )
        except CaseRefused:
            return False
        self._keep(case_id, step.case)
        return True

    def _when_at(self, case_id: bytes, node: str, then: Any) -> None:
        """``then(at)`` once the case's study is at ``node``: now if it is there; when it
        arrives if it is on its way; else it is sent there first."""
        meta = self.meta[case_id]
        if node in meta["arrived"]:
            then(self.loop.now)
            return
        waiting = meta["waiting"].setdefault(node, [])
        waiting.append(then)
        if node in meta["holders"]:
            return
        meta["holders"].add(node)

        def arrived(at: int) -> None:
            meta["arrived"].add(node)
            for action in meta["waiting"].pop(node, []):
                action(at)

        self.send(meta["sender_node"], node, meta["size"], arrived)

    def _submit(self, sender: SenderSpec, k: int, listed: ListedCase | None = None) -> None:
        """The sender's node routes the case (the pair's quota counted as the node
        counts it). The simulator sends the study only to the node of the reader who
        will read it, one of the nodes the coordinator seals it for: the node seals a
        group's case for every node where a reader of the group reads."""
        now = self.loop.now
        case_id = hashlib.sha256(f"{self.seed}/{len(self.cases)}".encode()).digest()[:16]
        route = self._routes[k]
        pairs = self._pair_cases.setdefault(k, [])
        pairs[:] = [c for c in pairs if counts_toward_quota(self.cases[c], now)]
        step = self._coordinator(sender.node).submit(
            case_id=case_id,
            sender=f"sender/{k}".encode(),
            route=route,
            this_week=week_count((self.cases[c] for c in pairs), now),
            over_quota=True,  # a simulated sender always sends; the reader accepts
            delay_hours=self.scenario.delay_hours,
            now=now,
        )
        if sender.pair:
            pairs.append(case_id)
        if listed is None:
            kind, size = self._study()
        else:
            kind, size = StudySpec(listed.kind, 1.0, (0.0, 0.0)), listed.size
        group = self.scenario.group(sender.group) if not sender.pair else None
        assigned = group is not None and group.routing == "assign"
        if group is not None and assigned:  # the images go to the coordinator's node
            reader = self.readers[group.coordinator]
        else:
            reader = self._reader_for(sender)
        self.meta[case_id] = {
            "kind": kind.kind,
            "size": size,
            "sender_node": sender.node,
            "route": route,
            "reader": reader.name,
            "assign": assigned,
            "pair": f"{sender.node} -> {sender.pair or 'group ' + sender.group}",
            "holders": set(),  # nodes the study was sent to
            "arrived": set(),  # nodes it reached
            "waiting": {},  # node -> what waits for the study there
        }
        self._keep(case_id, step.case)
        self._when_at(case_id, reader.node, lambda at: self._delivered(case_id, reader.node, at))

    def _reader_for(self, sender: Any) -> ReaderSpec:
        if sender.pair:
            return self.readers[sender.pair]
        members = sorted(
            (r for r in self.scenario.readers if r.group == sender.group), key=lambda r: r.name
        )
        # the first to claim it: a member who reads soonest (among equals, any of them)
        now = self.loop.now
        soonest = min(available_from(r, now) for r in members)
        return self.random.choice([r for r in members if available_from(r, now) == soonest])

    def _delivered(self, case_id: bytes, node: str, now: int) -> None:
        meta = self.meta[case_id]
        coordinator = self._coordinator(meta["sender_node"])
        step = coordinator.delivered(self.cases[case_id], by=node.encode(), now=now)
        self._keep(case_id, step.case)
        first = self.readers[meta["reader"]]
        if meta["assign"]:
            group = self.scenario.group(first.group)
            hours = self.random.uniform(*group.assign_hours)
            when = available_from(first, now + int(hours * HOUR))
            self.loop.at(when, functools.partial(self._assign, case_id, first))
            return
        if first.has_capacity and step.case.routing is not Routing.PAIR:
            self._to_pool(case_id, first.group)  # the first to open it in a session
            return
        self._read(case_id, first, now)

    def _assign(self, case_id: bytes, coordinator: ReaderSpec) -> None:
        """The coordinator gives the case to the member with the fewest cases open, then
        the fewest given this week, then by name; the images follow if that member reads
        on another node."""
        now = self.loop.now
        case = self.cases[case_id]
        if case.state is not State.DELIVERED:
            return
        open_cases: dict[bytes, int] = {}
        for c in self.cases.values():
            if c.state is State.ASSIGNED and c.reader is not None:
                open_cases[c.reader] = open_cases.get(c.reader, 0) + 1
        week: dict[str, int] = {}
        for m in self.meta.values():
            if m.get("assigned", -1) > now - 7 * DAY:
                week[m["reader"]] = week.get(m["reader"], 0) + 1
        members = [r for r in self.scenario.readers if r.group == coordinator.group]
        chosen = min(
            members,
            key=lambda r: (open_cases.get(r.name.encode(), 0), week.get(r.name, 0), r.name),
        )
        if not self._decide(
            case_id, "assign", coordinator.name, Role.COORDINATOR, reader=chosen.name.encode()
        ):
            return
        self.meta[case_id]["assigned"] = now
        self.meta[case_id]["reader"] = chosen.name
        self._when_at(case_id, chosen.node, lambda at: self._read(case_id, chosen, at))

    def _read(self, case_id: bytes, reader: ReaderSpec, now: int) -> None:
        """``reader`` takes the case (a pair's is theirs at delivery, or once they accept
        it beyond the week's quota; a group's they claim), and reads it in their time."""
        case = self.cases[case_id]
        asked = case.routing is Routing.PAIR and case.target == reader.name.encode()
        if case.state is State.DELIVERED and case.needs_acceptance and asked:
            hours = self.random.uniform(*ACCEPT_HOURS)  # the reader answers the question
            when = available_from(reader, now + int(hours * HOUR))
            self.loop.at(when, functools.partial(self._accept, case_id, reader))
            return
        if case.state is State.DELIVERED and not self._decide(
            case_id, "claim", reader.name, Role.MEMBER
        ):
            return  # someone else took it first
        self.meta[case_id]["reader"] = reader.name
        if reader.has_capacity:  # in their queue, read in a session
            self.queue.setdefault(reader.name, []).append(case_id)
            return
        hours = self.random.uniform(*reader.reading_hours)
        when = available_from(reader, now + int(hours * HOUR))  # signed when they read
        self.loop.at(when, functools.partial(self._report, case_id, reader))

    def _accept(self, case_id: bytes, reader: ReaderSpec) -> None:
        if self._decide(case_id, "accept", reader.name, Role.READER):
            self._read(case_id, reader, self.loop.now)

    def _tick(self, case_id: bytes) -> None:
        """The sender's node's deadline for the case: the coordinator escalates it if it
        is still unread; another reader of the group takes it (the late one cannot, by
        the table's rule), on their node (the study is sent there if it is not)."""
        now = self.loop.now
        self._timers.pop(case_id, None)
        meta = self.meta[case_id]
        step = self._coordinator(meta["sender_node"]).tick(
            self.cases[case_id],
            meta["route"],
            holders=[n.encode() for n in meta["holders"]],
            now=now,
        )
        self._keep(case_id, step.case)
        if not step.effects:
            return  # not overdue (reported, or given a later due date)
        route = meta["route"]
        group = (route.group or b"") if isinstance(route, PairRoute) else route.group
        others = sorted(
            (
                r
                for r in self.scenario.readers
                if r.group.encode() == group and r.name.encode() not in step.case.passed_over
            ),
            key=lambda r: r.name,
        )
        if not others:
            return  # nobody else in the group: it waits in the pool (and escalates again)
        chosen = self.random.choice(others)
        if chosen.has_capacity:  # back in the group's pool, for the next session
            self._to_pool(case_id, chosen.group)
            return
        self._when_at(case_id, chosen.node, lambda at: self._read(case_id, chosen, at))

    # --- readers with a capacity: sessions and queues -----------------------------------

    def _to_pool(self, case_id: bytes, group: str) -> None:
        pool = self.pool.setdefault(group, [])
        if case_id not in pool:
            pool.append(case_id)

    def _next_session(self, reader: ReaderSpec, n: int, after: int) -> None:
        """Session ``n`` of ``reader``: sessions spread evenly over the week (one a
        reading day unless the scenario says), from a phase of their own, each moved to
        when they read and never before the previous one has ended."""
        per_week = reader.sessions_per_week or len(reader.days)
        interval = 7 * DAY / per_week
        phase = random.Random(f"{self.seed}/sessions/{reader.name}").uniform(0, interval)
        when = available_from(reader, max(after, int(phase + n * interval)))
        if when < self.end:
            self.loop.at(when, functools.partial(self._session, reader, n))

    def _session(self, reader: ReaderSpec, n: int) -> None:
        """``reader`` reads at most ``cases_per_session`` cases: first their own, oldest
        first, then the oldest of their group's pool (each claimed, as the node asks),
        one after another, ``minutes_per_case`` each; the rest wait."""
        now = self.loop.now
        me = reader.name.encode()
        taken: list[bytes] = []
        mine = []
        for case_id in self.queue.get(reader.name, []):
            case = self.cases[case_id]
            if case.state is not State.ASSIGNED or case.reader != me:
                continue  # taken from them when overdue
            if len(taken) < reader.cases_per_session:
                taken.append(case_id)
            else:
                mine.append(case_id)
        self.queue[reader.name] = mine
        pool = self.pool.get(reader.group, [])
        pool.sort(key=lambda c: (self.cases[c].delivered_ms or 0, c))
        left = []
        for case_id in pool:
            if self.cases[case_id].state is not State.DELIVERED:
                continue  # someone took it
            if len(taken) < reader.cases_per_session and self._decide(
                case_id, "claim", reader.name, Role.MEMBER
            ):
                self.meta[case_id]["reader"] = reader.name
                taken.append(case_id)
            else:
                left.append(case_id)
        if reader.group:
            self.pool[reader.group] = left
        step = int(reader.minutes_per_case * 60_000)
        for k, case_id in enumerate(taken):
            self._when_at(
                case_id,
                reader.node,
                functools.partial(self._read_by, case_id, reader, now + (k + 1) * step),
            )
        self._next_session(reader, n + 1, now + len(taken) * step + 1)

    def _read_by(self, case_id: bytes, reader: ReaderSpec, slot: int, at: int) -> None:
        """The report of a case read in a session, signed at its slot (or once its study
        is on the reader's node, if it was not yet)."""
        self.loop.at(max(slot, at), functools.partial(self._report, case_id, reader))

    def _report(self, case_id: bytes, reader: ReaderSpec) -> None:
        now = self.loop.now
        case = self.cases[case_id]
        if case.state is not State.ASSIGNED or case.reader != reader.name.encode():
            return  # taken from this reader when overdue: their reading is not sent
        case, _ = machine.apply(
            case, "report", by=reader.name.encode(), roles=frozenset({Role.READER}), now=now
        )
        self.meta[case_id]["read_by"] = reader.name
        self._keep(case_id, case)
        sender_node = self.meta[case_id]["sender_node"]
        self.send(reader.node, sender_node, REPORT_BYTES, lambda at: self._report_back(case_id, at))

    def _report_back(self, case_id: bytes, now: int) -> None:
        case = self.cases[case_id]
        case, _ = machine.apply(
            case, "deliver_report", by=b"", roles=frozenset({Role.NODE}), now=now
        )
        self._keep(case_id, case)
        hours = self.evaluations.uniform(*self.scenario.evaluation_hours)
        useful = self.evaluations.random() < self.scenario.useful_share
        self.loop.at(now + int(hours * HOUR), functools.partial(self._evaluate, case_id, useful))

    def _evaluate(self, case_id: bytes, useful: bool) -> None:
        """The sender's evaluation of the report: useful to them, or not."""
        case = self.cases[case_id]
        case, _ = machine.apply(
            case, "evaluate", by=case.sender, roles=frozenset({Role.SENDER}), now=self.loop.now
        )
        self.meta[case_id]["evaluation"] = (self.loop.now, useful)
        self._keep(case_id, case)

    def _sample(self) -> None:
        now = self.loop.now
        in_transit = sum(
            1 for c in self.cases.values() if c.state in (State.SUBMITTED, State.IN_TRANSIT)
        )
        unread = sum(1 for c in self.cases.values() if c.state in (State.DELIVERED, State.ASSIGNED))
        self.outcome.backlog.append((now / DAY, in_transit, unread))

    # --- the run ------------------------------------------------------------------------

    def run(self, progress: Any = None) -> Outcome:
        self.start()
        day = 0
        while day < self.scenario.days:
            day += 1
            self.loop.run_until(min(self.end, day * DAY))
            if progress is not None:
                progress(1)
        self.outcome.end_ms = self.end
        for case_id, case in sorted(self.cases.items()):
            meta = self.meta[case_id]
            evaluated_ms, useful = meta.get("evaluation", (None, None))
            self.outcome.cases.append(
                {
                    "case_id": case_id.hex(),
                    "kind": meta["kind"],
                    "size": meta["size"],
                    "sender_node": meta["sender_node"],
                    "reader": meta["reader"],
                    "read_by": meta.get("read_by", ""),
                    "pair": meta["pair"],
                    "state": case.state.value,
                    "submitted_ms": case.submitted_ms,
                    "transit_ms": _minus(case.delivered_ms, case.submitted_ms),
                    "turnaround_ms": _minus(case.report_back_ms, case.submitted_ms),
                    "delivered_ms": case.delivered_ms,
                    "assigned_ms": meta.get("assigned"),
                    "reported_ms": case.reported_ms,
                    "report_back_ms": case.report_back_ms,
                    "reading_ms": _minus(case.reported_ms, case.delivered_ms),
                    "late": is_late(case, self.end),
                    "escalations": case.escalations,
                    "over_quota": case.needs_acceptance,
                    "evaluated_ms": evaluated_ms,
                    "useful": useful,
                }
            )
        self.outcome.link_bytes = {
            n: (link.sent, link.received) for n, link in sorted(self.links.items())
        }
        self.outcome.background_kbit_s = background_kbit_s(
            [n.name for n in self.scenario.nodes],
            {n: self.up_share(n) for n in self.down},
            {n.name: n.loss for n in self.scenario.nodes},
        )
        return self.outcome


def is_late(case: Case, end: int) -> bool:
    """Read after its due time, escalated (taken from a late reader, or left unread in a
    pool past its due time), or still unread past its due time when the run ends."""
    if case.escalations:
        return True
    if case.due_ms is None:
        return False
    read = case.reported_ms if case.reported_ms is not None else end
    return read > case.due_ms


def mathis_rate(loss: float, rtt_s: float) -> float:
    """The most bytes per second one TCP flow keeps at packet loss ``loss`` over a round
    trip of ``rtt_s`` (Mathis, Semke, Mahdavi, Ott 1997: MSS / (RTT * sqrt(2p/3)));
    unbounded without loss."""
    if loss <= 0 or rtt_s <= 0:
        return math.inf
    return MSS / (rtt_s * math.sqrt(2 * loss / 3))


def available_from(reader: ReaderSpec, t: int) -> int:
    """The first moment from ``t`` when ``reader`` reads (their days and hours, UTC; day
    0 is a Monday)."""
    if len(reader.days) == 7 and reader.hours == (0.0, 24.0):
        return t
    for k in range(8):
        day = t // DAY + k
        if day % 7 not in reader.days:
            continue
        start = day * DAY + int(reader.hours[0] * HOUR)
        end = day * DAY + int(reader.hours[1] * HOUR)
        if t < end:
            return max(t, start)
    raise AssertionError("a reader reads on at least one day")  # the scenario checks it


def _merged(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping intervals joined, in order (a power cut while the node is away)."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _minus(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a - b
