"""The ``audit_log`` table and its head (meta 'audit_head'): the entries of the hash
chain (protocol/audit.py) as ``AuditEntry``. ``append`` writes an entry with the new
head and does not commit: the caller commits its decision once (``commit``)."""

from __future__ import annotations

from typing import Any

from protocol.audit import AuditEntry

HEAD = "audit_head"  # meta key: the digest of the last entry, in hex
_SELECT = "SELECT seq, at_ms, actor, case_id, action, detail, prev FROM audit_log"


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=int(row[0]),
        at_ms=int(row[1]),
        actor=bytes(row[2]),
        case_id=bytes(row[3]),
        action=str(row[4]),
        detail=str(row[5]),
        prev=bytes(row[6]),
    )


class AuditStore:
    """The audit log's queries over the node's database connection (``Store.db``)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    async def commit(self) -> None:
        await self.db.commit()

    async def last(self) -> AuditEntry | None:
        cursor = await self.db.execute(f"{_SELECT} ORDER BY seq DESC LIMIT 1")
        row = await cursor.fetchone()
        return None if row is None else _entry(row)

    async def entries(self) -> list[AuditEntry]:
        """Every entry, in order."""
        cursor = await self.db.execute(f"{_SELECT} ORDER BY seq")
        return [_entry(row) for row in await cursor.fetchall()]

    async def head(self) -> bytes | None:
        """The digest of the last entry as recorded apart (None: none recorded)."""
        cursor = await self.db.execute("SELECT value FROM meta WHERE key = ?", (HEAD,))
        row = await cursor.fetchone()
        return None if row is None or not row[0] else bytes.fromhex(str(row[0]))

    async def append(self, entry: AuditEntry) -> None:
        """The entry, and the head that is now its digest."""
        await self.db.execute(
            "INSERT INTO audit_log (seq, at_ms, actor, case_id, action, detail, prev)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                entry.seq,
                entry.at_ms,
                entry.actor,
                entry.case_id,
                entry.action,
                entry.detail,
                entry.prev,
            ),
        )
        await self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (HEAD, entry.digest.hex()),
        )
