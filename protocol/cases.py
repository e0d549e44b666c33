"""The case state machine, sans-IO: a table of transitions is the truth.

A case is a study with its clinical form, asking for a second opinion. It lives on the
sender's node (which knows the patient) and, as a copy, on the reader's node; both drive
the same machine with the events each learns of (a reader's node learns of the delivery
and the claim, the sender's node of the report, by signed documents). The node, the web
application and the simulator call ``apply``; nothing here reads a clock or does I/O.

    draft -> submitted -> in_transit -> delivered -> assigned -> reported
          -> report_delivered -> evaluated -> closed -> purged

``delivered`` is "waiting for a reader": a pair's case is assigned to the pair's reader
at delivery (unless it was sent beyond the pair's weekly quota: the reader then accepts
or declines it); a group's case waits for the coordinator to assign it or a member to claim
it; a community's case waits for the first volunteer to claim it. An overdue case is
escalated: it goes back to ``delivered`` with its reader released, for the other members
(the coordinator is told); an overdue case nobody took is escalated the same way. A case
can be cancelled by its sender until it is reported.

Who may do what is part of the table: each transition names the roles allowed (the
sender, the case's reader, the routing group's coordinator, a member of the routing group
or community, or the node itself for what it observes). The caller says which roles the
actor holds for this case (``roles``): who is a coordinator or a member comes from the
directory, which the caller reads.

A copy of the case (on a node it was sent to) follows the sender's node's decisions
(``assigned``, ``released``, ``escalated``, ``reported``, ``cancelled``, ``closed``) with
the second table, ``DECISIONS``, and ``follow``: nothing else changes a copy's state.
Decisions are numbered by the sender's node (``Case.decisions``); a copy takes the state
of the newest decision it has, so decisions that arrive out of order (bundles do) leave
every copy as the sender's node left the case. ``protocol/coordinator.py`` decides when
each event happens (routing, the weekly quota, due dates, escalation) and what the driver
must do about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from protocol.errors import CaseRefused, LocalProtocolError


class State(Enum):
    DRAFT = "draft"
    SUBMITTED = "submitted"  # anonymised, sealed, queued
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"  # at the reader's side, waiting for a reader
    ASSIGNED = "assigned"  # a reader has it (assigned or claimed)
    REPORTED = "reported"  # the report is signed
    REPORT_DELIVERED = "report_delivered"  # the report reached the sender's node
    EVALUATED = "evaluated"  # the sender rated the opinion
    CLOSED = "closed"
    PURGED = "purged"  # images deleted (reports and evaluations are kept)
    CANCELLED = "cancelled"


class Role(Enum):
    SENDER = "sender"
    READER = "reader"  # the reader who has the case
    COORDINATOR = "coordinator"  # of the group the case is routed to
    MEMBER = "member"  # of the group or community the case is routed to
    NODE = "node"  # the node itself: deliveries, receipts, deadlines, retention


class Routing(Enum):
    PAIR = "pair"
    GROUP = "group"
    COMMUNITY = "community"


@dataclass(frozen=True)
class Transition:
    event: str
    sources: frozenset[State]
    target: State | None  # None: the state does not change (a message, an addendum)
    who: frozenset[Role]


def _t(event: str, sources: set[State], target: State | None, *who: Role) -> Transition:
    return Transition(event, frozenset(sources), target, frozenset(who))


S = State
R = Role
_OPEN = {S.DELIVERED, S.ASSIGNED, S.REPORTED, S.REPORT_DELIVERED, S.EVALUATED}
_UNREAD = {S.DRAFT, S.SUBMITTED, S.IN_TRANSIT, S.DELIVERED, S.ASSIGNED}

TRANSITIONS: tuple[Transition, ...] = (
    _t("submit", {S.DRAFT}, S.SUBMITTED, R.SENDER),
    _t("send", {S.SUBMITTED}, S.IN_TRANSIT, R.NODE),
    _t("deliver", {S.SUBMITTED, S.IN_TRANSIT}, S.DELIVERED, R.NODE),
    _t("assign", {S.DELIVERED}, S.ASSIGNED, R.COORDINATOR, R.NODE),
    _t("claim", {S.DELIVERED}, S.ASSIGNED, R.MEMBER),
    _t("accept", {S.DELIVERED}, S.ASSIGNED, R.READER),
    _t("decline", {S.DELIVERED}, S.CANCELLED, R.READER),
    _t("release", {S.ASSIGNED}, S.DELIVERED, R.READER, R.COORDINATOR),
    _t("escalate", {S.DELIVERED, S.ASSIGNED}, S.DELIVERED, R.NODE),
    _t("report", {S.ASSIGNED}, S.REPORTED, R.READER),
    _t("deliver_report", {S.REPORTED}, S.REPORT_DELIVERED, R.NODE),
    _t("addendum", {S.REPORTED, S.REPORT_DELIVERED, S.EVALUATED, S.CLOSED}, None, R.READER),
    _t("message", _OPEN, None, R.SENDER, R.READER),
    _t("add_images", {S.SUBMITTED, S.IN_TRANSIT, *_OPEN}, None, R.SENDER),
    _t("evaluate", {S.REPORT_DELIVERED}, S.EVALUATED, R.SENDER),
    _t("close", {S.REPORT_DELIVERED, S.EVALUATED}, S.CLOSED, R.SENDER, R.NODE),
    _t(
        "cancel",
        {S.DRAFT, S.SUBMITTED, S.IN_TRANSIT, S.DELIVERED, S.ASSIGNED},
        S.CANCELLED,
        R.SENDER,
    ),
    _t("purge", {S.CLOSED, S.CANCELLED}, S.PURGED, R.NODE),
)
BY_EVENT: dict[str, Transition] = {t.event: t for t in TRANSITIONS}


@dataclass(frozen=True)
class Case:
    case_id: bytes
    sender: bytes  # the sender's key (a person, not a node)
    routing: Routing
    target: bytes  # the pair's reader, or the group's or the community's id
    delay_ms: int  # the agreed reading delay
    state: State = State.DRAFT
    reader: bytes | None = None
    submitted_ms: int | None = None
    delivered_ms: int | None = None
    due_ms: int | None = None
    reported_ms: int | None = None
    report_back_ms: int | None = None
    closed_ms: int | None = None
    escalations: int = 0
    needs_acceptance: bool = False  # sent beyond the pair's weekly quota
    passed_over: frozenset[bytes] = field(default_factory=frozenset)  # readers escalated from
    # the number of decisions the sender's node announced (at a copy: the newest followed)
    decisions: int = 0

    def __post_init__(self) -> None:
        if self.delay_ms <= 0:
            raise LocalProtocolError("a reading delay must be positive")

    def overdue(self, now: int) -> bool:
        return (
            self.state in (State.DELIVERED, State.ASSIGNED)
            and self.due_ms is not None
            and now > self.due_ms
        )


@dataclass(frozen=True)
class Notify:
    """A notification the driver leaves for a person (or, ``to`` a group's key, for its
    people; ``to`` None: for everyone on the node) after a transition."""

    kind: str  # notify_coordinator, offer_to_members, notify_reader, notify_sender,
    # ask_acceptance; at a copy: assigned, offered, escalated, evaluated
    case_id: bytes
    to: bytes | None = None


def allowed(case: Case, event: str) -> Transition:
    """The transition ``event`` from the case's state; CaseRefused if the table has none."""
    transition = BY_EVENT.get(event)
    if transition is None:
        raise LocalProtocolError(f"unknown case event {event!r}")
    if case.state not in transition.sources:
        if event == "claim" and case.state is State.ASSIGNED:
            raise CaseRefused(
                "the case is already taken", code="case_taken"
            )  # by whom: policy.py says
        sources = ", ".join(sorted(s.value for s in transition.sources))
        raise CaseRefused(
            f"cannot {event} a case that is {case.state.value} (only from: {sources})",
            code="case_state",
            values={"state": case.state.value},
        )
    return transition


def _permitted(case: Case, event: str, roles: frozenset[Role]) -> Transition:
    """The transition, if the table allows ``event`` now to one holding one of ``roles``."""
    transition = allowed(case, event)
    if not transition.who & roles:
        names = " or ".join(sorted(r.value for r in transition.who))
        raise CaseRefused(
            f"only the {names} may {event} this case",
            code="case_role",
            values={"roles": tuple(sorted(r.value for r in transition.who))},
        )
    return transition


def apply(
    case: Case, event: str, *, by: bytes, roles: frozenset[Role], now: int
) -> tuple[Case, list[Notify]]:
    """The case after ``event`` done by ``by`` (who holds ``roles`` for this case), and
    what the driver must do next. Raises CaseRefused (with the reason) when the table
    does not allow it; the case is then unchanged."""
    if event == "assign":
        raise LocalProtocolError("assign with assign_to(), which names the reader")
    transition = _permitted(case, event, roles)
    if event == "claim" and by in case.passed_over:
        raise CaseRefused(
            "this case was taken from you when it was overdue", code="case_passed_over"
        )
    effects: list[Notify] = []
    changes: dict[str, object] = {}
    if transition.target is not None:
        changes["state"] = transition.target
    if event == "submit":
        changes["submitted_ms"] = now
    elif event == "deliver":
        changes["delivered_ms"] = now
        changes["due_ms"] = now + case.delay_ms
        if case.routing is Routing.PAIR and case.needs_acceptance:
            effects.append(Notify("ask_acceptance", case.case_id, case.target))
        elif case.routing is Routing.PAIR:
            changes.update(state=State.ASSIGNED, reader=case.target)
            effects.append(Notify("notify_reader", case.case_id, case.target))
        else:
            effects.append(Notify("offer_to_members", case.case_id, case.target))
    elif event == "claim":
        changes["reader"] = by
    elif event in ("accept", "decline"):
        if case.routing is not Routing.PAIR or not case.needs_acceptance:
            raise CaseRefused(
                f"{event}: only for a pair's case sent beyond the weekly quota",
                code="case_not_beyond_quota",
            )
        if event == "accept":
            changes["reader"] = by
        else:
            effects.append(Notify("notify_sender", case.case_id, case.sender))
    elif event == "release":
        changes["reader"] = None
        effects.append(Notify("offer_to_members", case.case_id, case.target))
    elif event == "escalate":
        if not case.overdue(now):
            raise CaseRefused("the case is not overdue", code="case_not_overdue")
        changes.update(
            reader=None,
            escalations=case.escalations + 1,
            passed_over=case.passed_over | ({case.reader} if case.reader else set()),
            due_ms=now + case.delay_ms,
        )
        effects.append(Notify("notify_coordinator", case.case_id, case.target))
        effects.append(Notify("offer_to_members", case.case_id, case.target))
    elif event == "report":
        changes["reported_ms"] = now
    elif event == "deliver_report":
        changes["report_back_ms"] = now
        effects.append(Notify("notify_sender", case.case_id, case.sender))
    elif event == "close":
        changes["closed_ms"] = now
    return replace(case, **changes), effects  # type: ignore[arg-type]


def assign_to(
    case: Case, reader: bytes, *, by: bytes, roles: frozenset[Role], now: int
) -> tuple[Case, list[Notify]]:
    """The coordinator (or the node, by a rule) gives the case to ``reader``."""
    _permitted(case, "assign", roles)
    assigned = replace(case, state=State.ASSIGNED, reader=reader)
    return assigned, [Notify("notify_reader", case.case_id, reader)]


# --- copies: the sender's node's decisions, followed --------------------------------

_AT_COPY = {S.DELIVERED, S.ASSIGNED, S.REPORTED, S.REPORT_DELIVERED}
# What each decision of the sender's node does to a copy. A copy may be REPORTED or
# REPORT_DELIVERED by its own reader's report that the sender's node then refused (the
# case was taken from that reader first): the sender's decision still holds. A decision
# that finds the copy in no source state changes nothing (the copy is there already:
# ``reported`` at the reader's own copy, which learns it from the report's receipt).
DECISIONS: tuple[Transition, ...] = (
    _t("assigned", _AT_COPY, S.ASSIGNED, R.NODE),
    _t("released", _AT_COPY, S.DELIVERED, R.NODE),
    _t("escalated", _AT_COPY, S.DELIVERED, R.NODE),
    _t("reported", {S.DELIVERED, S.ASSIGNED}, S.REPORT_DELIVERED, R.NODE),
    _t("cancelled", _AT_COPY, S.CANCELLED, R.NODE),
    _t("closed", {*_AT_COPY, S.EVALUATED}, S.CLOSED, R.NODE),
)
BY_DECISION: dict[str, Transition] = {t.event: t for t in DECISIONS}
# The decision the sender's node announces after each request it grants.
DECISION_AFTER: dict[str, str] = {
    "claim": "assigned",
    "assign": "assigned",
    "accept": "assigned",
    "release": "released",
    "decline": "cancelled",
    "cancel": "cancelled",
    "close": "closed",
    "escalate": "escalated",
    "deliver_report": "reported",
}


@dataclass(frozen=True, kw_only=True)
class Decided:
    """A decision of the case's sender's node, as a copy receives it (a ``case_event``
    signed by that node): ``seq`` its number (None from a node that did not number its
    decisions: followed in the order received), ``at`` when it was decided (ms)."""

    event: str
    seq: int | None
    at: int
    reader: bytes | None = None

    def __post_init__(self) -> None:
        if self.event not in BY_DECISION:
            raise LocalProtocolError(f"{self.event!r} is not a decision of the sender's node")
        if self.seq is not None and self.seq < 1:
            raise LocalProtocolError("decisions are numbered from 1")


def follow(case: Case, decision: Decided, *, now: int) -> tuple[Case, list[Notify], bool]:
    """The copy after ``decision``, its notifications, and whether the decision moved it.

    A decision older than the newest one followed (``seq`` not above ``case.decisions``)
    moves nothing; neither does one the table has no row for from the copy's state. An
    escalation always counts, new or old (the reader it passed over, the count, the due
    date it set), so any order of arrival leaves the copy as the sender's node left it.
    The driver gives each decision once (a bundle is taken in once)."""
    transition = BY_DECISION[decision.event]
    changes: dict[str, object] = {}
    if decision.event == "escalated":
        late = {decision.reader} if decision.reader is not None else set()
        changes.update(
            passed_over=case.passed_over | late,
            escalations=case.escalations + 1,
            due_ms=max(case.due_ms or 0, decision.at + case.delay_ms),
        )
    newest = decision.seq is None or decision.seq > case.decisions
    if decision.seq is not None and newest:
        changes["decisions"] = decision.seq
    moves = newest and case.state in transition.sources
    notes: list[Notify] = []
    if moves:
        changes["state"] = transition.target  # every decision names its state
        if decision.event == "assigned":
            changes["reader"] = decision.reader
            notes.append(Notify("assigned", case.case_id, decision.reader))
        elif decision.event in ("released", "escalated"):
            changes["reader"] = None
            kind = "offered" if decision.event == "released" else "escalated"
            notes.append(Notify(kind, case.case_id, None))
        elif decision.event == "reported":
            changes["reader"] = decision.reader
        else:  # cancelled, closed
            changes["closed_ms"] = now
    return replace(case, **changes), notes, moves  # type: ignore[arg-type]
