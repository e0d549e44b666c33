"""Who may see and do what with a case (tsfnode/cases/policy.py), as a table: pure, over
cases made by protocol/cases.py's machine and a directory view of really signed records.

The people: Koffi sends; Marie reads in a pair with him and belongs to the paediatric
group, whose coordinator is Anne and whose other reader is Awa; Fatou reads for the
COVID community (coordinated by Ousmane); Ines is another sender. Nobody else's roles
for a case come from anything but the directory and the case itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import pytest

from bootstrap.network import demo_anchor, load_network
from bootstrap.tools import attest_member, create_group
from protocol import cases as machine
from protocol.cases import Case, Role, Routing, State
from protocol.directory import View, compute_view
from protocol.documents import decode_document
from protocol.errors import CaseRefused
from protocol.identity import Identity
from tsfnode.cases import policy

NOW = 1_780_000_000_000
HOUR = 3_600_000
S, R, C, M = Role.SENDER, Role.READER, Role.COORDINATOR, Role.MEMBER


def _person() -> Identity:
    return Identity.generate(os.urandom)


@dataclass(frozen=True)
class People:
    koffi: Identity
    marie: Identity
    awa: Identity
    anne: Identity
    fatou: Identity
    ousmane: Identity
    ines: Identity
    paediatrics: Identity
    community: Identity

    def key(self, name: str) -> bytes:
        person: Identity = getattr(self, name)
        return person.public.key


PEOPLE = People(*(_person() for _ in range(9)))


def _view() -> View:
    network = load_network("demo")
    anchor, node = demo_anchor(), _person().public
    p = PEOPLE
    raws: list[bytes] = []
    for group, coordinator, kind, routing, covers in (
        (p.paediatrics, p.anne, "subspeciality", "assign", ["paediatrics"]),
        (p.community, p.ousmane, "community", "pool", ["chest"]),
    ):
        raws += create_group(
            network, anchor, group, name=kind, kind=kind, routing=routing, may_admit=False,
            coordinators=[coordinator.public], subspecialities=covers, now=NOW,
        )  # fmt: skip
    hospital = _person()
    raws += create_group(
        network, anchor, hospital, name="CHU Cotonou", kind="institutional", routing="assign",
        may_admit=False, coordinators=[hospital.public], now=NOW,
    )  # fmt: skip
    for coordinator, group, member, role in (
        (p.anne, p.paediatrics, p.anne, "coordinator"),
        (p.anne, p.paediatrics, p.marie, "reader"),
        (p.anne, p.paediatrics, p.awa, "reader"),
        (p.ousmane, p.community, p.ousmane, "coordinator"),
        (p.ousmane, p.community, p.fatou, "reader"),
        (hospital, hospital, p.koffi, "sender"),
        (hospital, hospital, p.ines, "sender"),
    ):
        raws.append(
            attest_member(
                network, coordinator, group=group.public, member=member.public, role=role,
                display_name=role, registration="ONMB-1", diploma="DES", charter_accepted=NOW,
                facility="CHU", subspecialities=[], languages=["fr"], home_node=node,
                weekly_capacity=5, now=NOW,
            )
        )  # fmt: skip
    return compute_view([decode_document(r) for r in raws], network.network, NOW)


VIEW = _view()


def _case(routing: Routing, target: bytes, **changes: object) -> Case:
    case = Case(os.urandom(16), PEOPLE.key("koffi"), routing, target, 48 * HOUR)
    return replace(case, **changes)  # type: ignore[arg-type]


def _by(case: Case, event: str, who: str, roles: frozenset[Role], at: int = NOW) -> Case:
    return machine.apply(case, event, by=PEOPLE.key(who), roles=roles, now=at)[0]


def _node(case: Case, event: str, at: int = NOW) -> Case:
    return machine.apply(case, event, by=b"node", roles=frozenset({Role.NODE}), now=at)[0]


def _cases() -> dict[str, Case]:
    p = PEOPLE
    pair = _node(_case(Routing.PAIR, p.key("marie"), state=State.IN_TRANSIT), "deliver")
    over_quota = _node(
        _case(Routing.PAIR, p.key("marie"), state=State.IN_TRANSIT, needs_acceptance=True),
        "deliver",
    )
    escalated = _node(pair, "escalate", at=NOW + 49 * HOUR)
    group = _node(_case(Routing.GROUP, p.key("paediatrics"), state=State.IN_TRANSIT), "deliver")
    community = _node(
        _case(Routing.COMMUNITY, p.key("community"), state=State.IN_TRANSIT), "deliver"
    )
    return {
        "pair, read by its reader": pair,
        "pair, beyond the quota": over_quota,
        "pair, escalated": escalated,
        "pair, escalated, claimed": _by(escalated, "claim", "awa", frozenset({M})),
        "pair, reported": _by(pair, "report", "marie", frozenset({R})),
        "group, waiting": group,
        "group, claimed": _by(group, "claim", "awa", frozenset({M})),
        "community, waiting": community,
        "pair of a reader no longer attested": _case(
            Routing.PAIR, _person().public.key, state=State.ASSIGNED
        ),
    }


CASES = _cases()
NONE: frozenset[Role] = frozenset()

# (case, person, the roles they hold, whether they see it)
TABLE: list[tuple[str, str, frozenset[Role], bool]] = [
    # A pair's case is the pair's and their group's coordinator's, until it is escalated.
    ("pair, read by its reader", "koffi", frozenset({S}), True),
    ("pair, read by its reader", "marie", frozenset({R}), True),
    ("pair, read by its reader", "anne", frozenset({C}), True),
    ("pair, read by its reader", "awa", NONE, False),  # the leak of issue 22, item 3
    ("pair, read by its reader", "fatou", NONE, False),
    ("pair, read by its reader", "ines", NONE, False),
    ("pair, beyond the quota", "marie", frozenset({R}), True),  # she accepts or declines
    ("pair, beyond the quota", "awa", NONE, False),
    ("pair, reported", "marie", frozenset({R}), True),
    ("pair, reported", "awa", NONE, False),
    # Escalated: offered to the group, whose members may claim it; its late reader still
    # sees the case but holds no reader's role (she cannot accept it back).
    ("pair, escalated", "awa", frozenset({M}), True),
    ("pair, escalated", "marie", frozenset({M}), True),
    ("pair, escalated", "anne", frozenset({C, M}), True),
    ("pair, escalated", "koffi", frozenset({S}), True),
    ("pair, escalated", "fatou", NONE, False),
    ("pair, escalated, claimed", "awa", frozenset({R, M}), True),
    ("pair, escalated, claimed", "marie", frozenset({M}), True),
    # A group's case is the group's: its members may claim it, its coordinator assign it.
    ("group, waiting", "awa", frozenset({M}), True),
    ("group, waiting", "marie", frozenset({M}), True),
    ("group, waiting", "anne", frozenset({C, M}), True),
    ("group, waiting", "koffi", frozenset({S}), True),
    ("group, waiting", "fatou", NONE, False),
    ("group, waiting", "ousmane", NONE, False),
    ("group, waiting", "ines", NONE, False),
    ("group, claimed", "awa", frozenset({R, M}), True),
    ("group, claimed", "marie", frozenset({M}), True),
    ("community, waiting", "fatou", frozenset({M}), True),
    ("community, waiting", "ousmane", frozenset({C, M}), True),
    ("community, waiting", "awa", NONE, False),
    ("community, waiting", "anne", NONE, False),
    # The pair's reader gone from the directory: no group, so no coordinator either.
    ("pair of a reader no longer attested", "koffi", frozenset({S}), True),
    ("pair of a reader no longer attested", "anne", NONE, False),
]


@pytest.mark.parametrize(("case", "person", "roles", "sees"), TABLE)
def test_who_holds_which_role_and_sees_a_case(
    case: str, person: str, roles: frozenset[Role], sees: bool
) -> None:
    found = CASES[case]
    assert policy.roles(found, PEOPLE.key(person), VIEW) == roles
    assert policy.may_see(found, PEOPLE.key(person), VIEW) is sees


def test_a_list_is_filtered_to_what_the_person_may_see_in_its_order() -> None:
    ordered = list(CASES.values())
    awa = policy.visible(ordered, PEOPLE.key("awa"), VIEW, lambda c: c)
    assert awa == [c for c in ordered if policy.may_see(c, PEOPLE.key("awa"), VIEW)]
    assert CASES["pair, read by its reader"] not in awa
    assert CASES["pair, escalated"] in awa
    assert policy.visible(ordered, PEOPLE.key("ines"), VIEW, lambda c: c) == []


def test_the_roles_are_those_the_machine_needs_and_no_more() -> None:
    """What the table of protocol/cases.py lets each person do with the roles held."""
    p, pair = PEOPLE, CASES["pair, read by its reader"]

    def allowed(case: Case, event: str, who: str) -> bool:
        roles = policy.roles(case, p.key(who), VIEW)
        try:
            machine.apply(case, event, by=p.key(who), roles=roles, now=NOW + 50 * HOUR)
        except CaseRefused:
            return False
        return True

    assert allowed(pair, "report", "marie")
    assert not allowed(pair, "report", "awa")
    assert allowed(pair, "release", "anne")  # the coordinator may take it back
    assert not allowed(CASES["pair, beyond the quota"], "claim", "awa")
    assert allowed(CASES["pair, beyond the quota"], "accept", "marie")
    assert allowed(CASES["pair, escalated"], "claim", "awa")
    assert not allowed(CASES["pair, escalated"], "claim", "marie")  # taken from her
    assert not allowed(replace(CASES["pair, escalated"], needs_acceptance=True), "accept", "marie")
    assert allowed(CASES["group, waiting"], "claim", "marie")
    assert not allowed(CASES["community, waiting"], "claim", "awa")
