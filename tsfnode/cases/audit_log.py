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
from tsfnode.store.audit import AuditStore


class AuditLog:
    """Appends entries in order; one writer per node (the running node, or a command
    while the node is stopped)."""

    def __init__(self, store: Store) -> None:
        self.rows = AuditStore(store.db)
        self._lock = asyncio.Lock()
        self._head: AuditEntry | None = None
        self._loaded = False

    async def append(
        self,
        *,
        actor: bytes,
        case_id: bytes,
        action: str,
        detail: str,
        now: int,
        commit: bool = True,
    ) -> AuditEntry:
        """Write one entry with the new head; committed, unless ``commit`` is False
        (the entry is then part of the caller's decision, which commits it)."""
        async with self._lock:
            if not self._loaded:
                self._head, self._loaded = await self.rows.last(), True
            entry = chain_next(
                self._head, at_ms=now, actor=actor, case_id=case_id, action=action, detail=detail
            )
            await self.rows.append(entry)
            if commit:
                await self.rows.commit()
            self._head = entry
            return entry


async def read_entries(store: Store) -> list[AuditEntry]:
    return await AuditStore(store.db).entries()


async def verify_log(store: Store) -> int:
    """How many entries the chain holds; IntegrityError names the first broken one."""
    rows = AuditStore(store.db)
    head = await rows.head()
    entries = await rows.entries()
    if head is None and entries:
        raise IntegrityError("the audit log has entries but the node's record of its head is gone")
    return verify_chain(entries, head)


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
