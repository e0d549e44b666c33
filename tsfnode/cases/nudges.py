"""Nudges against silent pairs and groups, pure: from ``now``, the rules and the facts
(what the directory says of pairs and members, what this node's cases say of them), the
nudges a coordinator is shown on their page and sent by e-mail, with their figures.

- ``silent_pair``: an active pair with no case since it was agreed ``silent_weeks`` ago;
- ``silent_member``: a group's sender or reader with no case since they were attested
  ``silent_weeks`` ago (a pair that never exchanges a first case dies silently);
- ``quota_unused``: an active pair whose last case is ``quota_unused_weeks`` old;
- ``escalated_reader``: a reader ``escalated`` of whose last ``escalated_of`` cases were
  escalated away from them when overdue.

A node knows the cases it holds: a pair or a member is judged where its cases are (the
home node of the pair's reader or sender, the member's home node); the readers' record
from the cases held here. Each nudge is e-mailed once per week (``Nudge.key``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from protocol.directory import View, pair_terms
from tsfnode.store.cases import CaseRow

WEEK_MS = 7 * 86_400_000
KINDS = ("silent_pair", "silent_member", "quota_unused", "escalated_reader")


@dataclass(frozen=True)
class NudgeRules:
    silent_weeks: int = 4
    quota_unused_weeks: int = 3
    escalated: int = 3
    escalated_of: int = 5


@dataclass(frozen=True)
class PairFacts:
    pair_id: bytes
    group: bytes  # the reader's group, whose coordinators are told
    reader: str  # display names
    sender: str
    since_ms: int  # agreed (the record in force)
    weekly_quota: int
    cases: int
    last_case_ms: int | None


@dataclass(frozen=True)
class MemberFacts:
    person: bytes
    group: bytes
    name: str
    role: str
    since_ms: int  # the charter accepted
    cases: int


@dataclass(frozen=True)
class ReaderFacts:
    reader: bytes
    group: bytes
    name: str
    escalated: tuple[bool, ...]  # their cases, oldest first: escalated away from them?


@dataclass(frozen=True)
class Nudge:
    kind: str  # one of KINDS
    group: bytes
    subject: bytes  # the pair's id, or the person's key
    figures: dict[str, Any] = field(compare=False)

    def key(self, now: int) -> str:
        """The notice's key: the same nudge is e-mailed once per week."""
        return f"nudge:{self.kind}:{self.subject.hex()}:{now // WEEK_MS}"


def _weeks(ms: int) -> int:
    return max(0, ms // WEEK_MS)


def nudges(
    now: int,
    rules: NudgeRules,
    pairs: Iterable[PairFacts] = (),
    members: Iterable[MemberFacts] = (),
    readers: Iterable[ReaderFacts] = (),
) -> list[Nudge]:
    """The nudges in force at ``now``, in a stable order."""
    out: list[Nudge] = []
    for pair in pairs:
        names = {"reader": pair.reader, "sender": pair.sender}
        if pair.cases == 0 and now - pair.since_ms >= rules.silent_weeks * WEEK_MS:
            figures = {**names, "weeks": _weeks(now - pair.since_ms)}
            out.append(Nudge("silent_pair", pair.group, pair.pair_id, figures))
        elif (
            pair.last_case_ms is not None
            and now - pair.last_case_ms >= rules.quota_unused_weeks * WEEK_MS
        ):
            figures = {
                **names,
                "weeks": _weeks(now - pair.last_case_ms),
                "quota": pair.weekly_quota,
                "cases": pair.cases,
            }
            out.append(Nudge("quota_unused", pair.group, pair.pair_id, figures))
    for member in members:
        if member.cases == 0 and now - member.since_ms >= rules.silent_weeks * WEEK_MS:
            figures = {"member": member.name, "weeks": _weeks(now - member.since_ms)}
            out.append(Nudge("silent_member", member.group, member.person, figures))
    for reader in readers:
        last = reader.escalated[-rules.escalated_of :]
        count = sum(last)
        if count >= rules.escalated:
            figures = {"reader": reader.name, "escalated": count, "of": len(last)}
            out.append(Nudge("escalated_reader", reader.group, reader.reader, figures))
    return sorted(out, key=lambda n: (n.group, KINDS.index(n.kind), n.subject))


def facts(
    view: View, rows: Iterable[CaseRow], here: bytes
) -> tuple[list[PairFacts], list[MemberFacts], list[ReaderFacts]]:
    """The facts of the directory's pairs and members whose cases this node ``here``
    holds, from its case ``rows``."""
    rows = list(rows)
    by_pair: dict[bytes, list[int]] = {}
    sent: dict[bytes, int] = {}
    read: dict[bytes, list[tuple[int, bool]]] = {}
    for row in rows:
        case = row.case
        at = case.submitted_ms or row.updated_ms
        if row.pair_id is not None:
            by_pair.setdefault(row.pair_id, []).append(at)
        sent[case.sender] = sent.get(case.sender, 0) + 1
        for reader in {*case.passed_over, *([case.reader] if case.reader else [])}:
            read.setdefault(reader, []).append((at, reader in case.passed_over))

    def name(key: bytes) -> str:
        member = view.members.get(key)
        return "?" if member is None else str(member.body["display_name"])

    def home(key: bytes) -> bytes | None:
        member = view.members.get(key)
        return None if member is None else bytes(member.body["home_node"])

    pairs = []
    for pair_id, doc in sorted(view.pairs.items()):
        terms = pair_terms(doc)
        reader, sender = terms["reader"], terms["sender"]
        if terms["status"] != "active" or here not in (home(reader), home(sender)):
            continue
        times = by_pair.get(pair_id, [])
        pairs.append(
            PairFacts(
                pair_id=pair_id,
                group=bytes(view.members[reader].body["group"]),
                reader=name(reader),
                sender=name(sender),
                since_ms=int(doc.body["version"]),
                weekly_quota=int(terms["weekly_quota"]),
                cases=len(times),
                last_case_ms=max(times) if times else None,
            )
        )
    members = []
    readers = []
    for key, doc in sorted(view.members.items()):
        role = str(doc.body["role"])
        group = bytes(doc.body["group"])
        if role not in ("sender", "reader") or home(key) != here:
            continue
        count = sent.get(key, 0) if role == "sender" else len(read.get(key, []))
        members.append(
            MemberFacts(key, group, name(key), role, int(doc.body["charter_accepted"]), count)
        )
    for key, history in sorted(read.items()):
        member = view.members.get(key)
        if member is None:
            continue
        readers.append(
            ReaderFacts(
                key,
                bytes(member.body["group"]),
                name(key),
                tuple(escalated for _, escalated in sorted(history)),
            )
        )
    return pairs, members, readers
