"""The case state machine follows its table, for every state and event; the three
routings run end to end; a claim race has one winner; overdue cases escalate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocol.cases import (
    BY_EVENT,
    TRANSITIONS,
    Case,
    Notify,
    Role,
    Routing,
    State,
    apply,
    assign_to,
)
from protocol.errors import CaseRefused, LocalProtocolError

HOUR = 3_600_000
NOW = 1_790_000_000_000
SENDER, READER, OTHER, COORDINATOR, GROUP = (bytes([i]) * 32 for i in range(1, 6))
EVERYONE = frozenset(Role)


def new_case(routing: Routing = Routing.GROUP) -> Case:
    target = READER if routing is Routing.PAIR else GROUP
    return Case(
        case_id=b"c" * 16, sender=SENDER, routing=routing, target=target, delay_ms=48 * HOUR
    )


def step(case: Case, event: str, by: bytes, *roles: Role, now: int = NOW) -> Case:
    after, _ = apply(case, event, by=by, roles=frozenset(roles), now=now)
    return after


def delivered(routing: Routing) -> Case:
    case = step(new_case(routing), "submit", SENDER, Role.SENDER, now=NOW)
    case = step(case, "send", SENDER, Role.NODE, now=NOW + 1000)
    return step(case, "deliver", SENDER, Role.NODE, now=NOW + HOUR)


def finish(case: Case, reader: bytes) -> Case:
    case = step(case, "report", reader, Role.READER, now=NOW + 5 * HOUR)
    case = step(case, "deliver_report", reader, Role.NODE, now=NOW + 6 * HOUR)
    case = step(case, "evaluate", SENDER, Role.SENDER, now=NOW + 30 * HOUR)
    case = step(case, "close", SENDER, Role.SENDER, now=NOW + 31 * HOUR)
    return step(case, "purge", SENDER, Role.NODE, now=NOW + 800 * HOUR)


def test_a_pairs_case_goes_to_the_pairs_reader_at_delivery() -> None:
    case = delivered(Routing.PAIR)
    assert (case.state, case.reader) == (State.ASSIGNED, READER)
    assert case.due_ms == NOW + HOUR + 48 * HOUR  # delivery time + the agreed delay
    done = finish(case, READER)
    assert done.state is State.PURGED
    assert (done.submitted_ms, done.delivered_ms, done.reported_ms) == (
        NOW,
        NOW + HOUR,
        NOW + 5 * HOUR,
    )
    assert (done.report_back_ms, done.closed_ms) == (NOW + 6 * HOUR, NOW + 31 * HOUR)


def test_a_groups_case_waits_for_the_coordinator_who_assigns_it() -> None:
    case = delivered(Routing.GROUP)
    assert (case.state, case.reader) == (State.DELIVERED, None)
    with pytest.raises(CaseRefused, match="only the coordinator or node may assign"):
        assign_to(case, READER, by=OTHER, roles=frozenset({Role.MEMBER}), now=NOW)
    case, effects = assign_to(
        case, READER, by=COORDINATOR, roles=frozenset({Role.COORDINATOR}), now=NOW
    )
    assert (case.state, case.reader) == (State.ASSIGNED, READER)
    assert effects == [Notify("notify_reader", case.case_id, READER)]
    assert finish(case, READER).state is State.PURGED


def test_a_community_case_goes_to_the_first_claim_and_the_second_is_told_it_is_taken() -> None:
    sent = step(
        step(new_case(Routing.COMMUNITY), "submit", SENDER, Role.SENDER), "send", SENDER, Role.NODE
    )
    case, effects = apply(sent, "deliver", by=SENDER, roles=frozenset({Role.NODE}), now=NOW)
    assert (case.state, case.reader) == (State.DELIVERED, None)
    assert effects == [Notify("offer_to_members", case.case_id, GROUP)]
    # Two volunteers claim at once; the case's node applies the claims in the order they
    # arrive: exactly one wins, the other learns it is taken (by whom: policy.py).
    first = step(case, "claim", OTHER, Role.MEMBER)
    with pytest.raises(CaseRefused, match="already taken"):
        step(first, "claim", READER, Role.MEMBER)
    assert first.reader == OTHER
    with pytest.raises(CaseRefused, match="only the reader may report"):
        step(first, "report", READER, Role.MEMBER)
    assert finish(first, OTHER).state is State.PURGED


def test_beyond_the_quota_the_pairs_reader_accepts_or_declines() -> None:
    over = replace(new_case(Routing.PAIR), needs_acceptance=True)
    case = step(over, "submit", SENDER, Role.SENDER)
    case, effects = apply(case, "deliver", by=SENDER, roles=frozenset({Role.NODE}), now=NOW)
    assert (case.state, case.reader) == (State.DELIVERED, None)
    assert effects == [Notify("ask_acceptance", case.case_id, READER)]
    accepted = step(case, "accept", READER, Role.READER)
    assert (accepted.state, accepted.reader) == (State.ASSIGNED, READER)
    declined, effects = apply(case, "decline", by=READER, roles=frozenset({Role.READER}), now=NOW)
    assert declined.state is State.CANCELLED
    assert effects == [Notify("notify_sender", case.case_id, SENDER)]
    with pytest.raises(CaseRefused, match="only the reader may accept"):
        step(case, "accept", OTHER, Role.MEMBER)
    within = delivered(Routing.GROUP)  # nothing to accept within the quota
    with pytest.raises(CaseRefused, match="accept: only for a pair's case sent beyond"):
        step(within, "accept", READER, Role.READER)


def test_an_overdue_case_goes_back_to_the_group_and_the_coordinator_is_told() -> None:
    case = step(delivered(Routing.GROUP), "claim", READER, Role.MEMBER)
    assert case.due_ms is not None
    with pytest.raises(CaseRefused, match="not overdue"):
        step(case, "escalate", SENDER, Role.NODE, now=case.due_ms)
    assert case.overdue(case.due_ms + 1)
    late, effects = apply(
        case, "escalate", by=SENDER, roles=frozenset({Role.NODE}), now=case.due_ms + 1
    )
    assert (late.state, late.reader, late.escalations) == (State.DELIVERED, None, 1)
    assert late.due_ms == case.due_ms + 1 + case.delay_ms
    assert [e.kind for e in effects] == ["notify_coordinator", "offer_to_members"]
    with pytest.raises(CaseRefused, match="taken from you"):
        step(late, "claim", READER, Role.MEMBER)
    assert step(late, "claim", OTHER, Role.MEMBER).reader == OTHER


def test_an_overdue_case_nobody_took_is_escalated_too() -> None:
    case = delivered(Routing.GROUP)
    assert case.due_ms is not None
    late, effects = apply(
        case, "escalate", by=SENDER, roles=frozenset({Role.NODE}), now=case.due_ms + 1
    )
    assert (late.state, late.reader, late.escalations) == (State.DELIVERED, None, 1)
    assert late.passed_over == frozenset()
    assert [e.kind for e in effects] == ["notify_coordinator", "offer_to_members"]


def test_messages_addenda_and_images_change_nothing_but_are_checked() -> None:
    case = step(delivered(Routing.PAIR), "message", READER, Role.READER)
    case = step(case, "add_images", SENDER, Role.SENDER)
    assert case.state is State.ASSIGNED
    with pytest.raises(CaseRefused, match="cannot addendum a case that is assigned"):
        step(case, "addendum", READER, Role.READER)
    reported = step(case, "report", READER, Role.READER)
    assert step(reported, "addendum", READER, Role.READER) == reported
    with pytest.raises(CaseRefused, match="only the reader may addendum"):
        step(reported, "addendum", SENDER, Role.SENDER)


def test_cancel_until_reported_and_never_after() -> None:
    assert step(delivered(Routing.GROUP), "cancel", SENDER, Role.SENDER).state is State.CANCELLED
    reported = step(delivered(Routing.PAIR), "report", READER, Role.READER)
    with pytest.raises(CaseRefused, match="cannot cancel a case that is reported"):
        step(reported, "cancel", SENDER, Role.SENDER)


def in_state(state: State) -> Case:
    """A case in ``state`` with what that state implies (a reader, an overdue date)."""
    return replace(new_case(), state=state, reader=READER, due_ms=NOW - 1, delivered_ms=NOW - 2)


@pytest.mark.parametrize("event", sorted(BY_EVENT))
@pytest.mark.parametrize("state", list(State))
def test_every_event_in_every_state_follows_the_table(state: State, event: str) -> None:
    transition = BY_EVENT[event]
    case = in_state(state)
    if event in ("accept", "decline"):  # only a pair's case sent beyond its quota
        case = replace(case, routing=Routing.PAIR, target=READER, needs_acceptance=True)

    def do(roles: frozenset[Role]) -> tuple[Case, list[Notify]]:
        if event == "assign":
            return assign_to(case, OTHER, by=COORDINATOR, roles=roles, now=NOW)
        return apply(case, event, by=OTHER, roles=roles, now=NOW)

    if state not in transition.sources:
        with pytest.raises(CaseRefused, match=f"cannot {event} a case that is {state.value}|taken"):
            do(transition.who)
        return
    after, _ = do(transition.who)
    expected = transition.target or state
    if event == "deliver":  # a group's case (new_case) waits for a reader
        expected = State.DELIVERED
    assert after.state is expected
    others = EVERYONE - transition.who  # nobody else may do it
    if others:
        with pytest.raises(CaseRefused, match=f"only the .* may {event}"):
            do(others)


def test_the_table_reaches_every_state_and_names_each_event_once() -> None:
    assert len(BY_EVENT) == len(TRANSITIONS)
    reached = {t.target for t in TRANSITIONS if t.target} | {State.DRAFT}
    assert reached == set(State)
    with pytest.raises(LocalProtocolError, match="unknown case event"):
        apply(new_case(), "approve", by=SENDER, roles=EVERYONE, now=NOW)
    with pytest.raises(LocalProtocolError, match="assign_to"):
        apply(new_case(), "assign", by=SENDER, roles=EVERYONE, now=NOW)
    with pytest.raises(LocalProtocolError, match="delay"):
        replace(new_case(), delay_ms=0)
