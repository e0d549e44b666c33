"""Every transfer as the CLI (``tsfnode transfers``), the local API and the admin page
show it: deliveries of bundles sealed here, bundles received or relayed, read from the
database (so the CLI can show them with the node stopped)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.identity import PublicIdentity
from tsfnode.store.transfers import TransferStore


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
    rows = TransferStore(db)
    out: list[Progress] = []
    for d in await rows.outgoing():
        out.append(
            Progress(
                bundle_id=d.bundle_id.hex(),
                direction="out",
                peer=PublicIdentity(d.recipient).text,
                route=d.route or "",
                state=d.state,
                size=d.size,
                bytes_done=d.bytes_done,
                rate=d.rate,
                eta_s=(d.size - d.bytes_done) / d.rate if d.rate and d.state == "sending" else None,
                attempts=d.attempts,
                last_error=d.last_error,
                priority=d.priority,
                created_ms=d.created_ms,
                started_ms=d.started_ms,
                deposited_ms=d.deposited_ms,
                done_ms=d.delivered_ms,
            )
        )
    for b in await rows.incoming():
        count = b.held.count
        done = b.size if b.held.complete else int(b.size * len(b.held) / count)
        out.append(
            Progress(
                bundle_id=b.bundle_id.hex(),
                direction="in" if b.role == "inbox" else "relay",
                peer=PublicIdentity(b.sender).text,
                route="relay" if b.through_relay else "direct",
                state=b.state,
                size=b.size,
                bytes_done=done,
                rate=0.0,
                eta_s=None,
                attempts=0,
                last_error=b.last_error,
                priority=b.priority,
                created_ms=b.created_ms,
                started_ms=None,
                deposited_ms=None,
                done_ms=b.completed_ms,
            )
        )
    return out
