"""The audit log's hash chain, sans-IO.

Every access to a case and every transition is an ``AuditEntry``: who (a key, or empty
for the node itself), which case, what, when, in order. Each entry is encoded with the
digest of the one before it, and its own digest is BLAKE3 of that encoding, so changing,
removing, inserting or reordering any entry breaks every digest after it. The digest of
the last entry (the head) is kept apart from the entries (the node keeps it in its
database's metadata): with it, cutting entries off the end is detected too.

Encoding of an entry: a msgpack array [seq, at_ms, actor, case_id, action, detail, prev],
seq from 0, prev of entry 0 = 32 zero bytes. No patient data goes in an entry: ``detail``
is for ids and states, never names or DICOM values (the caller's duty).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from protocol.codec import pack
from protocol.documents import digest
from protocol.errors import IntegrityError, LocalProtocolError

GENESIS = bytes(32)
MAX_DETAIL = 1024


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at_ms: int
    actor: bytes  # a key, or b"" for the node itself
    case_id: bytes  # b"" for what concerns no case
    action: str  # "claim", "report", "view", "purge"...
    detail: str = ""
    prev: bytes = GENESIS

    def encode(self) -> bytes:
        return pack(
            [self.seq, self.at_ms, self.actor, self.case_id, self.action, self.detail, self.prev]
        )

    @property
    def digest(self) -> bytes:
        return digest(self.encode())


def chain_next(
    head: AuditEntry | None, *, at_ms: int, actor: bytes, case_id: bytes, action: str, detail: str
) -> AuditEntry:
    """The entry that follows ``head`` (None: the first one)."""
    if not action or len(detail) > MAX_DETAIL:
        raise LocalProtocolError(f"an audit entry needs an action and at most {MAX_DETAIL} chars")
    if head is not None and at_ms < head.at_ms:
        at_ms = head.at_ms  # the clock went back: order is the chain's, time never runs back
    return AuditEntry(
        seq=0 if head is None else head.seq + 1,
        at_ms=at_ms,
        actor=actor,
        case_id=case_id,
        action=action,
        detail=detail,
        prev=GENESIS if head is None else head.digest,
    )


def verify_chain(entries: Iterable[AuditEntry], head: bytes | None = None) -> int:
    """Check the chain; return how many entries it holds. IntegrityError names the first
    entry that does not follow (or the head that does not match the last entry)."""
    prev, count, last_at = GENESIS, 0, 0
    for entry in entries:
        if entry.seq != count:
            raise IntegrityError(f"audit entry {count}: found entry {entry.seq} in its place")
        if entry.prev != prev:
            raise IntegrityError(f"audit entry {count} does not follow entry {count - 1}")
        if entry.at_ms < last_at:
            raise IntegrityError(f"audit entry {count} is dated before the one before it")
        prev, count, last_at = entry.digest, count + 1, entry.at_ms
    if head is not None and head != prev:
        raise IntegrityError(
            f"the audit log ends at entry {count - 1}, not where the node's record of its"
            " head says: entries were removed or changed at the end"
        )
    return count
