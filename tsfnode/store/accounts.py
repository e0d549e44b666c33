"""The tables of the people who use a node (``accounts``, ``applications``,
``web_sessions``, ``api_tokens``, ``login_failures``): every query the accounts, the
sign-in, the gates, the joining page and the coordinator's page make, and nothing else.

Rows come out as frozen dataclasses; a decision that writes several rows (a sign-in
that opens a session, an application attested into an account) is one transaction.
Column names are written here, never taken from outside.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiosqlite


class UsernameTaken(Exception):
    """An account of that name is already on this node."""


@asynccontextmanager
async def transaction(db: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """The statements of one decision, committed together, or rolled back together if
    one of them fails."""
    try:
        yield db
    except BaseException:
        await db.rollback()
        raise
    await db.commit()


@dataclass(frozen=True)
class Account:
    """A local account: someone who signs in to this node."""

    id: int
    username: str
    display_name: str
    role: str  # sender | reader | coordinator | admin
    language: str  # fr | en
    person_key: bytes | None  # None for an admin: nobody in the network
    created_ms: int


@dataclass(frozen=True)
class Credentials:
    """An account with its password's argon2id hash, for the sign-in only."""

    account: Account
    password_hash: str


@dataclass(frozen=True)
class WebSession:
    """A signed-in web session, with the account it is for."""

    account_id: int
    username: str
    display_name: str
    role: str
    language: str
    csrf: str
    timezone: str = ""  # the zone the person reads times in ('': the node's)


@dataclass(frozen=True)
class TokenOwner:
    """The account behind a valid bearer token."""

    account_id: int
    username: str
    role: str


@dataclass(frozen=True)
class ApiToken:
    """A token as its owner's list shows it (never its value, which is not kept)."""

    id: int
    label: str
    created_ms: int
    expires_ms: int
    last_used_ms: int | None
    revoked: bool


@dataclass(frozen=True)
class Failures:
    """Failed attempts of one key from one address, since some time."""

    count: int
    last_ms: int | None


@dataclass(frozen=True)
class JoinCounts:
    """What the joining page checks before it takes an application."""

    account_exists: bool  # an account already has the name
    pending_for_name: bool  # an application with the name is waiting
    pending_from_source: int  # applications waiting from the address


@dataclass(frozen=True)
class Application:
    """An application to join a group, from the node's public page."""

    id: int
    role: str  # reader | sender
    group_key: bytes
    username: str
    display_name: str
    password_hash: str
    language: str
    details: str  # JSON: registration, diploma, facility, languages...
    charter_ms: int
    created_ms: int


@dataclass(frozen=True)
class NewAccount:
    """An account as it is made: who it is for, the password already hashed."""

    username: str
    display_name: str
    role: str
    password_hash: str
    language: str


_ACCOUNT = "a.id, a.username, a.display_name, a.role, a.language, a.person_key, a.created_ms"


def _account(row: sqlite3.Row) -> Account:
    return Account(
        id=int(row[0]),
        username=str(row[1]),
        display_name=str(row[2]),
        role=str(row[3]),
        language=str(row[4]),
        person_key=None if row[5] is None else bytes(row[5]),
        created_ms=int(row[6]),
    )


class AccountStore:
    """The queries about accounts and their sign-ins over the node's database
    connection (``Store.db``)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    # --- accounts --------------------------------------------------------------------

    async def account(self, username: str) -> Account | None:
        return await self._account_where("a.username = ?", username)

    async def account_by_id(self, account_id: int) -> Account | None:
        return await self._account_where("a.id = ?", account_id)

    async def _account_where(self, condition: str, value: str | int) -> Account | None:
        cursor = await self.db.execute(
            f"SELECT {_ACCOUNT} FROM accounts a WHERE {condition}",  # noqa: S608 - constants
            (value,),
        )
        row = await cursor.fetchone()
        return None if row is None else _account(row)

    async def credentials(self, username: str) -> Credentials | None:
        cursor = await self.db.execute(
            f"SELECT {_ACCOUNT}, a.password_hash FROM accounts a WHERE a.username = ?",  # noqa: S608
            (username,),
        )
        row = await cursor.fetchone()
        return None if row is None else Credentials(_account(row), str(row[7]))

    async def add_account(self, new: NewAccount, *, now: int, person_key: bytes | None) -> int:
        """The new account's id; UsernameTaken if the name is already used."""
        async with transaction(self.db):
            return await self._insert_account(new, now, person_key)

    async def _insert_account(
        self, new: NewAccount | Application, now: int, person_key: bytes | None
    ) -> int:
        username = new.username
        values = (username, new.display_name, new.role, new.password_hash, new.language)
        try:
            cursor = await self.db.execute(
                "INSERT INTO accounts (username, display_name, role, password_hash, language,"
                " created_ms, person_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*values, now, person_key),
            )
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise UsernameTaken(username) from None
            raise
        return int(cursor.lastrowid or 0)

    async def set_person_key(self, username: str, person_key: bytes) -> None:
        """The account's person key after a rotation (SPEC.md §8.5)."""
        async with transaction(self.db):
            await self.db.execute(
                "UPDATE accounts SET person_key = ? WHERE username = ?", (person_key, username)
            )

    async def coordinator_keys(self) -> frozenset[bytes]:
        """The person keys of the coordinators with an account here."""
        cursor = await self.db.execute(
            "SELECT person_key FROM accounts WHERE role = 'coordinator' AND person_key IS NOT NULL"
        )
        return frozenset(bytes(key) for (key,) in await cursor.fetchall())

    # --- applications to join a group --------------------------------------------------

    async def join_counts(self, username: str, source: str) -> JoinCounts:
        cursor = await self.db.execute(
            "SELECT (SELECT COUNT(*) FROM accounts WHERE username = ?),"
            " (SELECT COUNT(*) FROM applications WHERE username = ? AND state = 'pending'),"
            " (SELECT COUNT(*) FROM applications WHERE source = ? AND state = 'pending')",
            (username, username, source),
        )
        taken, waiting, from_source = await cursor.fetchone() or (0, 0, 0)
        return JoinCounts(bool(taken), bool(waiting), int(from_source))

    async def add_application(
        self,
        *,
        role: str,
        group_key: bytes,
        username: str,
        display_name: str,
        password_hash: str,
        language: str,
        details: str,
        source: str,
        now: int,
    ) -> int:
        async with transaction(self.db):
            cursor = await self.db.execute(
                "INSERT INTO applications (role, group_key, username, display_name,"
                " password_hash, language, details, charter_ms, source, created_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    role,
                    group_key,
                    username,
                    display_name,
                    password_hash,
                    language,
                    details,
                    now,
                    source,
                    now,
                ),
            )
        return int(cursor.lastrowid or 0)

    async def pending_applications(self, application_id: int | None = None) -> list[Application]:
        """Applications waiting for a coordinator, oldest first (or the one named)."""
        query = (
            "SELECT id, role, group_key, username, display_name, password_hash, language,"
            " details, charter_ms, created_ms FROM applications WHERE state = 'pending'"
        )
        args: tuple[int, ...] = ()
        if application_id is not None:
            query, args = query + " AND id = ?", (application_id,)
        cursor = await self.db.execute(query + " ORDER BY created_ms, id", args)
        return [
            Application(
                id=int(r[0]),
                role=str(r[1]),
                group_key=bytes(r[2]),
                username=str(r[3]),
                display_name=str(r[4]),
                password_hash=str(r[5]),
                language=str(r[6]),
                details=str(r[7]),
                charter_ms=int(r[8]),
                created_ms=int(r[9]),
            )
            for r in await cursor.fetchall()
        ]

    async def decline_application(
        self, application_id: int, *, by: bytes, now: int, reason: str
    ) -> None:
        async with transaction(self.db):
            await self.db.execute(
                "UPDATE applications SET state = 'declined', decided_by = ?, decided_ms = ?,"
                " reason = ? WHERE id = ? AND state = 'pending'",
                (by, now, reason, application_id),
            )

    async def attest_application(
        self, application: Application, *, by: bytes, now: int, person_key: bytes
    ) -> int:
        """The applicant's account (with the password they chose) and the application
        marked attested, together: the new account's id. UsernameTaken if an account of
        that name was made meanwhile (then nothing is changed)."""
        async with transaction(self.db):
            account_id = await self._insert_account(application, now, person_key)
            await self.db.execute(
                "UPDATE applications SET state = 'attested', decided_by = ?, decided_ms = ?"
                " WHERE id = ?",
                (by, now, application.id),
            )
        return account_id

    # --- web sessions ----------------------------------------------------------------

    async def open_session(
        self,
        *,
        token_hash: bytes,
        account_id: int,
        csrf: str,
        now: int,
        expires_ms: int,
        attempts: tuple[str, str],
    ) -> None:
        """A signed-in session; the failed ``attempts`` (key, address) that preceded it
        are forgotten, and sessions past their end deleted, in the same transaction."""
        async with transaction(self.db):
            await self.db.execute(
                "INSERT INTO web_sessions (token_hash, account_id, csrf, created_ms, expires_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (token_hash, account_id, csrf, now, expires_ms),
            )
            await self.db.execute("DELETE FROM web_sessions WHERE expires_ms < ?", (now,))
            await self.db.execute(
                "DELETE FROM login_failures WHERE username = ? AND source = ?", attempts
            )

    async def session(self, token_hash: bytes, now: int) -> WebSession | None:
        cursor = await self.db.execute(
            "SELECT a.id, a.username, a.display_name, a.role, a.language, s.csrf, a.timezone"
            " FROM web_sessions s JOIN accounts a ON a.id = s.account_id"
            " WHERE s.token_hash = ? AND s.expires_ms > ?",
            (token_hash, now),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        return WebSession(
            int(row[0]),
            str(row[1]),
            str(row[2]),
            str(row[3]),
            str(row[4]),
            str(row[5]),
            str(row[6]),
        )

    async def set_timezone(self, account_id: int, zone: str) -> None:
        """The zone the account reads times in (an IANA name, checked by the caller)."""
        async with transaction(self.db):
            await self.db.execute(
                "UPDATE accounts SET timezone = ? WHERE id = ?", (zone, account_id)
            )

    async def close_session(self, token_hash: bytes) -> None:
        async with transaction(self.db):
            await self.db.execute("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash,))

    # --- failed attempts (sign-in, bearer tokens) ----------------------------------------

    async def failures(self, key: str, source: str, since: int) -> Failures:
        """The failed attempts of ``key`` (a username, or a key the caller chose) from
        ``source`` after ``since``."""
        cursor = await self.db.execute(
            "SELECT COUNT(*), MAX(at_ms) FROM login_failures"
            " WHERE username = ? AND source = ? AND at_ms > ?",
            (key, source, since),
        )
        count, last = await cursor.fetchone() or (0, None)
        return Failures(int(count), None if last is None else int(last))

    async def add_failure(self, key: str, source: str, *, now: int, forget_before: int) -> None:
        """One more failed attempt; those before ``forget_before`` are deleted."""
        async with transaction(self.db):
            await self.db.execute(
                "INSERT INTO login_failures (username, source, at_ms) VALUES (?, ?, ?)",
                (key, source, now),
            )
            await self.db.execute("DELETE FROM login_failures WHERE at_ms < ?", (forget_before,))

    # --- API tokens ------------------------------------------------------------------

    async def add_token(
        self,
        *,
        token_hash: bytes,
        account_id: int,
        purpose: str,
        now: int,
        expires_ms: int,
        label: str,
    ) -> None:
        async with transaction(self.db):
            await self.db.execute(
                "INSERT INTO api_tokens (token_hash, account_id, purpose, created_ms,"
                " expires_ms, label) VALUES (?, ?, ?, ?, ?, ?)",
                (token_hash, account_id, purpose, now, expires_ms, label),
            )

    async def use_token(self, token_hash: bytes, *, purpose: str, now: int) -> TokenOwner | None:
        """The owner of a valid (unexpired, unrevoked) token for ``purpose``, else None.
        Its last use is recorded, at most once a minute."""
        cursor = await self.db.execute(
            "SELECT a.id, a.username, a.role, t.last_used_ms FROM api_tokens t"
            " JOIN accounts a ON a.id = t.account_id"
            " WHERE t.token_hash = ? AND t.purpose = ? AND t.revoked = 0 AND t.expires_ms > ?",
            (token_hash, purpose, now),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        if row[3] is None or now - int(row[3]) > 60_000:
            async with transaction(self.db):
                await self.db.execute(
                    "UPDATE api_tokens SET last_used_ms = ? WHERE token_hash = ?",
                    (now, token_hash),
                )
        return TokenOwner(int(row[0]), str(row[1]), str(row[2]))

    async def tokens_of(self, account_id: int, purpose: str) -> list[ApiToken]:
        """An account's tokens for ``purpose``, newest first (revoked and expired ones
        too)."""
        cursor = await self.db.execute(
            "SELECT rowid, label, created_ms, expires_ms, last_used_ms, revoked FROM api_tokens"
            " WHERE account_id = ? AND purpose = ? ORDER BY created_ms DESC, rowid DESC",
            (account_id, purpose),
        )
        return [
            ApiToken(
                int(r[0]),
                str(r[1]),
                int(r[2]),
                int(r[3]),
                None if r[4] is None else int(r[4]),
                bool(r[5]),
            )
            for r in await cursor.fetchall()
        ]

    async def revoke_token(self, token_id: int, *, account_id: int, purpose: str) -> None:
        """Revoke one of the account's own tokens (another's is left alone)."""
        async with transaction(self.db):
            await self.db.execute(
                "UPDATE api_tokens SET revoked = 1 WHERE rowid = ? AND account_id = ?"
                " AND purpose = ?",
                (token_id, account_id, purpose),
            )
