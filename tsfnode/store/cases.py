"""The cases' tables (``cases``, ``case_documents``, ``case_bundles``,
``notifications``): every query the case service, the figures and the pages make about
cases, and nothing else.

Rows come out as frozen dataclasses: a case as ``CaseRow`` (the protocol's ``Case`` and
the columns only this node keeps). The writes do not commit: the caller makes one
decision's writes, then ``commit`` once (one decision, one transaction; the case
service does it in ``CaseService._decision``). Column names never come from outside:
``update`` takes only the names of ``CASE_FIELDS``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from protocol.cases import Case, Routing, State
from protocol.documents import Document, decode_document

# The columns a caller may change (the case's own, then the node's).
CASE_FIELDS = frozenset(
    {
        "state",
        "reader",
        "submitted_ms",
        "delivered_ms",
        "due_ms",
        "reported_ms",
        "report_back_ms",
        "closed_ms",
        "escalations",
        "needs_acceptance",
        "passed_over",
        "decisions",
        "recipients",
        "evaluated_ms",
        "purged_ms",
        "claim_sent_by",
        "image_quality",
        "useful",
    }
)
_COLUMNS = (
    "case_id, role, state, routing, target, pair_id, sender, sender_node, reader, delay_ms,"
    " needs_acceptance, urgent, study_uid, recipients, form, submitted_ms, delivered_ms,"
    " due_ms, reported_ms, report_back_ms, evaluated_ms, closed_ms, purged_ms, escalations,"
    " passed_over, claim_sent_by, image_quality, useful, updated_ms, decisions"
)
_SELECT = f"SELECT {_COLUMNS} FROM cases"  # noqa: S608 - our own names


@dataclass(frozen=True)
class CaseRow:
    """A case as this node keeps it: the protocol's ``Case``, and what only the node
    knows of it."""

    case: Case
    role: str  # 'sender': this node decides the case; 'copy': it follows
    pair_id: bytes | None
    sender_node: bytes
    urgent: bool
    study_uid: str  # the study in the intake ('' on a copy)
    recipients: tuple[bytes, ...]  # the nodes the study was sent to (on the sender's node)
    form_json: str  # the clinical form as the sender signed it, JSON
    evaluated_ms: int | None = None
    purged_ms: int | None = None
    claim_sent_by: bytes | None = None  # on a copy: who asked the sender's node for it
    image_quality: str | None = None
    useful: bool | None = None
    updated_ms: int = 0

    @property
    def case_id(self) -> bytes:
        return self.case.case_id

    @property
    def form(self) -> dict[str, Any]:
        """The clinical form (a new dict at each call)."""
        form: dict[str, Any] = json.loads(self.form_json)
        return form


@dataclass(frozen=True)
class CaseBundle:
    """What a bundle sent or received for a case carried (``purpose``: 'images', a
    request's or document's name, or why it was not taken in)."""

    bundle_id: bytes
    case_id: bytes
    purpose: str


@dataclass(frozen=True)
class ImagesBundle:
    """A bundle of a case's images still in the transfer tables."""

    bundle_id: bytes
    manifest: bytes
    study_uid: str


@dataclass(frozen=True)
class Received:
    """A bundle opened here that no case has taken in yet."""

    bundle_id: bytes
    manifest: bytes


@dataclass(frozen=True)
class ImagesProgress:
    """How far the images of a case sent from here have gone, over all recipients."""

    bytes_done: int
    size: int
    rate: float
    attempts: int


@dataclass(frozen=True)
class Notification:
    """Something that happened to a case, for a person of this node (``person`` None:
    for everyone here; a group's key: for its people)."""

    case_id: bytes
    kind: str
    at_ms: int
    person: bytes | None


def _keys(blob: bytes) -> frozenset[bytes]:
    return frozenset(blob[i : i + 32] for i in range(0, len(blob), 32))


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _row(r: Any) -> CaseRow:
    case = Case(
        case_id=bytes(r[0]),
        sender=bytes(r[6]),
        routing=Routing(r[3]),
        target=bytes(r[4]),
        delay_ms=int(r[9]),
        state=State(r[2]),
        reader=_bytes(r[8]),
        submitted_ms=r[15],
        delivered_ms=r[16],
        due_ms=r[17],
        reported_ms=r[18],
        report_back_ms=r[19],
        closed_ms=r[21],
        escalations=int(r[23]),
        needs_acceptance=bool(r[10]),
        passed_over=_keys(bytes(r[24])),
        decisions=int(r[29]),
    )
    return CaseRow(
        case=case,
        role=str(r[1]),
        pair_id=_bytes(r[5]),
        sender_node=bytes(r[7]),
        urgent=bool(r[11]),
        study_uid=str(r[12]),
        recipients=tuple(bytes.fromhex(n) for n in json.loads(r[13])),
        form_json=str(r[14]),
        evaluated_ms=r[20],
        purged_ms=r[22],
        claim_sent_by=_bytes(r[25]),
        image_quality=r[26],
        useful=None if r[27] is None else bool(r[27]),
        updated_ms=int(r[28]),
    )


def case_fields(case: Case) -> dict[str, Any]:
    """The columns of ``cases`` that hold the protocol's ``Case`` (those it changes)."""
    return {
        "state": case.state.value,
        "reader": case.reader,
        "submitted_ms": case.submitted_ms,
        "delivered_ms": case.delivered_ms,
        "due_ms": case.due_ms,
        "reported_ms": case.reported_ms,
        "report_back_ms": case.report_back_ms,
        "closed_ms": case.closed_ms,
        "escalations": case.escalations,
        "needs_acceptance": int(case.needs_acceptance),
        "passed_over": b"".join(sorted(case.passed_over)),
        "decisions": case.decisions,
    }


def _column(name: str, value: Any) -> Any:
    """A value as its column stores it."""
    if name == "recipients":
        return json.dumps([bytes(n).hex() for n in value])
    if name == "useful" and value is not None:
        return int(value)
    return value


class CaseStore:
    """The cases' queries over the node's database connection (``Store.db``)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    async def commit(self) -> None:
        await self.db.commit()

    async def _rows(self, where: str, args: Iterable[Any] = ()) -> list[CaseRow]:
        cursor = await self.db.execute(f"{_SELECT} {where}", tuple(args))
        return [_row(r) for r in await cursor.fetchall()]

    # --- cases -----------------------------------------------------------------------

    async def case(self, case_id: bytes) -> CaseRow | None:
        found = await self._rows("WHERE case_id = ?", (case_id,))
        return found[0] if found else None

    async def every_case(self) -> list[CaseRow]:
        """Every case kept here, last changed first."""
        return await self._rows("ORDER BY updated_ms DESC")

    async def open_decided(self) -> list[CaseRow]:
        """The cases this node decides that wait for a reader or are being read."""
        return await self._rows("WHERE role = 'sender' AND state IN ('delivered', 'assigned')")

    async def being_read(self) -> list[CaseRow]:
        """The cases kept here (decided or copies) that a reader has and has not read:
        their deadlines are told to the reader (``cases/notices.py``)."""
        return await self._rows(
            "WHERE state = 'assigned' AND reader IS NOT NULL AND due_ms IS NOT NULL"
        )

    async def pair_cases_since(self, pair_id: bytes, since: int) -> list[CaseRow]:
        """The cases of a pair submitted after ``since`` that this node holds: those it
        sent (the sender's node) and those it received (the reader's node), counted by
        their sender's submission time, whatever their role here."""
        return await self._rows("WHERE pair_id = ? AND submitted_ms > ?", (pair_id, since))

    async def submitted_between(self, since: int, until: int | None) -> list[CaseRow]:
        """The cases submitted in [since, until) (a copy's arrival if it has no time)."""
        return await self._rows(
            "WHERE COALESCE(submitted_ms, updated_ms) >= ?"
            " AND COALESCE(submitted_ms, updated_ms) < ?",
            (since, (1 << 62) if until is None else until),
        )

    async def waiting_in_groups(self, groups: list[bytes]) -> list[CaseRow]:
        """The cases routed to ``groups`` that wait for a reader or are being read,
        nearest due first."""
        if not groups:
            return []
        marks = ",".join("?" * len(groups))
        return await self._rows(
            f"WHERE target IN ({marks}) AND state IN ('delivered', 'assigned') ORDER BY due_ms",
            groups,
        )

    async def closed_before(self, cutoff: int) -> list[bytes]:
        """The cases closed or cancelled at or before ``cutoff`` (their images are due
        for deletion)."""
        cursor = await self.db.execute(
            "SELECT case_id FROM cases WHERE state IN ('closed', 'cancelled')"
            " AND COALESCE(closed_ms, updated_ms) <= ?",
            (cutoff,),
        )
        return [bytes(r[0]) for r in await cursor.fetchall()]

    async def sent_by_sender_since(self, since: int) -> dict[bytes, int]:
        """How many cases each sender sent from here since ``since``."""
        cursor = await self.db.execute(
            "SELECT sender, COUNT(*) FROM cases WHERE role = 'sender' AND submitted_ms >= ?"
            " GROUP BY sender",
            (since,),
        )
        return {bytes(s): int(n) for s, n in await cursor.fetchall()}

    async def insert(self, row: CaseRow) -> None:
        """A new case (sent from here, or a copy received)."""
        fields = {
            "case_id": row.case_id,
            "role": row.role,
            "routing": row.case.routing.value,
            "target": row.case.target,
            "pair_id": row.pair_id,
            "sender": row.case.sender,
            "sender_node": row.sender_node,
            "delay_ms": row.case.delay_ms,
            "urgent": int(row.urgent),
            "study_uid": row.study_uid,
            "recipients": _column("recipients", row.recipients),
            "form": row.form_json,
            "evaluated_ms": row.evaluated_ms,
            "purged_ms": row.purged_ms,
            "claim_sent_by": row.claim_sent_by,
            "image_quality": row.image_quality,
            "useful": _column("useful", row.useful),
            "updated_ms": row.updated_ms,
            **case_fields(row.case),
        }
        names = ", ".join(fields)
        marks = ", ".join("?" * len(fields))
        await self.db.execute(
            f"INSERT INTO cases ({names}) VALUES ({marks})",  # noqa: S608 - our own names
            tuple(fields.values()),
        )

    async def update(self, case_id: bytes, now: int, **fields: Any) -> None:
        """Change the columns named (of ``CASE_FIELDS``) and the time of the change."""
        unknown = set(fields) - CASE_FIELDS
        if unknown or not fields:
            raise ValueError(f"cannot change {sorted(unknown) or 'nothing'}")
        names = ", ".join(f"{k} = ?" for k in fields)
        await self.db.execute(
            f"UPDATE cases SET {names}, updated_ms = ? WHERE case_id = ?",  # noqa: S608 - names listed
            (*(_column(k, v) for k, v in fields.items()), now, case_id),
        )

    async def save(self, case: Case, now: int, **extra: Any) -> None:
        """The case as the protocol left it, with ``extra`` node columns."""
        await self.update(case.case_id, now, **case_fields(case), **extra)

    # --- the sender's local reference (patient data: this node only) ------------------

    async def set_local_reference(self, case_id: bytes, reference: str) -> None:
        """The sender's own reference for the case's patient ('' removes it)."""
        if reference:
            await self.db.execute(
                "INSERT INTO local_references (case_id, reference) VALUES (?, ?) "
                "ON CONFLICT (case_id) DO UPDATE SET reference = excluded.reference",
                (case_id, reference),
            )
        else:
            await self.db.execute("DELETE FROM local_references WHERE case_id = ?", (case_id,))

    async def local_references(self, case_ids: list[bytes]) -> dict[bytes, str]:
        """The local references of these cases that have one."""
        found: dict[bytes, str] = {}
        for start in range(0, len(case_ids), 500):  # SQLite's limit on parameters
            part = case_ids[start : start + 500]
            marks = ", ".join("?" * len(part))
            cursor = await self.db.execute(
                f"SELECT case_id, reference FROM local_references WHERE case_id IN ({marks})",  # noqa: S608 - marks only
                part,
            )
            found.update({bytes(r[0]): str(r[1]) for r in await cursor.fetchall()})
        return found

    # --- documents -------------------------------------------------------------------

    async def keep_document(self, doc: Document, case_id: bytes, now: int) -> None:
        """A signed document of the case, kept as signed (once)."""
        await self.db.execute(
            "INSERT OR IGNORE INTO case_documents (digest, case_id, kind, signer, created_ms,"
            " received_ms, raw) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (doc.digest, case_id, doc.kind, doc.signer.key, doc.created, now, doc.raw),
        )

    async def document_marks(self) -> dict[bytes, tuple[int, int]]:
        """Per case: how many documents it holds and when the last one came (what a page
        that lists them needs to know it is out of date)."""
        cursor = await self.db.execute(
            "SELECT case_id, count(*), max(received_ms) FROM case_documents GROUP BY case_id"
        )
        return {bytes(r[0]): (int(r[1]), int(r[2])) for r in await cursor.fetchall()}

    async def documents(self, case_id: bytes, kind: str | None = None) -> list[Document]:
        """The case's documents (of ``kind``), oldest first."""
        if kind is None:
            cursor = await self.db.execute(
                "SELECT raw FROM case_documents WHERE case_id = ? ORDER BY created_ms, digest",
                (case_id,),
            )
        else:
            cursor = await self.db.execute(
                "SELECT raw FROM case_documents WHERE case_id = ? AND kind = ?"
                " ORDER BY created_ms, digest",
                (case_id, kind),
            )
        return [decode_document(bytes(r[0])) for r in await cursor.fetchall()]

    async def signed_documents(self, kind: str) -> list[tuple[bytes, bytes, bytes, bytes]]:
        """Every document of ``kind`` kept here, as stored and not yet verified: (case
        id, signer, digest, signed bytes), oldest first."""
        cursor = await self.db.execute(
            "SELECT case_id, signer, digest, raw FROM case_documents WHERE kind = ?"
            " ORDER BY created_ms, digest",
            (kind,),
        )
        return [
            (bytes(r[0]), bytes(r[1]), bytes(r[2]), bytes(r[3])) for r in await cursor.fetchall()
        ]

    # --- bundles ---------------------------------------------------------------------

    async def add_bundle(self, bundle_id: bytes, case_id: bytes, purpose: str) -> None:
        """A bundle sealed here for a case."""
        await self.db.execute(
            "INSERT INTO case_bundles (bundle_id, case_id, purpose) VALUES (?, ?, ?)",
            (bundle_id, case_id, purpose),
        )

    async def mark(self, bundle_id: bytes, case_id: bytes, purpose: str) -> None:
        """What a bundle received here was taken in as (or why it was not)."""
        await self.db.execute(
            "INSERT OR REPLACE INTO case_bundles (bundle_id, case_id, purpose) VALUES (?, ?, ?)",
            (bundle_id, case_id, purpose),
        )

    async def bundle(self, bundle_id: bytes) -> CaseBundle | None:
        cursor = await self.db.execute(
            "SELECT case_id, purpose FROM case_bundles WHERE bundle_id = ?", (bundle_id,)
        )
        row = await cursor.fetchone()
        return None if row is None else CaseBundle(bundle_id, bytes(row[0]), str(row[1]))

    async def bundles(self, case_id: bytes, purpose: str) -> list[bytes]:
        """The case's bundles whose purpose starts with ``purpose``."""
        cursor = await self.db.execute(
            "SELECT bundle_id FROM case_bundles WHERE case_id = ? AND purpose LIKE ?",
            (case_id, purpose + "%"),
        )
        return [bytes(r[0]) for r in await cursor.fetchall()]

    async def first_images(self, case_id: bytes) -> bytes | None:
        """The bundle of the case's first images (its request's study)."""
        cursor = await self.db.execute(
            "SELECT bundle_id FROM case_bundles WHERE case_id = ? AND purpose = 'images'",
            (case_id,),
        )
        row = await cursor.fetchone()
        return None if row is None else bytes(row[0])

    async def images_held(self, case_id: bytes) -> list[ImagesBundle]:
        """The case's bundles of images still in the transfer tables."""
        cursor = await self.db.execute(
            "SELECT c.bundle_id, b.manifest, b.study_uid FROM case_bundles c JOIN bundles b"
            " ON b.bundle_id = c.bundle_id WHERE c.case_id = ? AND c.purpose LIKE 'images%'",
            (case_id,),
        )
        return [ImagesBundle(bytes(b), bytes(m), str(s)) for b, m, s in await cursor.fetchall()]

    async def received_not_taken(self) -> list[Received]:
        """Bundles opened here that no case has taken in yet, oldest first."""
        cursor = await self.db.execute(
            "SELECT b.bundle_id, b.manifest FROM bundles b LEFT JOIN case_bundles c"
            " ON c.bundle_id = b.bundle_id WHERE b.role = 'inbox' AND b.state = 'complete'"
            " AND c.bundle_id IS NULL ORDER BY b.completed_ms"
        )
        return [Received(bytes(b), bytes(m)) for b, m in await cursor.fetchall()]

    async def images_progress(self, case_id: bytes) -> ImagesProgress | None:
        """How far the case's first images have gone (None: nothing to send)."""
        cursor = await self.db.execute(
            "SELECT SUM(d.bytes_done), SUM(b.size), MAX(d.rate), MIN(d.attempts)"
            " FROM case_bundles c JOIN deliveries d USING (bundle_id)"
            " JOIN bundles b USING (bundle_id) WHERE c.case_id = ? AND c.purpose = 'images'",
            (case_id,),
        )
        row = await cursor.fetchone()
        if row is None or not row[1]:
            return None
        return ImagesProgress(int(row[0] or 0), int(row[1]), float(row[2] or 0), int(row[3] or 0))

    # --- notifications ---------------------------------------------------------------

    async def notify(self, person: bytes | None, case_id: bytes, kind: str, now: int) -> None:
        """A notification (not committed: part of the caller's decision)."""
        await self.db.execute(
            "INSERT INTO notifications (person, case_id, kind, at_ms) VALUES (?, ?, ?, ?)",
            (person, case_id, kind, now),
        )

    async def notifications(self, keys: list[bytes], limit: int = 200) -> list[Notification]:
        """The newest notifications for ``keys`` (people, groups) and for everyone."""
        marks = ", ".join("?" * len(keys))
        where = f"person IN ({marks}) OR person IS NULL" if keys else "person IS NULL"
        cursor = await self.db.execute(
            "SELECT case_id, kind, at_ms, person FROM notifications"  # noqa: S608 - marks only
            f" WHERE {where} ORDER BY id DESC LIMIT ?",
            (*keys, limit),
        )
        return [
            Notification(bytes(c), str(k), int(t), _bytes(p))
            for c, k, t, p in await cursor.fetchall()
        ]
