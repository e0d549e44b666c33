"""Who may see and do what with a case: decided here, and nowhere else.

What each role may *do* is the transition table of protocol/cases.py. This module says
which of those roles a person holds for a case, read from the directory, and whether
they may see the case at all. Every entry point asks it: the worklist and the case page
(web/cases.py), the viewer and the exports (web/viewer.py, web/tools.py), the JSON API
(api/cases.py), DICOMweb (dicomweb/service.py), and the case service itself, when a
person acts on a case here and when a signed request reaches the sender's node
(cases/service.py). A case that a person may not see does not exist for them: the
service answers 404 "no such case on this node", the answer for a wrong id.

Who holds which role:

- ``SENDER``: the person who sent the case.
- ``READER``: the reader who has the case (assigned, claimed or accepted). For a pair's
  case, also the pair's reader while it waits for them (sent beyond the weekly quota,
  they accept or decline it), unless it was taken from them when overdue.
- ``COORDINATOR``: a coordinator of the case's group: the group or community it was
  routed to, or for a pair's case the group that attested the pair's reader.
- ``MEMBER``: an attested reader or coordinator of that group or community, who may
  claim the case. For a pair's case only once it has been escalated back to the group:
  a pair is an agreement between two people, and its cases are theirs until then.

Who may see a case: whoever holds one of these roles, and the pair's reader for the
pair's cases (even once taken from them when overdue: they read them before).

Who may know who has a case (the reader's name, the reader's documents): the sender,
the reader themselves and the coordinators of its group. A member who may see a case
but is none of these learns only that it is taken (a claim refused between members used
to name who had it).

Everything here is pure: a case, a person's key, the directory's view in force.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from protocol.cases import Case, Role, Routing
from protocol.directory import View

READING_ROLES = ("reader", "coordinator")  # the member roles that read cases
T = TypeVar("T")


def group_of(case: Case, view: View) -> bytes | None:
    """The group a case belongs to: the group or community it was routed to, or for a
    pair's case the group that attested the pair's reader (None if they are not, or no
    longer, attested)."""
    if case.routing is not Routing.PAIR:
        return case.target
    reader = view.members.get(view.current(case.target))
    return None if reader is None else bytes(reader.body["group"])


def _is_member(person: bytes, group: bytes, view: View) -> bool:
    member = view.members.get(person)
    return (
        member is not None
        and member.body["group"] == group
        and member.body["role"] in READING_ROLES
    )


def roles(case: Case, person: bytes, view: View) -> frozenset[Role]:
    """The roles ``person`` holds for ``case`` (the node's own role, NODE, is never a
    person's: the node passes it itself). A person who rotated their key holds, under the
    new key, the roles the case gave the old one (SPEC.md §8.5)."""
    held: set[Role] = set()
    current = view.current
    person = current(person)
    if person == current(case.sender):
        held.add(Role.SENDER)
    waits_for_pair_reader = (
        case.routing is Routing.PAIR
        and person == current(case.target)
        and case.reader is None
        and person not in {current(k) for k in case.passed_over}
    )
    if (case.reader is not None and person == current(case.reader)) or waits_for_pair_reader:
        held.add(Role.READER)
    group = group_of(case, view)
    if group is not None:
        if person in view.coordinators.get(group, ()):
            held.add(Role.COORDINATOR)
        offered = case.routing is not Routing.PAIR or case.escalations > 0
        if offered and _is_member(person, group, view):
            held.add(Role.MEMBER)
    return frozenset(held)


def may_see(case: Case, person: bytes, view: View) -> bool:
    """Whether ``person`` may see ``case``: its form, documents and images."""
    if case.routing is Routing.PAIR and view.current(person) == view.current(case.target):
        return True
    return bool(roles(case, person, view))


def visible(items: Iterable[T], person: bytes, view: View, case_of: Callable[[T], Case]) -> list[T]:
    """The items of ``items`` (cases, or rows that ``case_of`` turns into cases) whose
    case ``person`` may see, in their order."""
    return [item for item in items if may_see(case_of(item), person, view)]


def may_know_reader(case: Case, person: bytes, view: View) -> bool:
    """Whether ``person`` may be told who has ``case`` (its reader, who asked to claim
    it, the documents its reader signed): its sender, its reader, the coordinators of
    its group. Other members who see the case learn only that it is taken."""
    return bool(roles(case, person, view) & {Role.SENDER, Role.READER, Role.COORDINATOR})


def shown_to(person: bytes, case: Case, fields: dict[str, Any], view: View) -> dict[str, Any]:
    """A case's summary (``cases.service.summary``) as ``person`` may see it: the reader
    and a claimant other than the person left out for those who may not know them."""
    if may_know_reader(case, person, view):
        return fields
    out = dict(fields)
    out["reader"] = None
    if out.get("claim_sent_by") != person.hex():
        out["claim_sent_by"] = None
    out["taken"] = case.reader is not None
    return out
