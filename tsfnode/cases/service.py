"""Cases between nodes: the I/O shell around protocol/cases.py.

A case is kept by the **sender's node** (role ``sender``), which decides its state: it
applies every request in the order it arrives (so of two claims exactly one wins) and
tells every node the case was sent to (role ``copy``) what it decided. Everything that
crosses nodes is a signed document in a sealed bundle, moved by the transfer service
(durable, resumable, through relays):

- the study's bundle carries the sender's signed ``case_request`` (documents.tsfd) and
  the images, to the pair's reader's node, or to every node of the group's readers;
- a copy sends people's requests (``case_event``: claim, assign, release, accept,
  decline) and the reader's report, addenda and messages to the sender's node;
- the sender's node sends its decisions (``case_event``: assigned, released, escalated,
  cancelled, closed), the sender's messages and evaluation, to the copies.

Who may do what is the table of protocol/cases.py; the roles a person holds for a case,
and who may see it, are decided by policy.py from the directory (the pair, the group's
coordinators, its attested members). A case a person may not see is answered as one that
does not exist (``seen``: 404 "no such case on this node").
Routing, the weekly quota, due dates, escalation and how a copy follows the decisions
are decided by protocol/coordinator.py: this service gives it the case, the directory's
route and the time, and carries out the effects it returns (``_carry_out``). Every
access and transition is written to the audit log (audit_log.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from protocol import cases as machine
from protocol.bundle import BundleHeader, Manifest
from protocol.caseform import CASE_FORM, age_of, check_case_form
from protocol.cases import BY_DECISION, Case, Decided, Notify, Role, Routing, State
from protocol.coordinator import (
    HOUR_MS,
    REQUESTS,
    Audit,
    Coordinator,
    Route,
    Seal,
    Step,
    Tell,
    deadline,
    group_route,
    next_deadline,
    pair_route,
    quota_since,
    route_of,
    week_count,
)
from protocol.directory import View
from protocol.documents import Document, decode_document, encode_document, split_documents
from protocol.errors import CaseRefused, MalformedError, ProtocolError
from protocol.identity import Identity, PublicIdentity
from protocol.transfer import PRIORITY_DOCUMENT, PRIORITY_ROUTINE, PRIORITY_URGENT
from tsfnode.cases import policy
from tsfnode.cases.audit_log import AuditLog
from tsfnode.cases.metrics import publish_stats
from tsfnode.cases.notices import Notices
from tsfnode.cases.nudges import Nudge
from tsfnode.cases.pairs import keep_proposal
from tsfnode.cases.reader_images import (
    MAX_PER_CASE,
    NOT_AUTHORIZED,
    OUT_OF_RESOURCES,
    READER_CLASSES,
    ReaderInstance,
    Refusal,
    bundle_name,
    image_path,
    read_if_matches,
    write_image,
)
from tsfnode.cases.refused import case_refused
from tsfnode.errors import CaseError, NodeError
from tsfnode.i18n import N_, Key
from tsfnode.images.listing import HeaderBudget
from tsfnode.images.mpr import volumes_folder
from tsfnode.intake.owners import NoSuchStudy, StudyOwners
from tsfnode.intake.pseudonyms import PseudonymMap
from tsfnode.logs import log
from tsfnode.mail.service import MailService
from tsfnode.store.cases import CaseRow, CaseStore
from tsfnode.store.mail import MailStore
from tsfnode.store.reader_images import ReaderImage, ReaderImageStore
from tsfnode.store.transfers import TransferStore
from tsfnode.tasks import stop_task
from tsfnode.transfers.context import NodeContext, NodeService
from tsfnode.transfers.outbox import queue_bundle
from tsfnode.transfers.sealing import DOCUMENTS_FILE, seal_documents, seal_study
from tsfnode.transfers.service import TransferService

DAY_MS = 24 * 3_600_000
NUDGE_INTERVAL_MS = 3_600_000  # nudges looked for hourly (each e-mailed once a week)
STATS_AFTER_CHANGE_MS = 10_000  # the figures signed again at most this often while cases move
ROUTINGS = {"pair": Routing.PAIR, "group": Routing.GROUP, "community": Routing.COMMUNITY}
MAX_LOCAL_REFERENCE = 200  # characters of the sender's own reference for a patient
# Requests a copy sends to the sender's node (cancel and close are the sender's, there).
ASKED_FROM_COPY = ("claim", "assign", "release", "accept", "decline")
NO_SUCH_CASE = "no such case on this node"  # also the answer for a case not yours to see


# The documents a bundle of each purpose carried (kept with the case), to send again
# when its recipient's key was lost; other purposes carried the node's case events.
RESENT_KINDS = {
    "report": "report",
    "addendum": "report",
    "evaluation": "evaluation",
    "message": "case_message",
}


def _hex(key: bytes | None) -> str | None:
    return None if key is None else key.hex()


# Where a person's act is kept (``CaseService._acting``): the role the case has on this
# node, and the refusal (its text, its catalogue key) where it has another.
IMAGES_AT_SENDER = (
    "sender",
    "images are added on the sender's node",
    N_("refused_images_at_sender"),
)
REPORTS_AT_READER = (
    "copy",
    "reports are written on the reader's node",
    N_("refused_report_at_reader"),
)
EVALUATIONS_AT_SENDER = (
    "sender",
    "evaluations are written on the sender's node",
    N_("refused_evaluation_at_sender"),
)


class CaseService(NodeService):
    def __init__(
        self, context: NodeContext, transfers: TransferService, mail: MailService | None = None
    ) -> None:
        super().__init__(context)
        self.rows = CaseStore(self.db)
        self.reader_images = ReaderImageStore(self.db)
        self.transfers = transfers
        self.audit = AuditLog(self.store)
        self.notices = Notices(MailStore(self.db), self.config, mail)
        self._last_nudges = 0
        self.coordinator = Coordinator(
            node=self.me, default_delay_hours=self.config.cases_reading_delay_hours
        )
        self._lock = asyncio.Lock()  # one decision at a time (claims race here)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_stats = 0
        self._figures_changed = False  # a decision since the node's figures were signed
        # Called with a case's id when a report (or addendum) reaches this, the sender's,
        # node: each starts what it does in the background (web.report_out: send it to
        # the destinations its sender chose).
        self.report_hooks: list[Callable[[bytes], None]] = []
        transfers.on_opened = self._opened
        transfers.on_delivered = self._delivered
        transfers.on_readdressed = self._readdressed
        transfers.index_opened = HeaderBudget().opening

    # --- life ------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await stop_task(self._task)

    async def _run(self) -> None:
        while True:
            try:
                now = self.clock.now_ms()
                await self.take_in_received(now)
                await self.notices.deadlines(await self.rows.being_read(), now)
                await self.escalate_overdue(now)
                await self.purge_due(now)
                if self._stats_due(now):
                    self._last_stats, self._figures_changed = now, False
                    await publish_stats(self, now)
                if now - self._last_nudges >= NUDGE_INTERVAL_MS:
                    self._last_nudges = now
                    await self.send_nudges(now)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not stop deadlines for good
                log("case loop error", error=type(exc).__name__, detail=str(exc)[:200])
            self._wake.clear()
            sleep_s = await self._sleep_s()  # first: a stop here leaves no coroutine behind
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep_s)

    @contextlib.asynccontextmanager
    async def _decision(self) -> AsyncIterator[None]:
        """One decision at a time; its writes committed once, at its end (also when it
        stops half-way, as each write was before: nothing is rolled back)."""
        async with self._lock:
            try:
                yield
            finally:
                self._figures_changed = True
                await self.rows.commit()

    def _stats_due(self, now: int) -> bool:
        """Whether to sign the node's figures again: every ``stats_interval_ms``, and
        sooner (at most every ``STATS_AFTER_CHANGE_MS``) once a case has moved, so that
        the network's figures follow the cases instead of staying at zero for an hour."""
        since = now - self._last_stats
        interval = self.config.cases_stats_interval_ms
        soon = min(interval, STATS_AFTER_CHANGE_MS)
        return since >= interval or (self._figures_changed and since >= soon)

    async def _sleep_s(self) -> float:
        """Until the next scan, or sooner the next deadline of a case kept here."""
        sleep_ms = self.config.cases_scan_interval_ms
        try:
            cases = [r.case for r in await self.rows.open_decided()]
        except Exception as exc:  # the loop must go on
            log("case loop error", error=type(exc).__name__, detail=str(exc)[:200])
            cases = []
        deadline = next_deadline(cases)
        if deadline is not None:
            sleep_ms = min(sleep_ms, max(0, deadline - self.clock.now_ms()))
        return sleep_ms / 1000

    def view(self, now: int) -> View:
        return self.directory.view(now)

    # --- rows ------------------------------------------------------------------------

    async def row(self, case_id: bytes) -> CaseRow | None:
        return await self.rows.case(case_id)

    async def _require(self, case_id: bytes) -> CaseRow:
        row = await self.row(case_id)
        if row is None:
            raise CaseError(404, NO_SUCH_CASE, key=N_("no_such_case"))
        return row

    async def seen(self, case_id: bytes, person: bytes, now: int) -> CaseRow:
        """The case's row, if ``person`` may see the case (policy.py); otherwise the
        answer for a case that does not exist, so that whether it exists is not told."""
        row = await self.row(case_id)
        if row is None or not policy.may_see(row.case, person, self.view(now)):
            raise CaseError(404, NO_SUCH_CASE, key=N_("no_such_case"))
        return row

    # The writes below are part of a decision (``_decision``), which commits them.

    async def _save(self, case: Case, now: int, **extra: Any) -> None:
        await self.rows.save(case, now, **extra)

    async def _keep_document(self, doc: Document, case_id: bytes, now: int) -> None:
        await self.rows.keep_document(doc, case_id, now)

    async def documents(self, case_id: bytes, kind: str | None = None) -> list[Document]:
        return await self.rows.documents(case_id, kind)

    async def notify(self, person: bytes | None, case_id: bytes, kind: str, now: int) -> None:
        """A notification for a person (or a group's people, or everyone who may see the
        case): shown when they sign in, and queued as e-mail for those who want it, in
        the same decision (``cases/notices.py``)."""
        await self.rows.notify(person, case_id, kind, now)
        row = await self.rows.case(case_id)
        if row is not None and await self.notices.notification(
            person, row.case, kind, self.view(now), now
        ):
            self.notices.wake()

    async def nudges(self, now: int) -> list[Nudge]:
        """The nudges in force (``cases/nudges.py``), from the cases held here."""
        rows = await self.rows.every_case()
        return self.notices.nudges(self.view(now), rows, self.me, now)

    async def send_nudges(self, now: int) -> int:
        rows = await self.rows.every_case()
        return await self.notices.send_nudges(self.view(now), rows, self.me, now)

    async def _audit(
        self, actor: bytes, case_id: bytes, action: str, now: int, detail: str = ""
    ) -> None:
        await self.audit.append(
            actor=actor, case_id=case_id, action=action, detail=detail, now=now, commit=False
        )

    async def _carry_out(self, row: CaseRow, step: Step, now: int, **extra: Any) -> CaseRow:
        """Save the case a step of the coordinator left (with ``extra`` columns), then do
        what it says, in order; the row as it is then."""
        row = dataclasses.replace(row, case=step.case)
        await self._save(step.case, now, **extra)
        for effect in step.effects:
            if isinstance(effect, Notify):
                await self.notify(effect.to, effect.case_id, effect.kind, now)
            elif isinstance(effect, Audit):
                await self._audit(effect.actor, effect.case_id, effect.action, now, effect.detail)
            elif isinstance(effect, Tell):
                await self._tell_copies(row, effect, now)
            elif isinstance(effect, Seal):
                row = await self._offer(row, effect, now)
        return row

    # --- sending documents -----------------------------------------------------------

    async def _send(
        self,
        case_id: bytes,
        docs: list[bytes],
        to: list[bytes],
        purpose: str,
        now: int,
        files: list[tuple[str, Path]] | None = None,
    ) -> bytes | None:
        """Seal ``docs`` (and ``files``: a report's attachments) for the nodes ``to``
        (this node left out) and queue them."""
        header: dict[str, object] = {"type": "documents", "case_id": case_id.hex()}
        return await self.send_header(case_id, header, to, purpose, now, b"".join(docs), files)

    async def send_header(
        self,
        case_id: bytes,
        header: dict[str, object],
        to: list[bytes],
        purpose: str,
        now: int,
        documents: bytes = b"",
        files: list[tuple[str, Path]] | None = None,
    ) -> bytes | None:
        # A node that rotated its key, or was admitted again under a new one, is sealed
        # for under the key that holds its standing now (SPEC.md §8.5).
        view = self.view(now)
        current = [view.current(n) for n in to]
        recipients = [PublicIdentity(n) for n in dict.fromkeys(current) if n != self.me]
        if not recipients:
            return None
        manifest = await asyncio.to_thread(
            seal_documents,
            blobs=self.blobs,
            sender=self.identity,
            recipients=recipients,
            documents=documents,
            case=header,
            now=now,
            priority=PRIORITY_DOCUMENT,
            files=files or [],
        )
        await self.rows.add_bundle(manifest.bundle_id, case_id, purpose)
        await queue_bundle(self.db, manifest, sender=self.me, study_uid="", now=now, commit=False)
        self.transfers.wake()
        return manifest.bundle_id

    async def _tell_copies(self, row: CaseRow, tell: Tell, now: int) -> None:
        """The sender's node tells every node holding the case what it decided."""
        doc = self._event(
            tell.case_id,
            tell.event,
            self.identity,
            now,
            reader=tell.reader,
            note=tell.note,
            seq=tell.seq,
        )
        await self._send(tell.case_id, [doc], list(row.recipients), tell.event, now)

    def _event(
        self,
        case_id: bytes,
        event: str,
        signer: Identity,
        now: int,
        *,
        reader: bytes | None = None,
        note: str = "",
        seq: int | None = None,
    ) -> bytes:
        body: dict[str, Any] = {
            "case_id": case_id,
            "created": now,
            "event": event,
            "reader": reader,
            "note": note,
        }
        if seq is not None:  # a decision of this node (people's requests have none)
            body["seq"] = seq
        return encode_document("case_event", body, signer)

    # --- submitting (the sender's node) ----------------------------------------------

    async def week_count(self, pair_id: bytes, now: int) -> int:
        """The pair's cases that count toward its weekly quota (the coordinator's rule)."""
        rows = await self.rows.pair_cases_since(pair_id, quota_since(now))
        return week_count((r.case for r in rows), now)

    async def submit(
        self,
        person: Identity,
        *,
        account: int,
        study_uid: str,
        routing: str,
        target: str,
        form: dict[str, Any],
        over_quota: bool = False,
        reading_delay_hours: int | None = None,
        local_reference: str = "",
        now: int,
    ) -> dict[str, Any]:
        """A sender asks for a second opinion on a study of this node's intake that their
        account may use (intake/owners.py). ``local_reference``: the sender's own words
        for the patient (a file number, a name), kept on this node only, never sealed,
        signed nor logged."""
        local_reference = " ".join(local_reference.split())
        if len(local_reference) > MAX_LOCAL_REFERENCE:
            raise CaseError(
                400,
                f"local reference: at most {MAX_LOCAL_REFERENCE} characters",
                key=N_("local_reference_too_long"),
                values={"count": MAX_LOCAL_REFERENCE},
            )
        view = self.view(now)
        who = person.public.key
        if view.role_of(who) != "sender":
            raise CaseError(
                403,
                "you are not attested as a sender in the network's directory",
                key=N_("refused_not_a_sender"),
            )
        if routing not in ROUTINGS:
            raise CaseError(
                400, "routing must be pair, group or community", key=N_("refused_routing")
            )
        try:
            form = check_case_form({**form, "study_uid": study_uid})
        except MalformedError as exc:
            raise CaseError(400, f"clinical form: {exc}") from None
        pair_id: bytes | None = None
        route: Route | None
        this_week = 0
        if routing == "pair":
            try:
                pair_id = bytes.fromhex(target)
            except ValueError:
                raise CaseError(
                    404, "no such pair in the directory", key=N_("no_such_pair")
                ) from None
            route = pair_route(view, pair_id)
            if route is None:
                raise CaseError(404, "no such pair in the directory", key=N_("no_such_pair"))
            if route.sender != who:
                raise CaseError(
                    403, "you are not the sender of this pair", key=N_("refused_not_your_pair")
                )
            this_week = await self.week_count(pair_id, now)
        else:
            try:
                target_key = PublicIdentity.from_text(target).key
            except ProtocolError:
                raise CaseError(
                    400, "target must be a group's id", key=N_("refused_no_such_group")
                ) from None
            route = group_route(view, target_key)
            if route is None or (routing == "community" and not route.community):
                raise CaseError(
                    404, f"no such {routing} in the directory", key=N_("refused_no_such_group")
                )
            if routing == "group" and route.community:
                raise CaseError(
                    400,
                    "this group is a community: route the case to it as such",
                    key=N_("refused_group_is_community"),
                )
        case_id = os.urandom(16)
        urgent = form["urgency"] == "urgent"
        try:
            step = self.coordinator.submit(
                case_id=case_id,
                sender=who,
                route=route,
                this_week=this_week,
                over_quota=over_quota,
                delay_hours=reading_delay_hours,
                urgent=urgent,
                now=now,
            )
        except CaseRefused as exc:
            raise case_refused(exc) from None
        case = step.case
        (seal,) = [e for e in step.effects if isinstance(e, Seal)]
        recipients = list(seal.nodes)
        request = encode_document(
            "case_request",
            {
                "case_id": case_id,
                "created": now,
                "sender_node": self.me,
                "routing": routing,
                "target": case.target,
                "pair_id": pair_id,
                "reading_delay_hours": case.delay_ms // HOUR_MS,
                "over_quota": case.needs_acceptance,
                "part": 0,
                "form": form,
            },
            person,
        )
        await self._own_study(study_uid, account)
        sealed = await self._seal(case_id, study_uid, request, recipients, seal.urgent, now)
        row = CaseRow(
            case=case,
            role="sender",
            pair_id=pair_id,
            sender_node=self.me,
            urgent=urgent,
            study_uid=study_uid,
            recipients=tuple(recipients),
            form_json=json.dumps(form, ensure_ascii=False),
            updated_ms=now,
        )
        async with self._decision():  # the case, its request, its images, what follows
            await self.rows.insert(row)
            await self.rows.set_local_reference(case_id, local_reference)
            await self._keep_document(decode_document(request), case_id, now)
            await self._queue_images(case_id, sealed, study_uid, now)
            rest = tuple(e for e in step.effects if e is not seal)
            await self._carry_out(row, Step(case, rest), now)
        log("case submitted", case=case_id.hex()[:8], routing=routing, nodes=len(recipients))
        return {
            "case_id": case_id.hex(),
            "state": case.state.value,
            "bundle_id": sealed.bundle_id.hex(),
            "over_quota": case.needs_acceptance,
        }

    async def add_images(
        self, case_id: bytes, person: Identity, study_uid: str, now: int, *, account: int
    ) -> dict[str, Any]:
        """The sender adds images to an open case (e.g. the lateral view a reader asked
        for): a study of the intake their account may use, sealed with the case's
        request as part n."""
        async with self._decision():
            row, case, who, roles = await self._acting(case_id, person, now, kept=IMAGES_AT_SENDER)
            _step(case, "add_images", who, roles, now)
            await self._own_study(study_uid, account)
            first = (await self.documents(case_id, "case_request"))[0].body
            parts = len(await self.bundles(case_id, "images"))
            request = encode_document(
                "case_request",
                {**first, "created": now, "part": parts, "over_quota": False},
                person,
            )
            manifest = await self._seal(
                case_id, study_uid, request, list(row.recipients), row.urgent, now
            )
            await self._keep_document(decode_document(request), case_id, now)
            await self._queue_images(case_id, manifest, study_uid, now)
            await self._audit(who, case_id, "add_images", now, f"part {parts}")
            return {"bundle_id": manifest.bundle_id.hex(), "part": parts}

    async def _own_study(self, study_uid: str, account: int) -> None:
        """404 unless ``account`` may use the study (intake/owners.py): a study of
        another sender is answered as one that is not there."""
        owners = StudyOwners(self.node_dir.intake)
        try:
            await asyncio.to_thread(owners.require, study_uid, account)
        except NoSuchStudy as exc:
            raise CaseError(404, str(exc), key=N_("no_such_study")) from None

    async def _seal(
        self,
        case_id: bytes,
        study_uid: str,
        request: bytes,
        recipients: list[bytes],
        urgent: bool,
        now: int,
    ) -> Manifest:
        """Seal a study of the intake with the case's request, for ``recipients`` (under
        their current keys; NodeError if it is not in the intake or not reviewed)."""
        view = self.view(now)
        recipients = list(dict.fromkeys(view.current(n) for n in recipients))
        sealed = await asyncio.to_thread(
            seal_study,
            intake=self.node_dir.intake,
            blobs=self.blobs,
            scratch=self.node_dir.root / "tmp",
            sender=self.identity,
            recipients=[PublicIdentity(n) for n in recipients],
            study_uid=study_uid,
            case={"type": "case", "case_id": case_id.hex()},
            priority=PRIORITY_URGENT if urgent else PRIORITY_ROUTINE,
            now=now,
            documents=request,
        )
        return sealed.manifest

    async def _queue_images(
        self, case_id: bytes, manifest: Manifest, study_uid: str, now: int
    ) -> None:
        """Record a sealed bundle as the case's images and put it in the outbox."""
        await self.rows.add_bundle(manifest.bundle_id, case_id, "images")
        await queue_bundle(
            self.db, manifest, sender=self.me, study_uid=study_uid, now=now, commit=False
        )
        self.transfers.wake()

    # --- bundles in and out (transfer hooks) -----------------------------------------

    async def _case_of(self, bundle_id: bytes) -> tuple[str, CaseRow] | None:
        """The purpose of a bundle sealed or taken in here, and its case's row (the
        caller holds the decision lock)."""
        found = await self.rows.bundle(bundle_id)
        row = None if found is None else await self.row(found.case_id)
        return None if found is None or row is None else (found.purpose, row)

    async def _delivered(self, bundle_id: bytes, recipient: bytes, now: int) -> None:
        async with self._decision():
            found = await self._case_of(bundle_id)
            if found is None:
                return
            purpose, row = found
            case, case_id = row.case, row.case_id
            if purpose == "images" and row.role == "sender":
                await self._record_delivery(row, recipient, now)
            elif purpose == "report" and row.role == "copy":
                if case.state is State.REPORTED:
                    case, _ = machine.apply(
                        case, "deliver_report", by=self.me, roles=frozenset({Role.NODE}), now=now
                    )
                    await self._save(case, now)
                    await self._audit(recipient, case_id, "deliver_report", now)

    async def _readdressed(self, bundle_id: bytes, old: bytes, new: bytes, now: int) -> None:
        """A bundle sealed here for a key that was lost is sealed again for the key that
        replaces it (SPEC.md §8.5): the study from the intake with the case's request, or
        the documents it carried, kept with the case. The case goes on."""
        async with self._decision():
            found = await self._case_of(bundle_id)
            if found is None:
                return
            purpose, row = found
            case_id = row.case_id
            if old in row.recipients:
                recipients = tuple(dict.fromkeys(new if r == old else r for r in row.recipients))
                await self.rows.update(case_id, now, recipients=recipients)
            if purpose == "images":
                (request, *_) = await self.documents(case_id, "case_request")
                try:
                    manifest = await self._seal(
                        case_id, row.study_uid, request.raw, [new], row.urgent, now
                    )
                except NodeError as exc:  # the study is no longer in the intake
                    log("study not sealed again", case=case_id.hex()[:8], why=str(exc)[:200])
                    return
                await self._queue_images(case_id, manifest, row.study_uid, now)
            else:
                kind = RESENT_KINDS.get(purpose, "case_event")
                docs = [d.raw for d in await self.documents(case_id, kind)]
                if not docs:
                    log("nothing kept to send again", case=case_id.hex()[:8], purpose=purpose)
                    return
                await self._send(case_id, docs, [new], purpose, now)
            await self._audit(self.me, case_id, "readdress", now, f"{purpose} {new.hex()[:16]}")
            log("sealed again for a replaced key", case=case_id.hex()[:8], purpose=purpose)

    async def _record_delivery(self, row: CaseRow, by: bytes, now: int) -> CaseRow:
        """The study reached ``by``'s node: the first time, the case is delivered and its
        due date starts (the caller holds the lock). The case's row, as it is now."""
        step = self.coordinator.delivered(row.case, by=by, now=now)
        if step.effects:
            await self._carry_out(row, step, now)
            self._wake.set()  # a new due date: the loop sleeps until it
        return await self._require(row.case_id)

    async def _opened(self, manifest: Manifest, header: BundleHeader, folder: Path) -> None:
        self._wake.set()  # take_in_received picks it up (and again after a restart)

    async def take_in_received(self, now: int) -> None:
        """Bundles opened here that no case has taken in yet (a bundle whose sender is not
        yet in this node's directory waits for the next scan)."""
        for received in await self.rows.received_not_taken():
            bundle_id = received.bundle_id
            folder = self.transfers.received_folder(bundle_id)
            try:
                case_meta = json.loads((folder / "case.json").read_text("utf-8"))
                data = (folder / "files" / DOCUMENTS_FILE).read_bytes()
            except (OSError, ValueError):
                async with self._decision():
                    await self._mark(bundle_id, b"", "not a case")
                continue
            sender_node = Manifest.decode(received.manifest).sender.key
            try:
                async with self._decision():
                    outcome = await self._take_bundle(
                        bundle_id, case_meta, data, sender_node, now, folder / "files"
                    )
            except ProtocolError as exc:
                outcome = f"refused: {exc}"
            if outcome is not None:
                log("case bundle taken in", bundle=bundle_id.hex()[:8], outcome=outcome)

    async def _mark(self, bundle_id: bytes, case_id: bytes, purpose: str) -> None:
        await self.rows.mark(bundle_id, case_id, purpose)

    async def _take_bundle(
        self,
        bundle_id: bytes,
        meta: dict[str, Any],
        data: bytes,
        sender_node: bytes,
        now: int,
        files: Path | None = None,
    ) -> str | None:
        docs = [decode_document(d) for d in split_documents(data)]
        kind = meta.get("type")
        if kind == "case":
            if not docs or docs[0].kind != "case_request":
                await self._mark(bundle_id, b"", "refused: no case request")
                return "refused: no case request"
            return await self._take_request(bundle_id, docs[0], sender_node, now)
        if kind == "documents":
            case_id = bytes.fromhex(str(meta.get("case_id", "")))
            row = await self.row(case_id)
            if row is None:
                # the case's own bundle may still be on its way: wait for it (bounded by
                # the bundle's expiry, after which the transfer service drops it)
                return None
            for doc in docs:
                await self._take_document(row, doc, sender_node, now, files)
                row = await self._require(case_id)
            await self._mark(bundle_id, case_id, "documents in")
            return f"{len(docs)} document(s)"
        if kind == "pair_proposal":
            try:
                outcome = await keep_proposal(
                    self,
                    bytes.fromhex(str(meta["terms"])),
                    bytes.fromhex(str(meta["countersignature"])),
                    bytes.fromhex(str(meta["proposer"])),
                    now,
                )
            except (KeyError, ValueError):
                outcome = "refused: not a pair proposal"
            await self._mark(bundle_id, b"", outcome)
            return outcome
        await self._mark(bundle_id, b"", "not a case")
        return None

    async def _take_request(
        self, bundle_id: bytes, request: Document, sender_node: bytes, now: int
    ) -> str | None:
        body = request.body
        view = self.view(now)
        if view.role_of(request.signer.key) != "sender":
            return None  # not (yet) known as a sender here: try again at the next scan
        if body["sender_node"] != sender_node:
            await self._mark(bundle_id, body["case_id"], "refused: sealed by another node")
            return "refused: the request names another sender node"
        case_id = bytes(body["case_id"])
        row = await self.row(case_id)
        if row is not None:  # images added to the case
            if request.signer.key != row.case.sender:
                await self._mark(bundle_id, case_id, "refused: images from another sender")
                return "refused: images from another sender"
            await self._mark(bundle_id, case_id, f"images part {body['part']}")
            await self._keep_document(request, case_id, now)
            await self.notify(row.case.reader, case_id, "images_added", now)
            await self._audit(request.signer.key, case_id, "add_images", now)
            return "images added"
        try:
            form = check_case_form(body["form"])
        except MalformedError as exc:
            await self._mark(bundle_id, case_id, f"refused: {exc}")
            return f"refused: {exc}"
        step = self.coordinator.receive(
            case_id=case_id,
            sender=request.signer.key,
            sender_node=sender_node,
            routing=ROUTINGS[body["routing"]],
            target=bytes(body["target"]),
            delay_hours=int(body["reading_delay_hours"]),
            over_quota=bool(body["over_quota"]),
            submitted_ms=int(body["created"]),
            now=now,
        )
        case = step.case
        await self._mark(bundle_id, case_id, "images")  # its images known before it shows
        row = CaseRow(
            case=case,
            role="copy",
            pair_id=None if body["pair_id"] is None else bytes(body["pair_id"]),
            sender_node=sender_node,
            urgent=form["urgency"] == "urgent",
            study_uid="",
            recipients=(),
            form_json=json.dumps(form, ensure_ascii=False),
            updated_ms=now,
        )
        await self.rows.insert(row)
        await self._keep_document(request, case_id, now)
        await self._carry_out(row, step, now)
        return case.state.value

    async def _take_document(
        self, row: CaseRow, doc: Document, sender_node: bytes, now: int, files: Path | None = None
    ) -> None:
        case_id = row.case_id
        if bytes(doc.body["case_id"]) != case_id:
            log("case document for another case ignored", case=case_id.hex()[:8])
            return
        if row.role == "sender":
            if row.case.state in (State.SUBMITTED, State.IN_TRANSIT) and (
                sender_node in row.recipients
            ):
                # A request from a node the study was sent to: the study reached it, even
                # if its receipt is still on the way (an accept was refused as "in
                # transit" and never sent again).
                row = await self._record_delivery(row, sender_node, now)
            await self._at_sender(row, doc, now, files)
        else:
            await self._at_copy(row, doc, sender_node, now)

    async def _at_sender(
        self, row: CaseRow, doc: Document, now: int, files: Path | None = None
    ) -> None:
        """A person's request, report, addendum or message reaches the deciding node
        (``files``: the bundle's files, where a report's attachments are)."""
        case = row.case
        who = doc.signer.key
        roles = policy.roles(case, who, self.view(now))
        case_id = case.case_id
        try:
            if doc.kind == "case_event" and doc.body["event"] in REQUESTS:
                event = doc.body["event"]
                reader = doc.body["reader"]
                if event == "assign" and reader is not None:
                    member = self.view(now).members.get(reader)
                    if member is None or member.body["role"] not in ("reader", "coordinator"):
                        raise CaseRefused(
                            "the reader named is not an attested reader", code="not_a_reader"
                        )
                step = self.coordinator.decide(
                    case, event, by=who, roles=roles, reader=reader, now=now
                )
                await self._keep_document(doc, case_id, now)
                await self._carry_out(row, step, now)
            elif doc.kind == "report":
                step = self.coordinator.reported(
                    case,
                    by=who,
                    roles=roles,
                    signed_at=doc.created,
                    detail=str(doc.body["image_quality"]),
                    now=now,
                )
                await self._keep_document(doc, case_id, now)
                await self._carry_out(row, step, now, image_quality=doc.body["image_quality"])
                await self._take_attachments(case_id, doc, files, now)
                for hook in self.report_hooks:
                    try:
                        hook(case_id)
                    except Exception as exc:  # the report is kept whatever a hook does
                        log("report hook error", case=case_id.hex()[:8], error=type(exc).__name__)
            elif doc.kind == "case_message":
                machine.apply(case, "message", by=who, roles=roles, now=now)
                await self._keep_document(doc, case_id, now)
                await self.notify(case.sender, case_id, "message", now)
                await self._audit(who, case_id, "message", now)
            else:
                raise CaseRefused(f"a {doc.kind} is not for the sender's node", code="wrong_node")
        except CaseRefused as exc:
            await self._audit(who, case_id, f"refused {doc.kind}", now, str(exc)[:300])
            log("case request refused", case=case_id.hex()[:8], why=str(exc)[:200])

    async def _at_copy(self, row: CaseRow, doc: Document, sender_node: bytes, now: int) -> None:
        """The deciding node's decisions (followed through the table, in any order), the
        sender's messages and evaluation."""
        case = row.case
        case_id = case.case_id
        view = self.view(now)
        if view.current(sender_node) != view.current(row.sender_node):
            log("case document from another node ignored", case=case_id.hex()[:8])
            return
        if (
            doc.kind == "case_event"
            and doc.signer.key == sender_node
            and doc.body["event"] in BY_DECISION
        ):
            decision = Decided(
                event=doc.body["event"],
                seq=doc.body["seq"],
                at=doc.created,
                reader=doc.body["reader"],
            )
            step = self.coordinator.follow(case, decision, by=sender_node, now=now)
            await self._keep_document(doc, case_id, now)
            await self._carry_out(row, step, now, claim_sent_by=None)
        elif doc.kind == "evaluation" and doc.signer.key == case.sender:
            step = self.coordinator.evaluated(case, now=now)
            await self._keep_document(doc, case_id, now)
            await self._carry_out(row, step, now, evaluated_ms=now, useful=int(doc.body["useful"]))
        elif doc.kind == "case_message" and doc.signer.key == case.sender:
            await self._keep_document(doc, case_id, now)
            await self.notify(case.reader, case_id, "message", now)
            await self._audit(case.sender, case_id, "message", now)
        else:
            log("case document ignored", case=case_id.hex()[:8], kind=doc.kind)

    # --- what people do --------------------------------------------------------------

    async def _acting(
        self,
        case_id: bytes,
        person: Identity,
        now: int,
        *,
        kept: tuple[str, str, str] = ("", "", ""),
    ) -> tuple[CaseRow, Case, bytes, frozenset[Role]]:
        """The case's row, the case, the person's key and roles, for a person acting on
        a case here: 404 if they may not see it; with ``kept`` (a role, a refusal, its key), 409
        and the refusal when this node does not keep the case in that role."""
        who = person.public.key
        row = await self.seen(case_id, who, now)
        kept_as, where, key = kept
        if kept_as and row.role != kept_as:
            raise CaseError(409, where, key=key)
        return row, row.case, who, policy.roles(row.case, who, self.view(now))

    async def act(
        self,
        case_id: bytes,
        person: Identity,
        event: str,
        now: int,
        *,
        reader: bytes | None = None,
        note: str = "",
    ) -> dict[str, Any]:
        """claim, assign, release, accept, decline (asked of the sender's node from a
        copy; decided at once on the sender's node), cancel and close (the sender)."""
        async with self._decision():
            row, case, who, roles = await self._acting(case_id, person, now)
            if event != "assign":
                try:
                    _step(case, event, who, roles, now)
                except CaseError as exc:
                    if (
                        event == "claim"
                        and case.reader
                        and policy.may_know_reader(case, who, self.view(now))
                    ):  # a coordinator may know who has it; other members only that
                        members = self.view(now).members
                        found = members.get(case.reader)
                        name = found.body["display_name"] if found else case.reader.hex()[:12]
                        raise CaseError(
                            409,
                            f"{exc} (by {case.reader.hex()[:12]})",
                            key=N_("refused_case_taken_by"),
                            values={"reader": name},
                        ) from None
                    raise
            elif reader is None:
                raise CaseError(
                    400, "assign needs the reader's id", key=N_("refused_assign_no_reader")
                )
            else:
                try:
                    machine.assign_to(case, reader, by=who, roles=roles, now=now)
                except CaseRefused as exc:
                    raise case_refused(exc) from None
            if row.role == "copy":
                if event not in ASKED_FROM_COPY:
                    raise CaseError(
                        409,
                        f"only the sender's node can {event} this case",
                        key=N_("refused_at_sender_node"),
                    )
                doc = self._event(case_id, event, person, now, reader=reader, note=note)
                await self._send(case_id, [doc], [row.sender_node], event, now)
                await self._keep_document(decode_document(doc), case_id, now)
                await self.rows.update(case_id, now, claim_sent_by=who)
                await self._audit(who, case_id, f"ask {event}", now)
                return {"state": case.state.value, "asked": event}
            doc = self._event(case_id, event, person, now, reader=reader, note=note)
            await self._at_sender(row, decode_document(doc), now)
            row = await self._require(case_id)
            return {"state": row.case.state.value}

    async def report(
        self, case_id: bytes, person: Identity, fields: dict[str, Any], now: int
    ) -> dict[str, Any]:
        """The reader signs a report (or an addendum, once reported) and sends it back."""
        async with self._decision():
            row, case, who, roles = await self._acting(case_id, person, now, kept=REPORTS_AT_READER)
            first = case.state is State.ASSIGNED
            previous = await self.documents(case_id, "report")
            case = _step(case, "report" if first else "addendum", who, roles, now)
            body = {
                "case_id": case_id,
                "bundle_id": await self._images_bundle(case_id),
                "created": now,
                "language": str(fields.get("language") or "fr"),
                "findings": str(fields.get("findings", "")),
                "impression": str(fields.get("impression", "")),
                "recommendations": str(fields.get("recommendations", "")),
                "image_quality": fields.get("image_quality"),
                "quality_reason": str(fields.get("quality_reason", "")),
                "supersedes": None if first or not previous else previous[-1].digest,
            }
            if not body["findings"] and not body["impression"]:
                raise CaseError(
                    400, "a report needs findings or an impression", key=N_("report_empty")
                )
            waiting = [i for i in await self.reader_images.of_case(case_id) if i.report is None]
            if waiting:  # the reader's images, signed with the report (absent when none)
                body["attachments"] = [[i.sop_uid, i.sop_class, i.digest, i.size] for i in waiting]
            files = [
                (bundle_name(i.digest), image_path(self.node_dir.root, case_id, i.digest))
                for i in waiting
            ]
            raw = _signed("report", body, person)
            purpose = "report" if first else "addendum"
            # sealed for the case's sender node only, attachments and all
            doc = await self._send_kept(case_id, raw, [row.sender_node], purpose, now, files)
            if waiting:
                await self.reader_images.carried(case_id, [i.sop_uid for i in waiting], doc.digest)
            await self._save(case, now, image_quality=body["image_quality"])
            await self._audit(who, case_id, purpose, now, str(body["image_quality"]))
            return {"state": case.state.value, "report": doc.digest.hex()}

    async def _send_kept(
        self,
        case_id: bytes,
        raw: bytes,
        to: list[bytes],
        purpose: str,
        now: int,
        files: list[tuple[str, Path]] | None = None,
    ) -> Document:
        """Send a document signed here to the nodes ``to``, and keep it with the case."""
        await self._send(case_id, [raw], to, purpose, now, files)
        doc = decode_document(raw)
        await self._keep_document(doc, case_id, now)
        return doc

    async def _images_bundle(self, case_id: bytes) -> bytes:
        found = await self.rows.first_images(case_id)
        return bytes(16) if found is None else found

    async def message(
        self, case_id: bytes, person: Identity, text: str, now: int
    ) -> dict[str, Any]:
        async with self._decision():
            row, case, who, roles = await self._acting(case_id, person, now)
            _step(case, "message", who, roles, now)
            raw = _signed(
                "case_message",
                {
                    "case_id": case_id,
                    "message_id": os.urandom(16),
                    "created": now,
                    "text": text,
                    "in_reply_to": None,
                    "extra": None,
                },
                person,
            )
            to = list(row.recipients) if row.role == "sender" else [row.sender_node]
            await self._send_kept(case_id, raw, to, "message", now)
            await self._audit(who, case_id, "message", now)
            return {"sent": True}

    async def evaluate(
        self, case_id: bytes, person: Identity, fields: dict[str, Any], now: int
    ) -> dict[str, Any]:
        """The sender rates the opinion; the evaluation goes to the reader's node."""
        async with self._decision():
            row, case, who, roles = await self._acting(
                case_id, person, now, kept=EVALUATIONS_AT_SENDER
            )
            case = _step(case, "evaluate", who, roles, now)
            (report, *_) = await self.documents(case_id, "report")
            raw = _signed(
                "evaluation",
                {
                    "case_id": case_id,
                    "report": report.digest,
                    "created": now,
                    "relevant": _bool(fields, "relevant"),
                    "useful": _bool(fields, "useful"),
                    "changed_management": _bool(fields, "changed_management"),
                    "teaching_consent": bool(fields.get("teaching_consent", False)),
                    "comment": str(fields.get("comment", "")),
                },
                person,
            )
            reader = self.view(now).members.get(case.reader or b"")
            to = [reader.body["home_node"]] if reader is not None else list(row.recipients)
            await self._send_kept(case_id, raw, to, "evaluation", now)
            await self._save(case, now, evaluated_ms=now, useful=int(_bool(fields, "useful")))
            await self._audit(who, case_id, "evaluate", now)
            return {"state": case.state.value}

    # --- deadlines and retention -----------------------------------------------------

    async def escalate_overdue(self, now: int) -> int:
        """The coordinator's deadlines for the cases this node decides: an overdue case
        goes back to the group (and the copies are told). How many were escalated."""
        done = 0
        for found in await self.rows.open_decided():
            due = deadline(found.case)
            if due is None or due > now:
                continue
            case_id = found.case_id
            async with self._decision():
                row = await self._require(case_id)
                case = row.case
                step = self.coordinator.tick(
                    case,
                    route_of(self.view(now), case, row.pair_id),
                    holders=list(row.recipients),
                    now=now,
                )
                if not step.effects:
                    continue
                await self._carry_out(row, step, now)
                log("case escalated", case=case_id.hex()[:8], times=step.case.escalations)
                done += 1
        return done

    async def _offer(self, row: CaseRow, seal: Seal, now: int) -> CaseRow:
        """An overdue pair's case goes to the reader's group: the study is sealed again,
        with the sender's signed request, for the group's nodes that do not hold it (the
        escalation told next says the case waits for a reader). The row, with them."""
        case_id = row.case_id
        (request, *_) = await self.documents(case_id, "case_request")
        try:
            manifest = await self._seal(
                case_id, row.study_uid, request.raw, list(seal.nodes), seal.urgent, now
            )
        except NodeError as exc:  # the study is no longer in the intake
            log("escalation not sent to the group", why=str(exc)[:200])
            return row
        await self._queue_images(case_id, manifest, row.study_uid, now)
        recipients = (*row.recipients, *seal.nodes)
        await self.rows.update(case_id, now, recipients=recipients)
        await self._audit(self.me, case_id, seal.reason, now, f"{len(seal.nodes)} node(s)")
        return dataclasses.replace(row, recipients=recipients)

    async def purge_due(self, now: int) -> int:
        """Images of cases closed (or cancelled) longer ago than the retention delay are
        deleted, here and in the transfer tables (with the manifests, and so the wrapped
        bundle keys); reports, evaluations and messages are kept."""
        keep_ms = self.config.cases_retention_days * DAY_MS
        done = 0
        for case_id in await self.rows.closed_before(now - keep_ms):
            async with self._decision():
                row = await self._require(case_id)
                deleted = await self._delete_images(row)
                case, _ = machine.apply(
                    row.case, "purge", by=self.me, roles=frozenset({Role.NODE}), now=now
                )
                await self._save(case, now, purged_ms=now)
                await self._audit(self.me, case.case_id, "purge", now, f"{deleted} bundle(s)")
                log("case images purged", case=case.case_id.hex()[:8], bundles=deleted)
                done += 1
        return done

    async def _delete_images(self, row: CaseRow) -> int:
        found = await self.rows.images_held(row.case_id)
        studies = {row.study_uid} if row.role == "sender" else set()
        transfers = TransferStore(self.db)
        for held in found:
            manifest = Manifest.decode(held.manifest)
            await asyncio.to_thread(self._delete_bundle_files, manifest)
            await transfers.forget(held.bundle_id)
            if row.role == "sender" and held.study_uid:
                studies.add(held.study_uid)
        for study_uid in sorted(s for s in studies if s):
            folder = self.node_dir.intake / study_uid
            await asyncio.to_thread(shutil.rmtree, folder, True)
        await self.reader_images.delete_case(row.case_id)
        folder = image_path(self.node_dir.root, row.case_id, bytes(32)).parent
        await asyncio.to_thread(shutil.rmtree, folder, True)
        reformats = volumes_folder(self.node_dir.root, row.case_id.hex())  # the MPR cache
        await asyncio.to_thread(shutil.rmtree, reformats, True)
        return len(found)

    def _delete_bundle_files(self, manifest: Manifest) -> None:
        for i in range(manifest.chunk_count):
            self.blobs.delete(manifest.chunk_hash(i))
        self.transfers.chunks.delete(manifest.bundle_id)
        shutil.rmtree(self.transfers.received_folder(manifest.bundle_id), ignore_errors=True)

    # --- the reader's images (cases/reader_images.py) ---------------------------------

    async def attach(
        self, case_id: bytes, person: bytes, instance: ReaderInstance, via: str, now: int
    ) -> bool:
        """Attach an instance the reader made at the workstation to the case, as the
        reader's, to travel with the next report or addendum signed: True when kept now,
        False when it was already (the same bytes). Refusal when the person may not
        report on the case here (the case table's ``report``/``addendum``, roles from
        policy.py), or the SOP Instance UID is held with other bytes. ``via`` (``stow``,
        ``c-store AE``) goes into the audit entry."""
        async with self._decision():
            try:
                row = await self.seen(case_id, person, now)
                case, who = row.case, person
                roles = policy.roles(case, who, self.view(now))
                if row.role != "copy":
                    raise CaseError(409, "not the reader's node", key=N_("reader_image_not_yours"))
                _step(case, "report" if case.state is State.ASSIGNED else "addendum", who,
                      roles, now)  # fmt: skip
            except CaseError:
                raise Refusal(NOT_AUTHORIZED, N_("reader_image_not_yours")) from None
            digest = instance.digest
            held = await self.reader_images.image(case_id, instance.sop_uid)
            if held is not None:
                if held.digest == digest:
                    return False
                raise Refusal(0x0111, N_("reader_image_other_bytes"))
            if len(await self.reader_images.of_case(case_id)) >= MAX_PER_CASE:
                raise Refusal(OUT_OF_RESOURCES, N_("reader_image_too_many"))
            path = image_path(self.node_dir.root, case_id, digest)
            await asyncio.to_thread(write_image, path, instance.data)
            await self.reader_images.add(
                ReaderImage(
                    case_id=case_id, sop_uid=instance.sop_uid, sop_class=instance.sop_class,
                    study_uid=instance.study_uid, digest=digest, size=len(instance.data),
                    reader=who, via=via, report=None, created_ms=now,
                )
            )  # fmt: skip
            await self._audit(
                who, case_id, "attach reader image", now,
                f"{via} {instance.sop_class} {instance.sop_uid}",
            )  # fmt: skip
            return True

    async def _take_attachments(
        self, case_id: bytes, doc: Document, files: Path | None, now: int
    ) -> None:
        """A report's attachments, at the sender's node: each file whose size and hash
        are those the reader signed is kept with the case; any other is left out, and
        said in the audit log."""
        listed = doc.body.get("attachments") or []
        for sop_uid, sop_class, digest, size in listed:
            data = None
            if files is not None:
                data = await asyncio.to_thread(
                    read_if_matches, files / bundle_name(digest), digest, size
                )
            if data is None:
                await self._audit(doc.signer.key, case_id, "refused reader image", now, sop_uid)
                continue
            if await self.reader_images.image(case_id, sop_uid) is not None:
                continue  # carried by an earlier report already
            path = image_path(self.node_dir.root, case_id, digest)
            await asyncio.to_thread(write_image, path, data)
            await self.reader_images.add(
                ReaderImage(
                    case_id=case_id, sop_uid=sop_uid, sop_class=sop_class, study_uid="",
                    digest=digest, size=size, reader=doc.signer.key, via="report",
                    report=doc.digest, created_ms=now,
                )
            )  # fmt: skip
            await self._audit(
                doc.signer.key, case_id, "reader image in", now, f"{sop_class} {sop_uid}"
            )

    async def reader_images_of(self, case_id: bytes, person: bytes, now: int) -> list[ReaderImage]:
        """The reader's images of a case the person may see (404 otherwise)."""
        await self.seen(case_id, person, now)
        return await self.reader_images.of_case(case_id)

    def reader_image_path(self, image: ReaderImage) -> Path:
        return image_path(self.node_dir.root, image.case_id, image.digest)

    # --- reading ---------------------------------------------------------------------

    async def visible(self, person: bytes, now: int) -> list[CaseRow]:
        """The cases of this node a person may see (policy.py), last changed first."""
        rows = await self.rows.every_case()
        return policy.visible(rows, person, self.view(now), lambda r: r.case)

    async def summaries(self, person: bytes, now: int) -> list[dict[str, Any]]:
        """The summaries of the cases a person may see, as they may see them (policy.py:
        who has a case is told only to those who may know it)."""
        view = self.view(now)
        return [
            policy.shown_to(person, row.case, summary(row), view)
            for row in await self.visible(person, now)
        ]

    async def detail(self, case_id: bytes, person: bytes, now: int) -> dict[str, Any]:
        row = await self.seen(case_id, person, now)
        roles = policy.roles(row.case, person, self.view(now))
        await self.audit.append(actor=person, case_id=case_id, action="view", detail="", now=now)
        view = self.view(now)
        out = policy.shown_to(person, row.case, summary(row), view)
        out["roles"] = sorted(r.value for r in roles)
        form = row.form
        out["form"] = {key: form.get(key) for key in CASE_FORM.fields}  # every key, null if unused
        age = age_of(form)
        out["age"] = {"value": age.value, "unit": age.unit}  # as the sender gave it
        documents = await self.documents(case_id)
        if not policy.may_know_reader(row.case, person, view):  # the sender's and their own
            documents = [d for d in documents if d.signer.key in (row.case.sender, person)]
        out["documents"] = [document_json(d) for d in documents]
        out["reader_images"] = [
            reader_image_json(i) for i in await self.reader_images.of_case(case_id)
        ]
        if row.role == "copy":
            out["images"] = [
                str(self.transfers.received_folder(b).relative_to(self.node_dir.root))
                for b in await self.bundles(case_id, "images")
            ]
        if row.role == "sender" and Role.SENDER in roles:
            out["patient"] = await asyncio.to_thread(self._patient, row.study_uid)
            references = await self.rows.local_references([case_id])
            out["local_reference"] = references.get(case_id, "")
        return out

    async def bundles(self, case_id: bytes, purpose: str = "images") -> list[bytes]:
        return await self.rows.bundles(case_id, purpose)

    def _patient(self, study_uid: str) -> dict[str, str] | None:
        """The real patient of a case, from the encrypted pseudonym map: only on the
        sender's node, only for the sender, never logged. A photo's patient has only the
        id intake made up for it ("photos:..."), which tells nobody anything: none (the
        sender's local reference names it)."""
        patient = PseudonymMap(self.node_dir.pseudonyms).patient_of_study(study_uid)
        if patient is not None and str(patient.get("id", "")).startswith("photos:"):
            return {**patient, "id": ""} if patient.get("name") else None
        return patient


def _step(case: Case, event: str, who: bytes, roles: frozenset[Role], now: int) -> Case:
    """The case after a person's ``event``; 409 with the table's reason if refused."""
    try:
        return machine.apply(case, event, by=who, roles=roles, now=now)[0]
    except CaseRefused as exc:
        raise case_refused(exc) from None


def _bool(fields: dict[str, Any], name: str) -> bool:
    value = fields.get(name)
    if not isinstance(value, bool):
        raise CaseError(
            400,
            f"evaluation: {name} must be true or false",
            key=N_("refused_evaluation_field"),
            values={"field": Key(name)},
        )
    return value


def summary(row: CaseRow) -> dict[str, Any]:
    case = row.case
    return {
        "case_id": case.case_id.hex(),
        "kept_as": row.role,
        "state": case.state.value,
        "routing": case.routing.value,
        "target": case.target.hex(),
        "sender": case.sender.hex(),
        "sender_node": row.sender_node.hex(),
        "reader": _hex(case.reader),
        "taken": case.reader is not None,
        "claim_sent_by": _hex(row.claim_sent_by),
        "urgent": row.urgent,
        "needs_acceptance": case.needs_acceptance,
        "submitted_ms": case.submitted_ms,
        "delivered_ms": case.delivered_ms,
        "due_ms": case.due_ms,
        "reported_ms": case.reported_ms,
        "report_back_ms": case.report_back_ms,
        "evaluated_ms": row.evaluated_ms,
        "closed_ms": case.closed_ms,
        "purged_ms": row.purged_ms,
        "escalations": case.escalations,
        "image_quality": row.image_quality,
        "useful": row.useful,
    }


def reader_image_json(image: ReaderImage) -> dict[str, Any]:
    """An instance of the reader's as the API and the pages show it: its UIDs, its
    kind's catalogue key, its size, and whether a report carried it (``sent`` at the
    reader's node; at the sender's node, every one came with a report)."""
    return {
        "sop_uid": image.sop_uid,
        "sop_class": image.sop_class,
        "kind": READER_CLASSES.get(image.sop_class, ""),
        "size": image.size,
        "digest": image.digest.hex(),
        "report": None if image.report is None else image.report.hex(),
        "created": image.created_ms,
    }


def document_json(doc: Document) -> dict[str, Any]:
    body = {
        k: (v.hex() if isinstance(v, bytes) else v)
        for k, v in doc.body.items()
        if k not in ("form", "attachments")
    }
    if doc.body.get("attachments"):  # a report's: [uid, class, BLAKE3 in hex, size]
        body["attachments"] = [[u, c, bytes(h).hex(), n] for u, c, h, n in doc.body["attachments"]]
    return {"kind": doc.kind, "signer": doc.signer.key.hex(), "digest": doc.digest.hex(), **body}


def _signed(kind: str, body: dict[str, Any], person: Identity) -> bytes:
    """A person's document of ``kind``, signed; a body the schema refuses is a 400."""
    try:
        return encode_document(kind, body, person)
    except ProtocolError as exc:
        raise CaseError(400, f"{kind.replace('case_', '')}: {exc}") from None
