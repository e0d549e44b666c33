"""The case coordinator, sans-IO: routing, the weekly quota, due dates and escalation.

Who decides. A case is kept by its **sender's node**, which decides everything about it,
one request at a time in the order they arrive; the nodes it was sent to keep a
**copy** that follows those decisions. The coordinator is that judgement, as pure
functions of the case, what the directory says about its route (``PairRoute``,
``GroupRoute``), the pair's count this week, and ``now``. Nothing here reads a clock or
does I/O. Each function returns a ``Step``: the case after it (changed only through the
tables of ``protocol/cases.py``) and the effects the driver carries out, in order:

- ``Seal(nodes, urgent, reason)``: seal the case's study, with the sender's signed
  ``case_request``, for these nodes and queue it (``reason``: ``submit``, or ``offer to
  group`` when an overdue pair's case goes to the nodes of the reader's group);
- ``Tell(event, seq, reader, note)``: sign this decision (a ``case_event`` by the node,
  numbered ``seq``) and send it to every node holding the case;
- ``Notify(kind, to)``: a notification for a person of this node (or a group's people);
- ``Audit(actor, action, detail)``: an entry of the audit log.

The node (``tsfnode/cases/service.py``) and the simulator (``simulations/casesim.py``)
drive the same functions: the node with its directory (``pair_route``, ``group_route``),
its database and its clock; the simulator with its scenario and virtual time.

- **Routing.** A pair's case goes to the pair's reader's node and is theirs at delivery;
  a group's or a community's goes to every node where one of its readers or
  coordinators reads (``reading_nodes``), and waits there for an assignment or a claim.
- **Weekly quota.** A pair's case counts toward the pair's week when it was submitted in
  the last 7 days and is not cancelled (``counts_toward_quota``). Once the count reaches
  the quota, a case goes only if the sender says so, and the pair's reader is then asked
  to accept or decline it.
- **Due date.** Delivery plus the pair's agreed delay (a group's case: the delay the
  sender chose, or the node's default); an urgent case's delay is at most
  ``urgent_delay_hours`` (24 h by default), whatever was agreed or chosen.
- **Deadlines.** A case is overdue after its due date (``Case.overdue``);
  ``deadline(case)`` is the first moment it is, ``next_deadline(cases)`` the earliest of
  them: a driver sleeps until then and calls ``tick``.
- **Escalation.** ``tick`` gives an overdue case (taken or not) back to the group: the
  late reader may not take it again, a new due date starts, the coordinator is told; a
  pair's case goes to the reader's group, whose nodes that lack it get the study.
- **Copies.** ``receive`` makes a copy from the sender's request; ``follow`` applies the
  sender's node's numbered decisions through ``DECISIONS`` (in any order of arrival);
  ``evaluated`` takes the sender's evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from protocol.cases import (
    DECISION_AFTER,
    Case,
    Decided,
    Notify,
    Role,
    Routing,
    State,
    apply,
    assign_to,
    follow,
)
from protocol.directory import View, pair_terms
from protocol.errors import CaseRefused, LocalProtocolError

HOUR_MS = 3_600_000
WEEK_MS = 7 * 24 * HOUR_MS
NODE = frozenset({Role.NODE})
SENDER = frozenset({Role.SENDER})
READING_ROLES = ("reader", "coordinator")
# The requests people send to the sender's node (its decisions are the other events).
REQUESTS = ("claim", "assign", "release", "accept", "decline", "cancel", "close")


# --- what the directory says -------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PairRoute:
    """A pair, as the directory has it: its terms, and where its reader reads."""

    pair_id: bytes
    sender: bytes
    reader: bytes
    weekly_quota: int | None  # None: no quota (a simulated pair without one)
    delay_hours: int
    status: str  # active, suspended, ended
    reader_node: bytes | None  # None: the reader is not attested
    group: bytes | None  # the reader's group
    group_nodes: tuple[bytes, ...] = ()  # its reading nodes, where an overdue case goes


@dataclass(frozen=True, kw_only=True)
class GroupRoute:
    """A reading group or a community, as the directory has it."""

    group: bytes
    community: bool
    nodes: tuple[bytes, ...]  # its reading nodes


Route = PairRoute | GroupRoute


def reading_nodes(view: View, group: bytes) -> tuple[bytes, ...]:
    """The home nodes of a group's readers and coordinators, sorted."""
    nodes = {
        m.body["home_node"]
        for m in view.members.values()
        if m.body["group"] == group and m.body["role"] in READING_ROLES
    }
    for coordinator in view.coordinators.get(group, ()):
        member = view.members.get(coordinator)
        if member is not None:
            nodes.add(member.body["home_node"])
    return tuple(sorted(nodes))


def pair_route(view: View, pair_id: bytes) -> PairRoute | None:
    """The pair ``pair_id`` of the directory, or None."""
    record = view.pairs.get(pair_id)
    if record is None:
        return None
    terms = pair_terms(record)
    reader = view.members.get(terms["reader"])
    group = None if reader is None else reader.body["group"]
    return PairRoute(
        pair_id=pair_id,
        sender=terms["sender"],
        reader=terms["reader"],
        weekly_quota=int(terms["weekly_quota"]),
        delay_hours=int(terms["reading_delay_hours"]),
        status=str(terms["status"]),
        reader_node=None if reader is None else reader.body["home_node"],
        group=group,
        group_nodes=() if group is None else reading_nodes(view, group),
    )


def group_route(view: View, group: bytes) -> GroupRoute | None:
    """The certified group (or community) ``group`` of the directory, or None."""
    cert = view.groups.get(group)
    if cert is None:
        return None
    return GroupRoute(
        group=group, community=cert.body["kind"] == "community", nodes=reading_nodes(view, group)
    )


def route_of(view: View, case: Case, pair_id: bytes | None) -> Route | None:
    """The route of a case as the directory has it now (None: no longer there)."""
    if case.routing is Routing.PAIR:
        return None if pair_id is None else pair_route(view, pair_id)
    return group_route(view, case.target)


# --- effects -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Seal:
    """Seal the case's study with the sender's signed request for ``nodes``; queue it."""

    case_id: bytes
    nodes: tuple[bytes, ...]
    urgent: bool
    reason: str  # "submit", or "offer to group" (an overdue pair's case)


@dataclass(frozen=True, kw_only=True)
class Tell:
    """Sign decision number ``seq`` (a case_event by this node) and send it to every
    node holding the case."""

    case_id: bytes
    event: str
    seq: int
    reader: bytes | None = None
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class Audit:
    """An entry of the audit log."""

    case_id: bytes
    actor: bytes
    action: str
    detail: str = ""


Effect = Seal | Tell | Notify | Audit


@dataclass(frozen=True)
class Step:
    """The case after a step of the coordinator, and what the driver must do, in order."""

    case: Case
    effects: tuple[Effect, ...] = ()


# --- quota and deadlines -------------------------------------------------------------


def quota_since(now: int) -> int:
    """Cases submitted after this moment count toward this week's quota."""
    return now - WEEK_MS


def counts_toward_quota(case: Case, now: int) -> bool:
    """Whether a pair's case counts toward the pair's quota for a case sent at ``now``."""
    return (
        case.submitted_ms is not None
        and case.submitted_ms > quota_since(now)
        and case.state is not State.CANCELLED
    )


def week_count(cases: Iterable[Case], now: int) -> int:
    """How many of a pair's ``cases`` count toward its quota at ``now``."""
    return sum(1 for case in cases if counts_toward_quota(case, now))


def beyond_quota(route: PairRoute, this_week: int) -> bool:
    """Whether a new case of the pair would go beyond its weekly quota."""
    return route.weekly_quota is not None and this_week >= route.weekly_quota


def deadline(case: Case) -> int | None:
    """The first moment ``case`` is overdue (None: it has no deadline now)."""
    if case.state not in (State.DELIVERED, State.ASSIGNED) or case.due_ms is None:
        return None
    return case.due_ms + 1


def next_deadline(cases: Iterable[Case]) -> int | None:
    """The earliest deadline among ``cases``: when a driver should next call ``tick``."""
    return min((d for d in map(deadline, cases) if d is not None), default=None)


# --- the coordinator -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Coordinator:
    """The decisions of one node about the cases it keeps, and how its copies follow
    the decisions of the nodes that keep them."""

    node: bytes  # this node's key: the actor of what the node does
    default_delay_hours: int = 72  # a group's case, unless the sender chose a delay
    urgent_delay_hours: int = 24  # an urgent case's delay at most (a pair's or a group's)

    def _decided(
        self, case: Case, event: str, reader: bytes | None = None, note: str = ""
    ) -> tuple[Case, Tell]:
        """The case with one more decision announced, and the Tell that announces it."""
        case = replace(case, decisions=case.decisions + 1)
        seq = case.decisions
        return case, Tell(case_id=case.case_id, event=event, seq=seq, reader=reader, note=note)

    # --- at the sender's node --------------------------------------------------------

    def submit(
        self,
        *,
        case_id: bytes,
        sender: bytes,
        route: Route,
        this_week: int = 0,
        over_quota: bool = False,
        delay_hours: int | None = None,
        urgent: bool = False,
        now: int,
    ) -> Step:
        """A sender's new case, routed: sealed for the nodes that will read it. Raises
        CaseRefused when it cannot go (a pair not active, the quota reached and the
        sender did not say to go beyond it, nobody to read it)."""
        nodes: tuple[bytes, ...]
        if isinstance(route, PairRoute):
            if route.sender != sender:
                raise LocalProtocolError("the pair's sender is not the case's sender")
            if route.status != "active":
                raise CaseRefused(
                    f"the pair is {route.status}: no new case can be sent",
                    code="pair_not_active",
                    values={"status": route.status},
                )
            beyond = beyond_quota(route, this_week)
            if beyond and not over_quota:
                raise CaseRefused(
                    f"the pair's weekly quota is {route.weekly_quota} and {this_week} "
                    "case(s) went this week: send anyway (over_quota) and the reader will "
                    "be asked to accept it",
                    code="pair_over_quota",
                    values={"quota": route.weekly_quota, "count": this_week},
                )
            if route.reader_node is None:
                raise CaseRefused(
                    "the pair's reader is not attested in the directory", code="pair_no_reader"
                )
            routing, target, nodes = Routing.PAIR, route.reader, (route.reader_node,)
            delay = route.delay_hours
        else:
            nodes = tuple(n for n in route.nodes if n != self.node)
            if not nodes:
                raise CaseRefused(
                    "no reader of this group has a node in the directory yet",
                    code="group_no_reader",
                )
            routing = Routing.COMMUNITY if route.community else Routing.GROUP
            target, beyond = route.group, False
            delay = delay_hours or self.default_delay_hours
        if urgent:  # sooner than agreed: its copies get this delay in the case's request
            delay = min(delay, self.urgent_delay_hours)
        case = _sent(
            Case(case_id, sender, routing, target, delay * HOUR_MS, needs_acceptance=beyond),
            sender_node=self.node,
            now=now,
        )
        return Step(
            case,
            (
                Seal(case_id=case_id, nodes=nodes, urgent=urgent, reason="submit"),
                Audit(
                    case_id=case_id,
                    actor=sender,
                    action="submit",
                    detail=f"{routing.value} to {len(nodes)} node(s)",
                ),
            ),
        )

    def delivered(self, case: Case, *, by: bytes, now: int) -> Step:
        """The study's bundle reached ``by`` (its receipt): the first receipt delivers
        the case, and its due date starts."""
        if case.state not in (State.SUBMITTED, State.IN_TRANSIT):
            return Step(case)
        case, notes = apply(case, "deliver", by=self.node, roles=NODE, now=now)
        audit = Audit(case_id=case.case_id, actor=by, action="deliver", detail=case.state.value)
        return Step(case, (*notes, audit))

    def decide(
        self,
        case: Case,
        event: str,
        *,
        by: bytes,
        roles: frozenset[Role],
        reader: bytes | None = None,
        now: int,
    ) -> Step:
        """A person's request (``REQUESTS``), decided: the table's notifications, the
        audit entry, and the decision told to the copies. CaseRefused says why not."""
        if event not in REQUESTS:
            raise LocalProtocolError(f"{event!r} is not a request to the sender's node")
        if event == "assign":
            if reader is None:
                raise CaseRefused("assign names no reader", code="assign_no_reader")
            case, notes = assign_to(case, reader, by=by, roles=roles, now=now)
        else:
            case, notes = apply(case, event, by=by, roles=roles, now=now)
        decision = DECISION_AFTER[event]
        note = "declined by the reader" if event == "decline" else ""
        told = case.reader if decision == "assigned" else None
        case, tell = self._decided(case, decision, reader=told, note=note)
        audit = Audit(case_id=case.case_id, actor=by, action=event, detail=case.state.value)
        return Step(case, (*notes, audit, tell))

    def reported(
        self,
        case: Case,
        *,
        by: bytes,
        roles: frozenset[Role],
        signed_at: int,
        detail: str = "",
        now: int,
    ) -> Step:
        """A reader's report reached the sender's node: the first is the report (the
        case is answered: the copies are told), a later one an addendum."""
        event = "report" if case.state is State.ASSIGNED else "addendum"
        case, _ = apply(case, event, by=by, roles=roles, now=signed_at)
        audit = Audit(case_id=case.case_id, actor=by, action=event, detail=detail)
        if event == "addendum":
            return Step(case, (audit,))
        case, notes = apply(case, "deliver_report", by=self.node, roles=NODE, now=now)
        case, tell = self._decided(case, "reported", reader=by)
        return Step(case, (*notes, audit, tell))

    def tick(
        self, case: Case, route: Route | None, *, holders: Iterable[bytes] = (), now: int
    ) -> Step:
        """Deadlines at ``now``: an overdue case (taken or not) goes back to the group,
        with a new due date; the late reader may not take it again. A pair's case goes
        to the reader's group: the nodes of the group that do not hold it yet
        (``holders``) get the study. Not overdue: nothing to do."""
        if not case.overdue(now):
            return Step(case)
        late = case.reader
        case, notes = apply(case, "escalate", by=self.node, roles=NODE, now=now)
        effects: list[Effect] = [
            *notes,
            Audit(
                case_id=case.case_id,
                actor=self.node,
                action="escalate",
                detail=f"#{case.escalations}",
            ),
        ]
        if case.routing is Routing.PAIR and isinstance(route, PairRoute):
            held = {self.node, *holders}
            new = tuple(n for n in route.group_nodes if n not in held)
            if new:  # late already: sent as urgent
                effects.append(
                    Seal(case_id=case.case_id, nodes=new, urgent=True, reason="offer to group")
                )
        case, tell = self._decided(case, "escalated", reader=late, note="overdue")
        return Step(case, (*effects, tell))

    # --- at a copy -------------------------------------------------------------------

    def receive(
        self,
        *,
        case_id: bytes,
        sender: bytes,
        sender_node: bytes,
        routing: Routing,
        target: bytes,
        delay_hours: int,
        over_quota: bool,
        submitted_ms: int,
        now: int,
    ) -> Step:
        """A copy of a case, from the sender's signed request that came with its study:
        delivered here (a pair's case is its reader's; a group's waits for a reader)."""
        case = _sent(
            Case(
                case_id, sender, routing, target, delay_hours * HOUR_MS, needs_acceptance=over_quota
            ),
            sender_node=sender_node,
            now=submitted_ms,
        )
        case, notes = apply(case, "deliver", by=self.node, roles=NODE, now=now)
        audit = Audit(case_id=case_id, actor=sender_node, action="receive", detail=case.state.value)
        return Step(case, (*notes, audit))

    def follow(self, case: Case, decision: Decided, *, by: bytes, now: int) -> Step:
        """A decision of the case's sender's node (``by``), followed through the table
        ``DECISIONS``: the newest decision's state, in any order of arrival."""
        case, notes, moved = follow(case, decision, now=now)
        detail = case.state.value if moved else f"{case.state.value} (no change)"
        audit = Audit(case_id=case.case_id, actor=by, action=decision.event, detail=detail)
        return Step(case, (*notes, audit))

    def evaluated(self, case: Case, *, now: int) -> Step:
        """The sender's evaluation reached the reader's copy: it says the report was
        delivered (if its receipt is not back yet). An evaluation that finds the copy
        closed already (the two travel apart) changes nothing but is kept."""
        if case.state is State.REPORTED:
            case, _ = apply(case, "deliver_report", by=self.node, roles=NODE, now=now)
        try:
            case, _ = apply(case, "evaluate", by=case.sender, roles=SENDER, now=now)
            detail = ""
        except CaseRefused:
            detail = f"{case.state.value} (no change)"
        effects = (
            Notify("evaluated", case.case_id, case.reader),
            Audit(case_id=case.case_id, actor=case.sender, action="evaluate", detail=detail),
        )
        return Step(case, effects)


def _sent(case: Case, *, sender_node: bytes, now: int) -> Case:
    """A new case submitted by its sender and sent by the sender's node at ``now``."""
    case, _ = apply(case, "submit", by=case.sender, roles=SENDER, now=now)
    case, _ = apply(case, "send", by=sender_node, roles=NODE, now=now)
    return case
