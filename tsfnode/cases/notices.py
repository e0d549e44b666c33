"""Which notices become e-mails, and for whom: the one place where the node's
notifications (``CaseService.notify``), deadlines, applications to attest and nudges
are turned into rows of the e-mail queue (``store/mail.py``), each for the people of
this node who may see what it is about (``policy.may_see``), as they chose.

A notice's key names what it is about, so that the same thing is never queued twice:
``case:CASE:KIND:TIME`` (one e-mail per case, kind and decision: the two notifications
of one escalation to a group make one e-mail), ``due_soon:CASE:DUE``,
``overdue:CASE:DUE``, ``application:ID``, ``nudge:KIND:SUBJECT:WEEK``.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocol.cases import Case, State
from protocol.directory import View
from tsfnode.cases import policy
from tsfnode.cases.nudges import Nudge, NudgeRules, facts, nudges
from tsfnode.config import NodeConfig
from tsfnode.mail.messages import Notice
from tsfnode.mail.service import MailService, queue_notice
from tsfnode.store.cases import CaseRow
from tsfnode.store.mail import MailStore

HOUR_MS = 3_600_000

# the node's notification kinds (protocol/cases.py Notify) -> the e-mail's kind
MAIL_KINDS = {
    "notify_reader": "case_for_you",
    "assigned": "case_for_you",
    "ask_acceptance": "case_for_you",
    "offer_to_members": "case_offered",
    "notify_coordinator": "case_offered",
    "offered": "case_offered",
    "escalated": "case_offered",
    "message": "message",
    "notify_sender": "case_update",  # report_back once the report is back
}


def mail_kind(kind: str, case: Case) -> str | None:
    """The e-mail a notification makes (None: none, e.g. images added, evaluated)."""
    found = MAIL_KINDS.get(kind)
    if found == "case_update" and case.report_back_ms is not None:
        return "report_back"
    return found


def people_for(to: bytes | None, case: Case, view: View) -> set[bytes]:
    """Who a notification ``to`` a person, a group (its coordinators and readers) or
    everyone (None: the case's people) is for; then only those who may see the case."""
    if to is not None and to not in view.groups:
        candidates = {to}
    else:
        group = to if to is not None else policy.group_of(case, view)
        candidates = {case.sender, *([case.reader] if case.reader else [])}
        if group is not None:
            candidates |= set(view.coordinators.get(group, ()))
            candidates |= {k for k, m in view.members.items() if m.body["group"] == group}
    return {p for p in candidates if policy.may_see(case, p, view)}


class Notices:
    def __init__(self, mail: MailStore, config: NodeConfig, sender: MailService | None) -> None:
        self.mail = mail
        self.config = config
        self.sender = sender
        self.rules = NudgeRules(
            silent_weeks=config.notices_silent_weeks,
            quota_unused_weeks=config.notices_quota_unused_weeks,
            escalated=config.notices_escalated,
            escalated_of=config.notices_escalated_of,
        )

    @property
    def on(self) -> bool:
        return bool(self.config.smtp_host)

    def wake(self) -> None:
        if self.sender is not None:
            self.sender.wake()

    async def _queue(self, people: Iterable[bytes], key: str, notice: Notice, now: int) -> int:
        queued = 0
        for contact in (await self.mail.contacts_by_key(sorted(people))).values():
            queued += await queue_notice(self.mail, self.config, contact, key, notice, now)
        return queued

    async def notification(
        self, to: bytes | None, case: Case, kind: str, view: View, now: int
    ) -> int:
        """A notification of the case service (inside its decision: not committed)."""
        found = mail_kind(kind, case)
        if not self.on or found is None:
            return 0
        people = people_for(to, case, view)
        if found == "case_offered":
            people -= set(case.passed_over)  # taken from them: not theirs to claim again
        key = f"case:{case.case_id.hex()}:{found}:{now}"
        return await self._queue(people, key, Notice(found, case.case_id), now)

    async def deadlines(self, rows: Iterable[CaseRow], now: int) -> int:
        """Readers told of a case due within ``due_soon_hours``, and once it is overdue
        (committed)."""
        if not self.on:
            return 0
        soon = self.config.notices_due_soon_hours * HOUR_MS
        queued = 0
        for row in rows:
            case = row.case
            if case.state is not State.ASSIGNED or case.reader is None or case.due_ms is None:
                continue
            if now >= case.due_ms:
                kind, figures = "overdue", {}
            elif now >= case.due_ms - soon:
                kind = "due_soon"
                figures = {"hours": max(1, -(-(case.due_ms - now) // HOUR_MS))}
            else:
                continue
            key = f"{kind}:{case.case_id.hex()}:{case.due_ms}"
            queued += await self._queue(
                [case.reader], key, Notice(kind, case.case_id, figures), now
            )
        await self.mail.commit()
        if queued:
            self.wake()
        return queued

    async def application(
        self, application_id: int, group: bytes, role: str, view: View, now: int
    ) -> int:
        """An application to attest: the group's coordinators with an account here."""
        if not self.on:
            return 0
        record = view.group_records.get(group)
        name = "" if record is None else str(record.body["name"])
        notice = Notice("application", None, {"group": name, "role": role})
        queued = await self._queue(
            view.coordinators.get(group, ()), f"application:{application_id}", notice, now
        )
        await self.mail.commit()
        if queued:
            self.wake()
        return queued

    def nudges(self, view: View, rows: Iterable[CaseRow], here: bytes, now: int) -> list[Nudge]:
        pairs, members, readers = facts(view, rows, here)
        return nudges(now, self.rules, pairs, members, readers)

    async def send_nudges(self, view: View, rows: Iterable[CaseRow], here: bytes, now: int) -> int:
        """Each nudge e-mailed to its group's coordinators with an account here, once a
        week (committed)."""
        if not self.on:
            return 0
        queued = 0
        for nudge in self.nudges(view, rows, here, now):
            notice = Notice(nudge.kind, None, nudge.figures)
            queued += await self._queue(
                view.coordinators.get(nudge.group, ()), nudge.key(now), notice, now
            )
        await self.mail.commit()
        if queued:
            self.wake()
        return queued
