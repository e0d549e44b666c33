"""E-mail: each account's address and choice (``accounts.email``, ``email_mode``) and
the queue of e-mails (``mail_queue``), and nothing else.

A row is one notice for one account; ``UNIQUE (notice, account_id)`` makes queueing the
same notice again a no-op, so a scan that runs twice, a restart or two nodes' decisions
never queue (hence never send) a notice twice. The writes of ``queue`` do not commit: a
notice is queued in the transaction of the decision that made it (the case service
commits); the sender's writes (``sent``, ``retry``, ``failed``) commit at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

MODES = ("immediately", "digest", "never")


@dataclass(frozen=True)
class Contact:
    """How an account is reached: its address ('' none) and its choice (``MODES``)."""

    account_id: int
    username: str
    language: str
    email: str
    mode: str


@dataclass(frozen=True)
class Queued:
    """An e-mail waiting (or sent, or failed) for one account."""

    id: int
    notice: str
    account_id: int
    kind: str
    case_id: bytes | None
    figures: dict[str, Any] = field(compare=False)
    digest: bool
    state: str
    attempts: int
    next_attempt_ms: int
    last_error: str
    created_ms: int
    sent_ms: int | None


_QUEUED = (
    "id, notice, account_id, kind, case_id, figures, digest, state, attempts,"
    " next_attempt_ms, last_error, created_ms, sent_ms"
)


def _queued(r: Any) -> Queued:
    return Queued(
        id=int(r[0]),
        notice=str(r[1]),
        account_id=int(r[2]),
        kind=str(r[3]),
        case_id=None if r[4] is None else bytes(r[4]),
        figures=json.loads(r[5]),
        digest=bool(r[6]),
        state=str(r[7]),
        attempts=int(r[8]),
        next_attempt_ms=int(r[9]),
        last_error=str(r[10]),
        created_ms=int(r[11]),
        sent_ms=None if r[12] is None else int(r[12]),
    )


class MailStore:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    # --- people's addresses ------------------------------------------------------------

    async def contact(self, account_id: int) -> Contact | None:
        cursor = await self.db.execute(
            "SELECT id, username, language, email, email_mode FROM accounts WHERE id = ?",
            (account_id,),
        )
        row = await cursor.fetchone()
        return None if row is None else Contact(int(row[0]), *(str(v) for v in row[1:]))

    async def contacts_by_key(self, keys: list[bytes]) -> dict[bytes, Contact]:
        """The accounts here whose person keys are ``keys``."""
        if not keys:
            return {}
        marks = ", ".join("?" * len(keys))
        cursor = await self.db.execute(
            "SELECT id, username, language, email, email_mode, person_key FROM accounts"  # noqa: S608 - marks only
            f" WHERE person_key IN ({marks})",
            keys,
        )
        return {
            bytes(r[5]): Contact(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]))
            for r in await cursor.fetchall()
        }

    async def set_contact(self, account_id: int, email: str, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        await self.db.execute(
            "UPDATE accounts SET email = ?, email_mode = ? WHERE id = ?",
            (email, mode, account_id),
        )
        await self.db.commit()

    # --- the queue ---------------------------------------------------------------------

    async def queue(
        self,
        *,
        notice: str,
        account_id: int,
        kind: str,
        case_id: bytes | None,
        figures: dict[str, Any],
        digest: bool,
        due_ms: int,
        now: int,
    ) -> bool:
        """Queue ``notice`` for the account unless it already was (not committed): True
        if it is new."""
        cursor = await self.db.execute(
            "INSERT OR IGNORE INTO mail_queue (notice, account_id, kind, case_id, figures,"
            " digest, next_attempt_ms, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (notice, account_id, kind, case_id, json.dumps(figures), int(digest), due_ms, now),
        )
        return cursor.rowcount == 1

    async def commit(self) -> None:
        await self.db.commit()

    async def due(self, now: int, limit: int = 100) -> list[Queued]:
        """Queued rows whose time has come, oldest first."""
        cursor = await self.db.execute(
            f"SELECT {_QUEUED} FROM mail_queue"  # noqa: S608 - our own names
            " WHERE state = 'queued' AND next_attempt_ms <= ? ORDER BY next_attempt_ms, id"
            " LIMIT ?",
            (now, limit),
        )
        return [_queued(r) for r in await cursor.fetchall()]

    async def next_due(self) -> int | None:
        """When the next queued row is due (None: nothing queued)."""
        cursor = await self.db.execute(
            "SELECT MIN(next_attempt_ms) FROM mail_queue WHERE state = 'queued'"
        )
        row = await cursor.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    async def sent(self, ids: list[int], now: int) -> None:
        await self.db.executemany(
            "UPDATE mail_queue SET state = 'sent', sent_ms = ?, attempts = attempts + 1,"
            " last_error = '' WHERE id = ?",
            [(now, i) for i in ids],
        )
        await self.db.commit()

    async def retry(self, ids: list[int], error: str, next_ms: int) -> None:
        await self.db.executemany(
            "UPDATE mail_queue SET attempts = attempts + 1, last_error = ?,"
            " next_attempt_ms = ? WHERE id = ?",
            [(error, next_ms, i) for i in ids],
        )
        await self.db.commit()

    async def failed(self, ids: list[int], error: str, state: str = "failed") -> None:
        """Given up: 'failed' (refused, or too many attempts), 'dropped' (the person no
        longer wants e-mail, or has no address)."""
        await self.db.executemany(
            "UPDATE mail_queue SET state = ?, attempts = attempts + 1, last_error = ? WHERE id = ?",
            [(state, error, i) for i in ids],
        )
        await self.db.commit()

    async def counts(self) -> dict[str, int]:
        cursor = await self.db.execute("SELECT state, COUNT(*) FROM mail_queue GROUP BY state")
        found = {str(s): int(n) for s, n in await cursor.fetchall()}
        return {s: found.get(s, 0) for s in ("queued", "sent", "failed", "dropped")}

    async def in_state(self, state: str, limit: int = 50) -> list[tuple[Queued, str]]:
        """The newest rows in ``state`` with their account's address (the operator's)."""
        cursor = await self.db.execute(
            f"SELECT {', '.join('q.' + c.strip() for c in _QUEUED.split(','))}, a.email"  # noqa: S608 - our own names
            " FROM mail_queue q JOIN accounts a ON a.id = q.account_id"
            " WHERE q.state = ? ORDER BY q.id DESC LIMIT ?",
            (state, limit),
        )
        return [(_queued(r[:13]), str(r[13])) for r in await cursor.fetchall()]

    async def notices_of(self, account_id: int) -> list[Queued]:
        cursor = await self.db.execute(
            f"SELECT {_QUEUED} FROM mail_queue WHERE account_id = ? ORDER BY id",  # noqa: S608 - our own names
            (account_id,),
        )
        return [_queued(r) for r in await cursor.fetchall()]
