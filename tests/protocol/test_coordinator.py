"""The case coordinator decides routing, the weekly quota, due dates and escalation, and
returns the effects; copies follow its numbered decisions in any order of arrival."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from protocol.cases import Case, Decided, Notify, Role, Routing, State, apply
from protocol.coordinator import (
    HOUR_MS,
    WEEK_MS,
    Audit,
    Coordinator,
    GroupRoute,
    PairRoute,
    Seal,
    Step,
    Tell,
    counts_toward_quota,
    deadline,
    group_route,
    next_deadline,
    pair_route,
    week_count,
)
from protocol.directory import Directory
from protocol.errors import CaseRefused, LocalProtocolError
from tests.protocol.directory_world import World
from tests.protocol.helpers import NOW

SENDER, READER, OTHER, THIRD, COORDINATOR, GROUP = (bytes([i]) * 32 for i in range(1, 7))
HOME, READER_NODE, OTHER_NODE, THIRD_NODE = (bytes([0xA0 + i]) * 32 for i in range(4))
CASE_ID = b"c" * 16
SENDERS_NODE = Coordinator(node=HOME, default_delay_hours=72)
COPY_NODE = Coordinator(node=OTHER_NODE)
MEMBER = frozenset({Role.MEMBER})


def a_pair(quota: int | None = 3, status: str = "active") -> PairRoute:
    return PairRoute(
        pair_id=b"p" * 16,
        sender=SENDER,
        reader=READER,
        weekly_quota=quota,
        delay_hours=48,
        status=status,
        reader_node=READER_NODE,
        group=GROUP,
        group_nodes=(READER_NODE, OTHER_NODE, THIRD_NODE),
    )


A_GROUP = GroupRoute(group=GROUP, community=False, nodes=(HOME, READER_NODE, OTHER_NODE))


def submitted(route: PairRoute | GroupRoute, **kwargs: object) -> Step:
    return SENDERS_NODE.submit(case_id=CASE_ID, sender=SENDER, route=route, now=NOW, **kwargs)  # type: ignore[arg-type]


def delivered(route: PairRoute | GroupRoute, at: int = NOW + HOUR_MS, **kwargs: object) -> Case:
    return SENDERS_NODE.delivered(submitted(route, **kwargs).case, by=READER_NODE, now=at).case


# --- routing and the weekly quota ---------------------------------------------------


@pytest.mark.parametrize(
    ("quota", "this_week", "over_quota", "outcome"),
    [
        (3, 0, False, "within"),
        (3, 2, False, "within"),  # the last case of the week
        (3, 2, True, "within"),  # within the quota: nobody is asked to accept
        (3, 3, False, "refused"),  # at the limit
        (3, 3, True, "accept"),
        (3, 7, True, "accept"),
        (0, 0, False, "refused"),  # a pair of zero: every case is asked for
        (0, 0, True, "accept"),
        (None, 50, False, "within"),  # no quota (a simulated pair)
    ],
)
def test_the_weekly_quota_at_and_around_its_limit(
    quota: int | None, this_week: int, over_quota: bool, outcome: str
) -> None:
    route = a_pair(quota)
    if outcome == "refused":
        with pytest.raises(CaseRefused, match=f"weekly quota is {quota} and {this_week} case"):
            submitted(route, this_week=this_week, over_quota=over_quota)
        return
    step = submitted(route, this_week=this_week, over_quota=over_quota)
    assert step.case.needs_acceptance is (outcome == "accept")
    assert step.case.state is State.IN_TRANSIT
    at_reader = SENDERS_NODE.delivered(step.case, by=READER_NODE, now=NOW + HOUR_MS)
    if outcome == "accept":
        assert (at_reader.case.state, at_reader.case.reader) == (State.DELIVERED, None)
        assert Notify("ask_acceptance", CASE_ID, READER) in at_reader.effects
    else:
        assert (at_reader.case.state, at_reader.case.reader) == (State.ASSIGNED, READER)


@pytest.mark.parametrize(
    ("submitted_ago", "state", "counts"),
    [
        (0, State.IN_TRANSIT, True),
        (WEEK_MS - 1, State.CLOSED, True),
        (WEEK_MS, State.ASSIGNED, False),  # exactly a week ago: last week's
        (HOUR_MS, State.CANCELLED, False),  # declined or cancelled: does not count
    ],
)
def test_what_counts_toward_this_weeks_quota(
    submitted_ago: int, state: State, counts: bool
) -> None:
    case = replace(submitted(a_pair()).case, submitted_ms=NOW - submitted_ago, state=state)
    assert counts_toward_quota(case, NOW) is counts
    assert week_count([case, case], NOW) == 2 * counts


def test_a_pairs_case_is_sealed_for_its_readers_node_with_the_pairs_delay() -> None:
    step = submitted(a_pair(), urgent=True)
    case = step.case
    assert (case.routing, case.target) == (Routing.PAIR, READER)
    assert step.effects == (
        Seal(case_id=CASE_ID, nodes=(READER_NODE,), urgent=True, reason="submit"),
        Audit(case_id=CASE_ID, actor=SENDER, action="submit", detail="pair to 1 node(s)"),
    )
    assert delivered(a_pair()).due_ms == NOW + HOUR_MS + 48 * HOUR_MS


@pytest.mark.parametrize(
    ("route", "chosen", "routine_h", "urgent_h"),
    [(a_pair(), None, 48, 24), (A_GROUP, None, 72, 24), (A_GROUP, 12, 12, 12)],
)
def test_an_urgent_case_is_due_sooner_than_a_routine_one(
    route: PairRoute | GroupRoute, chosen: int | None, routine_h: int, urgent_h: int
) -> None:
    routine = submitted(route, delay_hours=chosen).case
    urgent = submitted(route, delay_hours=chosen, urgent=True).case
    assert (routine.delay_ms, urgent.delay_ms) == (routine_h * HOUR_MS, urgent_h * HOUR_MS)
    at = NOW + HOUR_MS
    due = SENDERS_NODE.delivered(urgent, by=READER_NODE, now=at).case.due_ms
    assert due == at + urgent_h * HOUR_MS
    # A node may agree on another bound; never longer than the routine delay.
    quick = replace(SENDERS_NODE, urgent_delay_hours=6)
    sent = quick.submit(case_id=CASE_ID, sender=SENDER, route=route, delay_hours=chosen,
                        urgent=True, now=NOW)  # fmt: skip
    assert sent.case.delay_ms == min(6, routine_h) * HOUR_MS


def test_a_groups_case_goes_to_its_reading_nodes_but_this_one() -> None:
    step = submitted(A_GROUP, delay_hours=24)
    (seal, _audit) = step.effects
    assert isinstance(seal, Seal)
    assert seal.nodes == (READER_NODE, OTHER_NODE)
    assert (step.case.routing, step.case.delay_ms) == (Routing.GROUP, 24 * HOUR_MS)
    default = submitted(replace(A_GROUP, community=True))
    assert (default.case.routing, default.case.delay_ms) == (Routing.COMMUNITY, 72 * HOUR_MS)
    waiting = SENDERS_NODE.delivered(step.case, by=OTHER_NODE, now=NOW + HOUR_MS)
    assert (waiting.case.state, waiting.case.reader) == (State.DELIVERED, None)
    # the second receipt (another node of the group) changes nothing
    assert SENDERS_NODE.delivered(waiting.case, by=READER_NODE, now=NOW + 2 * HOUR_MS) == Step(
        waiting.case
    )


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (a_pair(status="suspended"), "the pair is suspended"),
        (a_pair(status="ended"), "the pair is ended"),
        (replace(a_pair(), reader_node=None), "reader is not attested"),
        (replace(A_GROUP, nodes=(HOME,)), "no reader of this group has a node"),
        (replace(A_GROUP, nodes=()), "no reader of this group has a node"),
    ],
)
def test_a_case_that_cannot_go_is_refused_with_the_reason(
    route: PairRoute | GroupRoute, reason: str
) -> None:
    with pytest.raises(CaseRefused, match=reason):
        submitted(route)


def test_routes_come_from_the_directorys_view() -> None:
    world = World()
    directory = Directory(world.network)
    directory.add_many(world.everything(), NOW)
    view = directory.view(NOW)
    erasme = world.node("erasme").public.key
    (pair_id,) = view.pairs
    pair = pair_route(view, pair_id)
    assert pair is not None
    assert (pair.sender, pair.reader) == (world.sender.public.key, world.reader.public.key)
    assert (pair.weekly_quota, pair.delay_hours, pair.status) == (3, 48, "active")
    assert (pair.reader_node, pair.group) == (erasme, world.group.public.key)
    assert pair.group_nodes == (erasme,)
    group = group_route(view, world.group.public.key)
    assert group == GroupRoute(group=world.group.public.key, community=False, nodes=(erasme,))
    assert pair_route(view, b"x" * 16) is None
    assert group_route(view, READER) is None


# --- deadlines and escalation --------------------------------------------------------


def test_overdue_only_after_the_due_time_and_the_deadline_says_when() -> None:
    case = delivered(a_pair())
    due = case.due_ms
    assert due is not None
    assert deadline(case) == due + 1
    assert SENDERS_NODE.tick(case, a_pair(), now=due) == Step(case)  # exactly at the due time
    late = SENDERS_NODE.tick(case, a_pair(), holders=[READER_NODE], now=due + 1)
    assert late.case.escalations == 1
    assert deadline(late.case) == due + 1 + case.delay_ms + 1


def test_the_next_deadline_is_the_earliest_among_open_cases() -> None:
    # delivered later, but the pair's delay (48 h) is shorter than the group's (72 h)
    pairs = delivered(a_pair(), at=NOW + 5 * HOUR_MS)
    groups = replace(delivered(A_GROUP, at=NOW + HOUR_MS), case_id=b"d" * 16)
    reported = replace(pairs, state=State.REPORTED, due_ms=NOW)  # no deadline any more
    assert next_deadline([groups, pairs, reported]) == NOW + 5 * HOUR_MS + 48 * HOUR_MS + 1
    assert next_deadline([groups, reported]) == NOW + HOUR_MS + 72 * HOUR_MS + 1
    assert next_deadline([reported]) is None
    assert next_deadline([]) is None
    assert deadline(submitted(a_pair()).case) is None  # not delivered yet: no due date


def test_an_overdue_pairs_case_goes_to_the_readers_group() -> None:
    case = delivered(a_pair())
    assert case.due_ms is not None
    now = case.due_ms + 1
    step = SENDERS_NODE.tick(case, a_pair(), holders=[READER_NODE], now=now)
    late = step.case
    assert (late.state, late.reader, late.escalations) == (State.DELIVERED, None, 1)
    assert (late.passed_over, late.due_ms, late.decisions) == (
        frozenset({READER}),
        now + 48 * HOUR_MS,
        1,
    )
    assert step.effects == (
        Notify("notify_coordinator", CASE_ID, READER),
        Notify("offer_to_members", CASE_ID, READER),
        Audit(case_id=CASE_ID, actor=HOME, action="escalate", detail="#1"),
        Seal(case_id=CASE_ID, nodes=(OTHER_NODE, THIRD_NODE), urgent=True, reason="offer to group"),
        Tell(case_id=CASE_ID, event="escalated", seq=1, reader=READER, note="overdue"),
    )
    # the late reader may not take it back; another member of the group may
    with pytest.raises(CaseRefused, match="taken from you"):
        SENDERS_NODE.decide(late, "claim", by=READER, roles=MEMBER, now=now)
    taken = SENDERS_NODE.decide(late, "claim", by=OTHER, roles=MEMBER, now=now)
    assert (taken.case.state, taken.case.reader) == (State.ASSIGNED, OTHER)
    assert taken.effects[-1] == Tell(case_id=CASE_ID, event="assigned", seq=2, reader=OTHER)
    # once every node of the group holds it, escalating again seals nothing
    again = SENDERS_NODE.tick(
        taken.case, a_pair(), holders=[READER_NODE, OTHER_NODE, THIRD_NODE], now=now + WEEK_MS
    )
    assert not any(isinstance(e, Seal) for e in again.effects)
    assert again.case.passed_over == frozenset({READER, OTHER})
    # a pair no longer in the directory: escalated all the same, offered to nobody new
    gone = SENDERS_NODE.tick(case, None, holders=[READER_NODE], now=now)
    assert gone.case == late
    assert not any(isinstance(e, Seal) for e in gone.effects)


def test_a_groups_case_nobody_took_is_escalated_too() -> None:
    case = delivered(A_GROUP)
    assert case.due_ms is not None
    step = SENDERS_NODE.tick(case, A_GROUP, holders=A_GROUP.nodes, now=case.due_ms + 1)
    assert (step.case.state, step.case.reader, step.case.escalations) == (State.DELIVERED, None, 1)
    assert step.case.passed_over == frozenset()
    assert [type(e).__name__ for e in step.effects] == ["Notify", "Notify", "Audit", "Tell"]
    assert step.effects[-1] == Tell(
        case_id=CASE_ID, event="escalated", seq=1, reader=None, note="overdue"
    )


@pytest.mark.parametrize("state", [State.REPORTED, State.REPORT_DELIVERED, State.CANCELLED])
def test_a_case_no_longer_waiting_for_a_reader_is_never_escalated(state: State) -> None:
    case = replace(delivered(A_GROUP), state=state)
    assert SENDERS_NODE.tick(case, A_GROUP, now=NOW + 10 * WEEK_MS) == Step(case)


# --- what the sender's node decides, and tells ---------------------------------------


@pytest.mark.parametrize(
    ("event", "by", "roles", "decision", "state"),
    [
        ("claim", OTHER, MEMBER, "assigned", State.ASSIGNED),
        ("assign", COORDINATOR, frozenset({Role.COORDINATOR}), "assigned", State.ASSIGNED),
        ("cancel", SENDER, frozenset({Role.SENDER}), "cancelled", State.CANCELLED),
    ],
    ids=["claim", "assign", "cancel"],
)
def test_each_request_granted_is_told_to_the_copies_numbered(
    event: str, by: bytes, roles: frozenset[Role], decision: str, state: State
) -> None:
    case = delivered(A_GROUP)
    step = SENDERS_NODE.decide(case, event, by=by, roles=roles, reader=OTHER, now=NOW)
    assert step.case.state is state
    assert Audit(case_id=CASE_ID, actor=by, action=event, detail=state.value) in step.effects
    reader = OTHER if decision == "assigned" else None
    assert step.effects[-1] == Tell(case_id=CASE_ID, event=decision, seq=1, reader=reader)
    with pytest.raises(LocalProtocolError, match="not a request"):
        SENDERS_NODE.decide(case, "escalate", by=by, roles=roles, now=NOW)


def test_a_reader_declines_a_case_beyond_the_quota() -> None:
    case = delivered(a_pair(quota=1), this_week=1, over_quota=True)
    step = SENDERS_NODE.decide(case, "decline", by=READER, roles=frozenset({Role.READER}), now=NOW)
    assert step.case.state is State.CANCELLED
    assert Notify("notify_sender", CASE_ID, SENDER) in step.effects
    assert step.effects[-1] == Tell(
        case_id=CASE_ID, event="cancelled", seq=1, note="declined by the reader"
    )


def test_the_first_report_answers_the_case_and_later_ones_are_addenda() -> None:
    case = delivered(a_pair())
    reader = frozenset({Role.READER})
    at = NOW + 5 * HOUR_MS
    first = SENDERS_NODE.reported(
        case, by=READER, roles=reader, signed_at=at, detail="adequate", now=at + 1
    )
    assert first.case.state is State.REPORT_DELIVERED
    assert (first.case.reported_ms, first.case.report_back_ms) == (at, at + 1)
    assert first.effects[-1] == Tell(case_id=CASE_ID, event="reported", seq=1, reader=READER)
    later = SENDERS_NODE.reported(first.case, by=READER, roles=reader, signed_at=at, now=at + 9)
    assert later == Step(
        first.case, (Audit(case_id=CASE_ID, actor=READER, action="addendum", detail=""),)
    )
    with pytest.raises(CaseRefused, match="only the reader may report"):
        SENDERS_NODE.reported(case, by=OTHER, roles=MEMBER, signed_at=at, now=at)


# --- copies --------------------------------------------------------------------------


def copy_of(route: PairRoute | GroupRoute, *, over_quota: bool = False) -> Step:
    case = submitted(route).case
    return COPY_NODE.receive(
        case_id=CASE_ID,
        sender=SENDER,
        sender_node=HOME,
        routing=case.routing,
        target=case.target,
        delay_hours=case.delay_ms // HOUR_MS,
        over_quota=over_quota,
        submitted_ms=NOW,
        now=NOW + HOUR_MS,
    )


def test_a_copy_is_made_delivered_from_the_request() -> None:
    pairs = copy_of(a_pair())
    assert (pairs.case.state, pairs.case.reader, pairs.case.submitted_ms) == (
        State.ASSIGNED,
        READER,
        NOW,
    )
    assert pairs.case.due_ms == NOW + HOUR_MS + 48 * HOUR_MS
    assert pairs.effects == (
        Notify("notify_reader", CASE_ID, READER),
        Audit(case_id=CASE_ID, actor=HOME, action="receive", detail="assigned"),
    )
    beyond = copy_of(a_pair(), over_quota=True)
    assert (beyond.case.state, beyond.case.needs_acceptance) == (State.DELIVERED, True)
    assert copy_of(A_GROUP).case.state is State.DELIVERED


def decisions_of_a_busy_case() -> tuple[Case, list[Decided]]:
    """A group's case as its sender's node decides it: claimed by READER, escalated,
    claimed by OTHER, released, assigned to THIRD, escalated again, assigned to OTHER,
    then answered; each decision as the copies receive it."""
    case = delivered(A_GROUP)
    told: list[Decided] = []

    def keep(step: Step, at: int) -> Case:
        for effect in step.effects:
            if isinstance(effect, Tell):
                told.append(
                    Decided(event=effect.event, seq=effect.seq, at=at, reader=effect.reader)
                )
        return step.case

    coordinator = frozenset({Role.COORDINATOR})
    t = NOW + 2 * HOUR_MS
    case = keep(SENDERS_NODE.decide(case, "claim", by=READER, roles=MEMBER, now=t), t)
    assert case.due_ms is not None
    t = case.due_ms + 1
    case = keep(SENDERS_NODE.tick(case, A_GROUP, now=t), t)
    t += HOUR_MS
    case = keep(SENDERS_NODE.decide(case, "claim", by=OTHER, roles=MEMBER, now=t), t)
    t += HOUR_MS
    case = keep(SENDERS_NODE.decide(case, "release", by=OTHER, roles=coordinator, now=t), t)
    t += HOUR_MS
    step = SENDERS_NODE.decide(
        case, "assign", by=COORDINATOR, roles=coordinator, reader=THIRD, now=t
    )
    case = keep(step, t)
    assert case.due_ms is not None
    t = case.due_ms + 1
    case = keep(SENDERS_NODE.tick(case, A_GROUP, now=t), t)
    t += HOUR_MS
    step = SENDERS_NODE.decide(
        case, "assign", by=COORDINATOR, roles=coordinator, reader=OTHER, now=t
    )
    case = keep(step, t)
    t += HOUR_MS
    case = keep(
        SENDERS_NODE.reported(case, by=OTHER, roles=frozenset({Role.READER}), signed_at=t, now=t),
        t,
    )
    return case, told


FOLLOWED = ("state", "reader", "passed_over", "escalations", "due_ms", "decisions")


def followed(case: Case) -> tuple[object, ...]:
    return tuple(getattr(case, name) for name in FOLLOWED)


def test_a_copy_ends_as_the_sender_left_the_case_whatever_order_decisions_arrive() -> None:
    at_sender, told = decisions_of_a_busy_case()
    assert [d.event for d in told] == [
        "assigned", "escalated", "assigned", "released", "assigned", "escalated",
        "assigned", "reported",
    ]  # fmt: skip
    assert [d.seq for d in told] == list(range(1, 9))
    start = copy_of(A_GROUP).case
    assert at_sender.passed_over == frozenset({READER, THIRD})
    finals = set()
    for order in itertools.islice(itertools.permutations(told), 0, None, 23):  # 1,754 orders
        copy = start
        for decision in order:
            copy = COPY_NODE.follow(copy, decision, by=HOME, now=NOW + WEEK_MS).case
        finals.add(followed(copy))
    assert finals == {followed(at_sender)}


@pytest.mark.parametrize(
    ("first", "then", "state", "reader"),
    [
        # the assignment after a release arrives before the release: the release is old
        (("assigned", 3, OTHER), ("released", 2, None), State.ASSIGNED, OTHER),
        (("released", 2, None), ("assigned", 3, OTHER), State.ASSIGNED, OTHER),
        # the answer before the assignment that led to it
        (("reported", 4, OTHER), ("assigned", 3, OTHER), State.REPORT_DELIVERED, OTHER),
        # the closing before anything else: nothing reopens a closed copy
        (("closed", 9, None), ("assigned", 1, READER), State.CLOSED, None),
        # a decision numbered by no one: followed in the order received
        (("assigned", None, READER), ("released", None, None), State.DELIVERED, None),
    ],
    ids=["release-late", "release-first", "report-first", "closed-first", "unnumbered"],
)
def test_decisions_out_of_order(
    first: tuple[str, int | None, bytes | None],
    then: tuple[str, int | None, bytes | None],
    state: State,
    reader: bytes | None,
) -> None:
    copy = copy_of(A_GROUP).case
    for event, seq, who in (first, then):
        copy = COPY_NODE.follow(
            copy, Decided(event=event, seq=seq, at=NOW, reader=who), by=HOME, now=NOW
        ).case
    assert (copy.state, copy.reader) == (state, reader)


def test_a_decision_that_does_not_move_the_copy_is_audited_as_such() -> None:
    copy = copy_of(a_pair()).case  # the reader's own copy
    reported, _ = apply(copy, "report", by=READER, roles=frozenset({Role.READER}), now=NOW)
    step = COPY_NODE.follow(
        reported, Decided(event="reported", seq=1, at=NOW, reader=READER), by=HOME, now=NOW
    )
    assert step.case == replace(reported, decisions=1)  # its report's receipt says it
    assert step.effects == (
        Audit(case_id=CASE_ID, actor=HOME, action="reported", detail="reported (no change)"),
    )
    with pytest.raises(LocalProtocolError, match="not a decision"):
        Decided(event="claim", seq=1, at=NOW)
    with pytest.raises(LocalProtocolError, match="numbered from 1"):
        Decided(event="closed", seq=0, at=NOW)


def test_an_evaluation_is_taken_before_the_receipt_and_after_the_closing() -> None:
    copy = copy_of(a_pair()).case
    reported, _ = apply(copy, "report", by=READER, roles=frozenset({Role.READER}), now=NOW)
    evaluated = COPY_NODE.evaluated(reported, now=NOW + 1)
    assert evaluated.case.state is State.EVALUATED
    assert evaluated.case.report_back_ms == NOW + 1
    assert Notify("evaluated", CASE_ID, READER) in evaluated.effects
    closed = COPY_NODE.follow(
        reported, Decided(event="closed", seq=2, at=NOW), by=HOME, now=NOW + 2
    ).case
    late = COPY_NODE.evaluated(closed, now=NOW + 3)
    assert late.case == closed
    assert late.effects[-1] == Audit(
        case_id=CASE_ID, actor=SENDER, action="evaluate", detail="closed (no change)"
    )
