"""The transfers' tables (``bundles``, ``deliveries``, ``blame``): every query the
outbox, the inbox, the relay and the progress views make, and nothing else.

Rows come out as frozen dataclasses; each change is committed as it is made (one
decision, one transaction), except a bundle sealed or deleted for a case, which is part
of the case service's decision (``commit=False``, ``forget``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from protocol.bundle import Manifest
from protocol.transfer import ChunkSet

# The columns a caller may change, by table (names are never taken from outside).
BUNDLE_FIELDS = frozenset(
    {"state", "have", "last_error", "receipt", "completed_ms", "sources", "expires_ms"}
)
DELIVERY_FIELDS = frozenset(
    {
        "state",
        "attempts",
        "route",
        "target",
        "failures",
        "next_attempt_ms",
        "last_error",
        "bytes_done",
        "rate",
        "acked",
        "started_ms",
        "deposited_ms",
        "delivered_ms",
        "receipt",
    }
)


@dataclass(frozen=True)
class Bundle:
    """A bundle held here: sealed here (``outbox``), addressed here (``inbox``), or held
    for another node (``relay``)."""

    bundle_id: bytes
    role: str
    manifest: bytes
    state: str
    sources: tuple[str, ...]  # inbox: where to pull from (node keys in hex)
    receipt: bytes | None


@dataclass(frozen=True)
class RelayHolding:
    """A bundle this relay holds for another node (``state = 'holding'``): what it costs
    the relay's quota is the manifest and the chunks actually on disk."""

    bundle_id: bytes
    sender: bytes
    chunk_count: int
    size: int  # ciphertext bytes of the whole bundle
    have: bytes  # the chunk set as last saved
    manifest_size: int
    expires_ms: int


@dataclass(frozen=True)
class HeldChunks:
    """What the chunk set saved for a bundle says, with what is needed to check it."""

    chunk_count: int
    have: bytes
    state: str
    manifest: bytes


@dataclass(frozen=True)
class Delivery:
    """One recipient's delivery of a bundle sealed here."""

    state: str
    attempts: int
    route: str  # '' until an attempt chose one
    target: bytes | None  # the node pushed to: the recipient, or one of its relays
    failures: int  # attempts in a row that moved nothing


@dataclass(frozen=True)
class OutgoingRow:
    """A delivery as the progress views show it."""

    bundle_id: bytes
    recipient: bytes
    state: str
    route: str
    attempts: int
    last_error: str
    bytes_done: int
    rate: float
    size: int
    priority: int
    created_ms: int
    delivered_ms: int | None
    started_ms: int | None
    deposited_ms: int | None


@dataclass(frozen=True)
class CaseDelivery:
    """A delivery of a case's images sealed here (``tsfnode scenario`` reads them): the
    bundle's size and the goodput the delivery measured (bytes/s, 0 if none)."""

    case_id: bytes
    bundle_id: bytes
    recipient: bytes
    size: int
    rate: float
    started_ms: int | None
    delivered_ms: int | None


@dataclass(frozen=True)
class IncomingRow:
    """A bundle received or relayed here, as the progress views show it."""

    bundle_id: bytes
    role: str
    sender: bytes
    state: str
    held: ChunkSet
    size: int
    priority: int
    created_ms: int
    completed_ms: int | None
    last_error: str
    through_relay: bool


def _set_clause(fields: dict[str, Any], allowed: frozenset[str]) -> str:
    unknown = set(fields) - allowed
    if unknown or not fields:
        raise ValueError(f"cannot change {sorted(unknown) or 'nothing'}")
    return ", ".join(f"{k} = ?" for k in fields)


class TransferStore:
    """The transfers' queries over the node's database connection (``Store.db``)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    # --- bundles ---------------------------------------------------------------------

    async def bundle(self, bundle_id: bytes) -> Bundle | None:
        cursor = await self.db.execute(
            "SELECT role, manifest, state, sources, receipt FROM bundles WHERE bundle_id = ?",
            (bundle_id,),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        receipt = None if row[4] is None else bytes(row[4])
        return Bundle(bundle_id, row[0], bytes(row[1]), row[2], tuple(json.loads(row[3])), receipt)

    async def held_chunks(self, bundle_id: bytes) -> HeldChunks | None:
        cursor = await self.db.execute(
            "SELECT chunk_count, have, state, manifest FROM bundles WHERE bundle_id = ?",
            (bundle_id,),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        return HeldChunks(int(row[0]), bytes(row[1]), row[2], bytes(row[3]))

    async def update_bundle(self, bundle_id: bytes, **fields: Any) -> None:
        names = _set_clause(fields, BUNDLE_FIELDS)
        await self.db.execute(
            f"UPDATE bundles SET {names} WHERE bundle_id = ?",  # noqa: S608 - names listed
            (*fields.values(), bundle_id),
        )
        await self.db.commit()

    async def insert_received(
        self,
        manifest: Manifest,
        role: str,
        now: int,
        *,
        sources: list[str],
        expires_ms: int | None = None,
    ) -> None:
        """A bundle offered to this node (``inbox``) or to hold as a relay (``relay``);
        nothing happens if it is already held."""
        count = manifest.chunk_count
        await self.db.execute(
            "INSERT OR IGNORE INTO bundles (bundle_id, role, manifest, sender, priority,"
            " chunk_count, size, have, state, created_ms, expires_ms, sources)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                manifest.bundle_id,
                role,
                manifest.raw,
                manifest.sender.key,
                manifest.priority,
                count,
                manifest.ciphertext_size,
                ChunkSet(count).to_bytes(),
                "receiving" if role == "inbox" else "holding",
                now,
                manifest.expires if expires_ms is None else expires_ms,
                json.dumps(sources),
            ),
        )
        await self.db.commit()

    async def insert_sealed(
        self, manifest: Manifest, *, sender: bytes, study_uid: str, now: int, commit: bool = True
    ) -> None:
        """A bundle sealed here, with one delivery per recipient, due now (committed
        unless ``commit`` is False: then part of the caller's decision)."""
        count = manifest.chunk_count
        await self.db.execute(
            "INSERT INTO bundles (bundle_id, role, manifest, sender, priority, chunk_count,"
            " size, have, state, created_ms, expires_ms, study_uid)"
            " VALUES (?, 'outbox', ?, ?, ?, ?, ?, ?, 'sealed', ?, ?, ?)",
            (
                manifest.bundle_id,
                manifest.raw,
                sender,
                manifest.priority,
                count,
                manifest.ciphertext_size,
                ChunkSet.full(count).to_bytes(),
                now,
                manifest.expires,
                study_uid,
            ),
        )
        await self.db.executemany(
            "INSERT INTO deliveries (bundle_id, recipient, state, next_attempt_ms, acked)"
            " VALUES (?, ?, 'pending', ?, ?)",
            [
                (manifest.bundle_id, r.key, now, ChunkSet(count).to_bytes())
                for r in manifest.recipients
            ],
        )
        if commit:
            await self.db.commit()

    async def forget(self, bundle_id: bytes) -> None:
        """A bundle and its deliveries are deleted from the tables (its images purged);
        not committed: part of the caller's decision."""
        await self.db.execute("DELETE FROM deliveries WHERE bundle_id = ?", (bundle_id,))
        await self.db.execute("DELETE FROM bundles WHERE bundle_id = ?", (bundle_id,))

    async def counts(self) -> dict[str, int]:
        """Bundles held here by ``role:state``."""
        cursor = await self.db.execute(
            "SELECT role, state, COUNT(*) FROM bundles GROUP BY role, state"
        )
        return {f"{r}:{s}": int(n) for r, s, n in await cursor.fetchall()}

    async def relay_holdings(self) -> list[RelayHolding]:
        """The bundles this relay holds for others, each with what it costs."""
        cursor = await self.db.execute(
            "SELECT bundle_id, sender, chunk_count, size, have, length(manifest), expires_ms"
            " FROM bundles WHERE role = 'relay' AND state = 'holding'"
        )
        return [
            RelayHolding(bytes(b), bytes(s), int(n), int(z), bytes(h), int(m), int(e))
            for b, s, n, z, h, m, e in await cursor.fetchall()
        ]

    async def revive_relay_copy(self, bundle_id: bytes, have: bytes, expires_ms: int) -> None:
        """A relay copy that expired is offered again: held anew, with nothing yet."""
        await self.db.execute(
            "UPDATE bundles SET state = 'holding', have = ?, expires_ms = ?, last_error = ''"
            " WHERE bundle_id = ? AND role = 'relay' AND state = 'expired'",
            (have, expires_ms, bundle_id),
        )
        await self.db.commit()

    async def relay_manifests(self) -> list[bytes]:
        """The manifests of the bundles this relay holds for others."""
        cursor = await self.db.execute(
            "SELECT manifest FROM bundles WHERE role = 'relay' AND state = 'holding'"
        )
        return [bytes(raw) for (raw,) in await cursor.fetchall()]

    async def failure_of(self, bundle_id: bytes) -> str | None:
        """Why a bundle addressed here could not be opened (None: it did not fail)."""
        cursor = await self.db.execute(
            "SELECT last_error FROM bundles WHERE bundle_id = ? AND role = 'inbox'"
            " AND state = 'failed'",
            (bundle_id,),
        )
        row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def receipts_to_post(self, since_ms: int) -> list[bytes]:
        """Bundles opened here since ``since_ms`` that came through a relay (whose
        receipt the relay may still wait for)."""
        cursor = await self.db.execute(
            "SELECT bundle_id FROM bundles WHERE role = 'inbox' AND state = 'complete'"
            " AND sources != '[]' AND completed_ms > ?",
            (since_ms,),
        )
        return [bytes(b) for (b,) in await cursor.fetchall()]

    async def receiving(self) -> list[tuple[bytes, bool]]:
        """(bundle id, whether it has a source to pull from) of the bundles being
        received here, most urgent first."""
        cursor = await self.db.execute(
            "SELECT bundle_id, sources FROM bundles WHERE role = 'inbox' AND state = 'receiving'"
            " ORDER BY priority DESC, created_ms"
        )
        return [(bytes(b), sources != "[]") for b, sources in await cursor.fetchall()]

    async def expired(self, now: int) -> list[tuple[bytes, bytes]]:
        """(bundle id, manifest) of relay copies and unfinished inbox bundles past their
        expiry."""
        cursor = await self.db.execute(
            "SELECT bundle_id, manifest FROM bundles WHERE role IN ('relay', 'inbox')"
            " AND state IN ('holding', 'receiving') AND expires_ms <= ?",
            (now,),
        )
        return [(bytes(b), bytes(m)) for b, m in await cursor.fetchall()]

    async def blame(
        self, source: bytes, bundle_id: bytes, chunk: int, reason: str, now: int
    ) -> None:
        await self.db.execute(
            "INSERT INTO blame (source, bundle_id, chunk, reason, at_ms) VALUES (?, ?, ?, ?, ?)",
            (source, bundle_id, chunk, reason, now),
        )
        await self.db.commit()

    # --- deliveries ------------------------------------------------------------------

    async def reset_sending(self) -> None:
        """Deliveries cut by a stop or a crash are pending again."""
        await self.db.execute("UPDATE deliveries SET state = 'pending' WHERE state = 'sending'")
        await self.db.commit()

    async def due_deliveries(self, now: int, limit: int) -> list[tuple[bytes, bytes]]:
        """(bundle id, recipient) of deliveries due at ``now``, most urgent first."""
        cursor = await self.db.execute(
            "SELECT d.bundle_id, d.recipient FROM deliveries d JOIN bundles b USING (bundle_id)"
            " WHERE d.state IN ('pending', 'deposited') AND d.next_attempt_ms <= ?"
            " ORDER BY b.priority DESC, b.created_ms LIMIT ?",
            (now, limit),
        )
        return [(bytes(b), bytes(r)) for b, r in await cursor.fetchall()]

    async def undelivered(self) -> list[tuple[bytes, bytes]]:
        """(bundle id, recipient) of the deliveries still to make or to confirm."""
        cursor = await self.db.execute(
            "SELECT bundle_id, recipient FROM deliveries WHERE state IN ('pending', 'deposited')"
        )
        return [(bytes(b), bytes(r)) for b, r in await cursor.fetchall()]

    async def delivery(self, bundle_id: bytes, recipient: bytes) -> Delivery | None:
        cursor = await self.db.execute(
            "SELECT state, attempts, route, target, failures FROM deliveries"
            " WHERE bundle_id = ? AND recipient = ?",
            (bundle_id, recipient),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        target = None if row[3] is None else bytes(row[3])
        return Delivery(row[0], int(row[1]), row[2], target, int(row[4]))

    async def update_delivery(self, bundle_id: bytes, recipient: bytes, **fields: Any) -> None:
        names = _set_clause(fields, DELIVERY_FIELDS)
        await self.db.execute(
            f"UPDATE deliveries SET {names} WHERE bundle_id = ? AND recipient = ?",  # noqa: S608
            (*fields.values(), bundle_id, recipient),
        )
        await self.db.commit()

    async def recent_rates(self, limit: int = 20) -> list[float]:
        """The goodput (bytes/s) of the last deliveries that measured one, newest first."""
        cursor = await self.db.execute(
            "SELECT rate FROM deliveries WHERE rate > 0 ORDER BY started_ms DESC LIMIT ?",
            (limit,),
        )
        return [float(r[0]) for r in await cursor.fetchall()]

    async def case_deliveries(self) -> list[CaseDelivery]:
        """The deliveries of the images of the cases sent from here, oldest first."""
        cursor = await self.db.execute(
            "SELECT c.case_id, bundle_id, d.recipient, b.size, d.rate, d.started_ms,"
            " d.delivered_ms"
            " FROM case_bundles c JOIN bundles b USING (bundle_id)"
            " JOIN deliveries d USING (bundle_id)"
            " WHERE c.purpose = 'images' AND b.role = 'outbox'"
            " ORDER BY b.created_ms, c.case_id, d.recipient"
        )
        return [
            CaseDelivery(bytes(r[0]), bytes(r[1]), bytes(r[2]), int(r[3]), float(r[4]), r[5], r[6])
            for r in await cursor.fetchall()
        ]

    # --- what the progress views show ------------------------------------------------

    async def outgoing(self) -> list[OutgoingRow]:
        cursor = await self.db.execute(
            "SELECT d.bundle_id, d.recipient, d.state, d.route, d.attempts, d.last_error,"
            " d.bytes_done, d.rate, b.size, b.priority, b.created_ms, d.delivered_ms,"
            " d.started_ms, d.deposited_ms"
            " FROM deliveries d JOIN bundles b USING (bundle_id)"
            " ORDER BY b.created_ms DESC"
        )
        return [OutgoingRow(bytes(r[0]), bytes(r[1]), *r[2:]) for r in await cursor.fetchall()]

    async def incoming(self) -> list[IncomingRow]:
        cursor = await self.db.execute(
            "SELECT bundle_id, role, sender, state, chunk_count, have, size, priority,"
            " created_ms, completed_ms, last_error, sources FROM bundles"
            " WHERE role IN ('inbox', 'relay') ORDER BY created_ms DESC"
        )
        return [
            IncomingRow(
                bundle_id=bytes(r[0]),
                role=r[1],
                sender=bytes(r[2]),
                state=r[3],
                held=ChunkSet(r[4], bytes(r[5])),
                size=r[6],
                priority=r[7],
                created_ms=r[8],
                completed_ms=r[9],
                last_error=r[10],
                through_relay=bool(json.loads(r[11])),
            )
            for r in await cursor.fetchall()
        ]
