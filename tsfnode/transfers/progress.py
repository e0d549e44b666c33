"""Every transfer as the CLI (``tsfnode transfers``), the local API and the admin page
show it: deliveries of bundles sealed here, bundles received or relayed, read from the
database (so the CLI can show them with the node stopped)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from protocol.identity import PublicIdentity
from protocol.transfer import ChunkSet


@dataclass
class Progress:
    """A transfer as the CLI and the local API show it."""

    bundle_id: str
    direction: str  # out (a delivery of ours), in (a bundle for us), relay
    peer: str
    route: str
    state: str
    size: int
    bytes_done: int
    rate: float
    eta_s: float | None
    attempts: int
    last_error: str
    priority: int
    created_ms: int
    started_ms: int | None  # the last attempt began (out)
    deposited_ms: int | None  # every chunk acknowledged by the target (out)
    done_ms: int | None  # receipt received (out), bundle complete (in, relay)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


async def list_progress(db: Any) -> list[Progress]:
    """Every transfer: deliveries of bundles sealed here, bundles received or relayed."""
    out: list[Progress] = []
    cursor = await db.execute(
        "SELECT d.bundle_id, d.recipient, d.state, d.route, d.target, d.attempts,"
        " d.last_error, d.bytes_done, d.rate, b.size, b.priority, b.created_ms,"
        " d.delivered_ms, d.started_ms, d.deposited_ms"
        " FROM deliveries d JOIN bundles b USING (bundle_id)"
        " ORDER BY b.created_ms DESC"
    )
    for row in await cursor.fetchall():
        size, done, rate = row[9], row[7], row[8]
        out.append(
            Progress(
                bundle_id=bytes(row[0]).hex(),
                direction="out",
                peer=PublicIdentity(bytes(row[1])).text,
                route=row[3] or "",
                state=row[2],
                size=size,
                bytes_done=done,
                rate=rate,
                eta_s=(size - done) / rate if rate and row[2] == "sending" else None,
                attempts=row[5],
                last_error=row[6],
                priority=row[10],
                created_ms=row[11],
                started_ms=row[13],
                deposited_ms=row[14],
                done_ms=row[12],
            )
        )
    cursor = await db.execute(
        "SELECT bundle_id, role, sender, state, chunk_count, have, size, priority,"
        " created_ms, completed_ms, last_error, sources FROM bundles"
        " WHERE role IN ('inbox', 'relay') ORDER BY created_ms DESC"
    )
    for row in await cursor.fetchall():
        have = ChunkSet(row[4], bytes(row[5]))
        size = row[6]
        done = size if have.complete else int(size * len(have) / row[4])
        out.append(
            Progress(
                bundle_id=bytes(row[0]).hex(),
                direction="in" if row[1] == "inbox" else "relay",
                peer=PublicIdentity(bytes(row[2])).text,
                route="relay" if json.loads(row[11]) else "direct",
                state=row[3],
                size=size,
                bytes_done=done,
                rate=0.0,
                eta_s=None,
                attempts=0,
                last_error=row[10],
                priority=row[7],
                created_ms=row[8],
                started_ms=None,
                deposited_ms=None,
                done_ms=row[9],
            )
        )
    return out
