"""The DICOM workstations people send studies to by C-STORE (``dicom_destinations``)
and each sending (``dicom_sends``): every query of the tools page and the case page
about them, and nothing else. Rows come out as frozen dataclasses; each change is one
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiosqlite

from tsfnode.store.accounts import transaction


@dataclass(frozen=True)
class DicomDestination:
    """A DICOM node a person declared, to send a case's study to."""

    id: int
    label: str
    ae_title: str
    host: str
    port: int
    calling_ae: str
    reports_auto: bool = False  # every report back goes here by itself (a sender's choice)


@dataclass(frozen=True)
class ReportDestination:
    """A destination where its owner sends every report back, with who owns it."""

    account_id: int
    language: str
    destination: DicomDestination


@dataclass(frozen=True)
class DicomSend:
    """One sending of a case's study to a destination, as recorded."""

    id: int
    case_id: bytes
    destination: str  # the destination's label ('' once it was deleted)
    started_ms: int
    done_ms: int | None
    total: int
    sent: int
    state: str  # sending | done | failed
    error: str


def _destination(r: Any) -> DicomDestination:
    return DicomDestination(
        int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), str(r[5]), bool(r[6])
    )


class DestinationStore:
    """The queries about people's DICOM destinations and sendings over the node's
    database connection (``Store.db``)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def destinations_of(self, account_id: int) -> list[DicomDestination]:
        cursor = await self.db.execute(
            "SELECT id, label, ae_title, host, port, calling_ae, reports_auto"
            " FROM dicom_destinations WHERE account_id = ? ORDER BY label, id",
            (account_id,),
        )
        return [_destination(r) for r in await cursor.fetchall()]

    async def set_reports_auto(self, destination_id: int, *, account_id: int, on: bool) -> None:
        """Send every report back to one of the account's own destinations, or no longer."""
        async with transaction(self.db):
            await self.db.execute(
                "UPDATE dicom_destinations SET reports_auto = ? WHERE id = ? AND account_id = ?",
                (int(on), destination_id, account_id),
            )

    async def report_destinations(self, person_key: bytes) -> list[ReportDestination]:
        """The destinations where the account of ``person_key`` sends every report back."""
        cursor = await self.db.execute(
            "SELECT d.id, d.label, d.ae_title, d.host, d.port, d.calling_ae, d.reports_auto,"
            " a.id, a.language FROM dicom_destinations d JOIN accounts a ON a.id = d.account_id"
            " WHERE a.person_key = ? AND d.reports_auto = 1 ORDER BY d.id",
            (person_key,),
        )
        return [
            ReportDestination(int(r[7]), str(r[8]), _destination(r))
            for r in await cursor.fetchall()
        ]

    async def add_destination(
        self, account_id: int, *, label: str, ae_title: str, host: str, port: int, calling_ae: str
    ) -> int:
        async with transaction(self.db):
            cursor = await self.db.execute(
                "INSERT INTO dicom_destinations (account_id, label, ae_title, host, port,"
                " calling_ae) VALUES (?, ?, ?, ?, ?, ?)",
                (account_id, label, ae_title, host, port, calling_ae),
            )
        return int(cursor.lastrowid or 0)

    async def delete_destination(self, destination_id: int, *, account_id: int) -> None:
        """Delete one of the account's own destinations (another's is left alone)."""
        async with transaction(self.db):
            await self.db.execute(
                "DELETE FROM dicom_destinations WHERE id = ? AND account_id = ?",
                (destination_id, account_id),
            )

    async def start_send(
        self, account_id: int, *, case_id: bytes, destination_id: int, now: int, total: int
    ) -> int:
        """A sending begins: its id."""
        async with transaction(self.db):
            cursor = await self.db.execute(
                "INSERT INTO dicom_sends (account_id, case_id, destination_id, started_ms, total)"
                " VALUES (?, ?, ?, ?, ?)",
                (account_id, case_id, destination_id, now, total),
            )
        return int(cursor.lastrowid or 0)

    async def finish_send(
        self, send_id: int, *, state: str, error: str, sent: int, now: int
    ) -> None:
        async with transaction(self.db):
            await self.db.execute(
                "UPDATE dicom_sends SET state = ?, error = ?, sent = ?, done_ms = ? WHERE id = ?",
                (state, error, sent, now, send_id),
            )

    async def sends_of(self, account_id: int, limit: int) -> list[DicomSend]:
        """An account's latest sendings, newest first."""
        cursor = await self.db.execute(
            "SELECT s.id, s.case_id, d.label, s.started_ms, s.done_ms, s.total, s.sent, s.state,"
            " s.error FROM dicom_sends s LEFT JOIN dicom_destinations d ON d.id = s.destination_id"
            " WHERE s.account_id = ? ORDER BY s.id DESC LIMIT ?",
            (account_id, limit),
        )
        return [
            DicomSend(
                id=int(r[0]),
                case_id=bytes(r[1]),
                destination=str(r[2] or ""),
                started_ms=int(r[3]),
                done_ms=None if r[4] is None else int(r[4]),
                total=int(r[5]),
                sent=int(r[6]),
                state=str(r[7]),
                error=str(r[8]),
            )
            for r in await cursor.fetchall()
        ]
