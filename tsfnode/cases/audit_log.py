"""The node's audit log: every access to a case and every transition, append-only and
hash-chained (protocol/audit.py), in the ``audit_log`` table; the head's digest is kept
in ``meta`` ('audit_head'). ``tsfnode audit verify DIR`` checks the chain, ``tsfnode audit
export DIR`` writes it as JSON lines.

Entries name keys, case ids, actions and states only: never a patient's name, a form's
text or a DICOM value.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

from protocol.audit import AuditEntry, chain_next, verify_chain
from protocol.errors import IntegrityError
from tsfnode.store import Store

HEAD = "audit_head"


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


class AuditLog:
    """Appends entries in order; one writer per node (the running node, or a command
    while the node is stopped)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = asyncio.Lock()
        self._head: AuditEntry | None = None
        self._loaded = False

    async def _last(self) -> AuditEntry | None:
        cursor = await self.store.db.execute(
            "SELECT seq, at_ms, actor, case_id, action, detail, prev FROM audit_log"
            " ORDER BY seq DESC LIMIT 1"
        )
        row = await cursor.fetchone()
        return None if row is None else _entry(row)

    async def append(
        self, *, actor: bytes, case_id: bytes, action: str, detail: str, now: int
    ) -> AuditEntry:
        """Write one entry (and commit, with the new head)."""
        async with self._lock:
            if not self._loaded:
                self._head, self._loaded = await self._last(), True
            entry = chain_next(
                self._head, at_ms=now, actor=actor, case_id=case_id, action=action, detail=detail
            )
            await self.store.db.execute(
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
            await self.store.set_meta(HEAD, entry.digest.hex())  # commits both
            self._head = entry
            return entry


async def read_entries(store: Store) -> list[AuditEntry]:
    cursor = await store.db.execute(
        "SELECT seq, at_ms, actor, case_id, action, detail, prev FROM audit_log ORDER BY seq"
    )
    return [_entry(row) for row in await cursor.fetchall()]


async def verify_log(store: Store) -> int:
    """How many entries the chain holds; IntegrityError names the first broken one."""
    head = await store.get_meta(HEAD)
    entries = await read_entries(store)
    if head is None and entries:
        raise IntegrityError("the audit log has entries but the node's record of its head is gone")
    return verify_chain(entries, bytes.fromhex(head) if head else None)


def as_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at_ms": entry.at_ms,
        "actor": entry.actor.hex(),
        "case_id": entry.case_id.hex(),
        "action": entry.action,
        "detail": entry.detail,
        "prev": entry.prev.hex(),
        "digest": entry.digest.hex(),
    }


def json_lines(entries: list[AuditEntry]) -> Iterator[str]:
    for entry in entries:
        yield json.dumps(as_json(entry), sort_keys=True) + "\n"
