"""Cases over a modelled network, in virtual time, with the node's own engines: the case
state machine of ``protocol/cases.py`` decides each step, and ``protocol/transfer.py``'s
``Upload`` (window, acknowledgements, failures) and ``Backoff`` move every bundle, chunk
by chunk, over links with the bandwidth, latency, loss, power cuts and regional cuts of
the scenario. Only the links are modelled: a chunk takes its size over the slower of the
sender's uplink and the receiver's downlink (each shared by all that node's transfers),
plus the latency between their regions (and a node's own, e.g. a satellite hop); it is
lost with either end's loss rate (noticed a round trip later, then sent again), and
fails when either end is down or cut off. A relay holds mail up to its quota; a deposit
beyond it waits. Readers sign reports only when they read (their days and hours); a
group that assigns has its coordinator give each case to the least loaded member.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Any

from protocol import cases as machine
from protocol.bundle import choose_chunk_size
from protocol.cases import Case, Role, Routing, State
from protocol.transfer import Backoff, Upload
from simulations.clock import EventLoop
from simulations.network import seeded_rng
from simulations.scenario import ReaderSpec, Scenario, StudySpec

HOUR = 3_600_000
DAY = 24 * HOUR
TAG = 16  # each chunk's authentication tag
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
            )
            for n in scenario.nodes
        }
        self.relay = {n.name: n.relay for n in scenario.nodes if n.nat}
        self.node = {n.name: n for n in scenario.nodes}
        self.held = {n.name: 0 for n in scenario.nodes}  # bytes held as a relay
        self.loss_rng = random.Random(f"{self.seed}/loss")
        self.cut = [
            (set(c.nodes), int(c.start_day * DAY), int((c.start_day + c.days) * DAY))
            for c in scenario.cuts
        ]
        self.readers = {r.name: r for r in scenario.readers}
        self.cases: dict[bytes, Case] = {}
        self.meta: dict[bytes, dict[str, Any]] = {}
        self.backoff = Backoff(base_ms=5_000, cap_ms=HOUR)
        self.outcome = Outcome()
        self.relayed = 0
        self._sent: dict[int, list[int]] = {}  # per sender, this week's cases (the quota)

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

    def reachable(self, a: str, b: str, now: int) -> bool:
        if self.is_down(a, now) or self.is_down(b, now):
            return False
        for nodes, start, end in self.cut:
            if start <= now < end and ((a in nodes) != (b in nodes)):
                return False
        return True

    # --- transfers, with the node's Upload engine ----------------------------------------

    def send(self, source: str, target: str, size: int, on_done: Any) -> None:
        """A bundle from ``source`` to ``target``: directly, or, to a node behind NAT,
        deposited at its relay, from which it pulls it."""
        relay = self.relay.get(target)
        if relay and relay != source:
            self.relayed += 1
            self._deposit(source, relay, target, size, on_done)
        else:
            self._transfer(source, target, size, on_done)

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
        t = Transfer(source, target, Upload(layout), on_done)
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
            took = math.ceil(nbytes / min(up.up_bps, down.down_bps) * 1000)
            up.up_free = down.down_free = start + took
            arrive = functools.partial(self._arrived, t, index, nbytes, t.generation)
            self.loop.at(start + took + latency, arrive)

    def latency(self, a: str, b: str) -> int:
        """One way, between two nodes: their regions', and their own."""
        extra = self.node[a].extra_latency_ms + self.node[b].extra_latency_ms
        return self.scenario.latency(self.region[a], self.region[b]) + extra

    def _lost(self, t: Transfer) -> bool:
        kept = (1 - self.node[t.source].loss) * (1 - self.node[t.target].loss)
        return kept < 1 and self.loss_rng.random() >= kept

    def _arrived(self, t: Transfer, index: int, nbytes: int, generation: int) -> None:
        now = self.loop.now
        if generation != t.generation or index not in t.upload.in_flight:
            return  # sent before a cut: sent again since
        if self._lost(t):  # no answer: the sender gives up on it a round trip later
            self.outcome.chunks_lost += 1
            self.links[t.source].sent += nbytes
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
        self.links[t.target].received += nbytes
        t.attempts = 0
        if t.upload.done:
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

    # --- cases, with the node's state machine ----------------------------------------

    def _study(self) -> tuple[StudySpec, int]:
        mix = self.scenario.studies
        chosen = self.random.choices(mix, weights=[s.weight for s in mix])[0]
        return chosen, int(self.random.uniform(*chosen.mb) * 1_000_000)

    def start(self) -> None:
        for k, sender in enumerate(self.scenario.senders):
            rnd = random.Random(f"{self.seed}/cases/{k}/{sender.node}")
            t = 0.0
            while sender.cases_per_week > 0:
                t += rnd.expovariate(sender.cases_per_week / (7 * DAY))
                if t >= self.end:
                    break
                self.loop.at(int(t), functools.partial(self._submit, sender, k))
        for day in range(int(self.scenario.days) + 1):
            self.loop.at(day * DAY, self._sample)

    def _submit(self, sender: Any, k: int) -> None:
        now = self.loop.now
        case_id = hashlib.sha256(f"{self.seed}/{len(self.cases)}".encode()).digest()[:16]
        me = f"sender/{k}".encode()
        if sender.pair:
            routing, target, delay = Routing.PAIR, sender.pair.encode(), self.scenario.delay_hours
        else:
            routing, target, delay = Routing.GROUP, sender.group.encode(), self.scenario.delay_hours
        week = self._sent.setdefault(k, [])
        week[:] = [t for t in week if t > now - 7 * DAY]
        over = bool(sender.pair and sender.weekly_quota and len(week) >= sender.weekly_quota)
        week.append(now)
        case = Case(case_id, me, routing, target, delay * HOUR, needs_acceptance=over)
        case, _ = machine.apply(case, "submit", by=me, roles=frozenset({Role.SENDER}), now=now)
        case, _ = machine.apply(case, "send", by=b"", roles=frozenset({Role.NODE}), now=now)
        self.cases[case_id] = case
        kind, size = self._study()
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
            "reader": reader.name,
            "assign": assigned,
            "pair": f"{sender.node} -> {sender.pair or 'group ' + sender.group}",
        }
        self.send(sender.node, reader.node, size, lambda at, c=case_id: self._delivered(c, at))

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

    def _delivered(self, case_id: bytes, now: int) -> None:
        case = self.cases[case_id]
        node = frozenset({Role.NODE})
        case, _ = machine.apply(case, "deliver", by=b"", roles=node, now=now)
        self.cases[case_id] = case
        coordinator = self.readers[self.meta[case_id]["reader"]]
        if self.meta[case_id]["assign"]:
            group = self.scenario.group(coordinator.group)
            hours = self.random.uniform(*group.assign_hours)
            when = available_from(coordinator, now + int(hours * HOUR))
            self.loop.at(when, functools.partial(self._assign, case_id, coordinator))
            return
        self._read(case_id, coordinator, now)

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
        case, _ = machine.assign_to(
            case,
            chosen.name.encode(),
            by=coordinator.name.encode(),
            roles=frozenset({Role.COORDINATOR}),
            now=now,
        )
        self.cases[case_id] = case
        self.meta[case_id]["assigned"] = now
        self.meta[case_id]["reader"] = chosen.name
        if chosen.node == coordinator.node:
            self._read(case_id, chosen, now)
        else:
            size, sender_node = self.meta[case_id]["size"], self.meta[case_id]["sender_node"]
            self.send(sender_node, chosen.node, size, lambda at: self._read(case_id, chosen, at))

    def _read(self, case_id: bytes, reader: ReaderSpec, now: int) -> None:
        """``reader`` takes the case (a pair's is theirs at delivery, or once they accept
        it beyond the week's quota; a group's they claim), reads it in their time, and the
        node checks it at its due time."""
        case = self.cases[case_id]
        if case.state is State.DELIVERED and case.needs_acceptance and case.reader is None:
            hours = self.random.uniform(*ACCEPT_HOURS)  # the reader answers the question
            when = available_from(reader, now + int(hours * HOUR))
            self.loop.at(when, functools.partial(self._accept, case_id, reader))
            return
        if case.state is State.DELIVERED:
            case, _ = machine.apply(
                case, "claim", by=reader.name.encode(), roles=frozenset({Role.MEMBER}), now=now
            )
        self.cases[case_id] = case
        self.meta[case_id]["reader"] = reader.name
        hours = self.random.uniform(*reader.reading_hours)
        when = available_from(reader, now + int(hours * HOUR))  # signed when they read
        self.loop.at(when, functools.partial(self._report, case_id, reader))
        if case.due_ms is not None:
            self.loop.at(case.due_ms + 1, functools.partial(self._due, case_id, reader))

    def _accept(self, case_id: bytes, reader: ReaderSpec) -> None:
        now = self.loop.now
        case, _ = machine.apply(
            self.cases[case_id],
            "accept",
            by=reader.name.encode(),
            roles=frozenset({Role.READER}),
            now=now,
        )
        self.cases[case_id] = case
        self._read(case_id, reader, now)

    def _due(self, case_id: bytes, reader: ReaderSpec) -> None:
        """Still unread at its due time: the node escalates it, and another reader of the
        group takes it (the late one cannot, by the table's rule); the images go to that
        reader's node if it is another."""
        now = self.loop.now
        case = self.cases[case_id]
        if case.reader != reader.name.encode() or not case.overdue(now):
            return
        case, _ = machine.apply(case, "escalate", by=b"", roles=frozenset({Role.NODE}), now=now)
        self.cases[case_id] = case
        self.meta[case_id]["escalations"] = self.meta[case_id].get("escalations", 0) + 1
        others = sorted(
            (
                r
                for r in self.scenario.readers
                if r.group == reader.group and r.name.encode() not in case.passed_over
            ),
            key=lambda r: r.name,
        )
        if not others:
            return  # nobody else in the group: it waits in the pool
        chosen = self.random.choice(others)
        if chosen.node == reader.node:
            self._read(case_id, chosen, now)
        else:
            size = self.meta[case_id]["size"]
            sender_node = self.meta[case_id]["sender_node"]
            self.send(sender_node, chosen.node, size, lambda at: self._read(case_id, chosen, at))

    def _report(self, case_id: bytes, reader: ReaderSpec) -> None:
        now = self.loop.now
        case = self.cases[case_id]
        if case.state is not State.ASSIGNED or case.reader != reader.name.encode():
            return  # taken from this reader when overdue: their reading is not sent
        case, _ = machine.apply(
            case, "report", by=reader.name.encode(), roles=frozenset({Role.READER}), now=now
        )
        self.cases[case_id] = case
        sender_node = self.meta[case_id]["sender_node"]
        self.send(reader.node, sender_node, REPORT_BYTES, lambda at: self._report_back(case_id, at))

    def _report_back(self, case_id: bytes, now: int) -> None:
        case = self.cases[case_id]
        case, _ = machine.apply(
            case, "deliver_report", by=b"", roles=frozenset({Role.NODE}), now=now
        )
        self.cases[case_id] = case

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
        for case_id, case in sorted(self.cases.items()):
            meta = self.meta[case_id]
            self.outcome.cases.append(
                {
                    "kind": meta["kind"],
                    "size": meta["size"],
                    "sender_node": meta["sender_node"],
                    "reader": meta["reader"],
                    "pair": meta["pair"],
                    "state": case.state.value,
                    "submitted_ms": case.submitted_ms,
                    "transit_ms": _minus(case.delivered_ms, case.submitted_ms),
                    "turnaround_ms": _minus(case.report_back_ms, case.submitted_ms),
                    "delivered_ms": case.delivered_ms,
                    "assigned_ms": meta.get("assigned"),
                    "reported_ms": case.reported_ms,
                    "overdue": case.reported_ms is not None
                    and case.due_ms is not None
                    and case.reported_ms > case.due_ms,
                    "escalations": case.escalations,
                    "over_quota": case.needs_acceptance,
                }
            )
        self.outcome.link_bytes = {
            n: (link.sent, link.received) for n, link in sorted(self.links.items())
        }
        return self.outcome


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
