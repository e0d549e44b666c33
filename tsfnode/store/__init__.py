"""The node's database: aiosqlite, WAL mode, migrated on open."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiosqlite

from protocol.documents import Document
from tsfnode.errors import NodeError
from tsfnode.store.migrations import MIGRATIONS, SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Store"]


class Store:
    """The node's persistent state. Open with ``await Store.open(path)``; closed by
    ``close``, or at the end of ``async with await Store.open(path) as store:``."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    async def open(cls, path: Path, *, create: bool = False, readonly: bool = False) -> Store:
        """Open (and, unless ``readonly``, migrate) the database; NodeError if it is
        missing, not a database, or from a newer tsfnode (which is left untouched)."""
        if not create and not await asyncio.to_thread(path.exists):
            raise NodeError(
                f"{path} is missing: restore it from a backup, or 'tsfnode init --force'"
            )
        if readonly:
            db = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True)
        else:
            db = await aiosqlite.connect(path)
        try:
            try:
                version = (await (await db.execute("PRAGMA user_version")).fetchone() or (0,))[0]
            except sqlite3.DatabaseError:
                raise NodeError(
                    f"{path} is not a tsfnode database (corrupt?): restore it from a backup"
                ) from None
            if version > SCHEMA_VERSION:
                raise NodeError(
                    f"{path} has schema version {version}, newer than this tsfnode knows "
                    f"({SCHEMA_VERSION}): upgrade tsfnode; the database was not changed"
                )
            if readonly:
                return cls(db, path)
            await db.execute("PRAGMA journal_mode=WAL")
            # WAL with synchronous=NORMAL: a commit survives a crash of the process; a
            # power cut may lose the last ones, never the database's consistency.
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA foreign_keys=ON")
            for number in range(version, SCHEMA_VERSION):
                await db.executescript(
                    f"BEGIN; {MIGRATIONS[number]} PRAGMA user_version = {number + 1}; COMMIT;"
                )
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def schema_version(self) -> int:
        row = await (await self.db.execute("PRAGMA user_version")).fetchone()
        return int(row[0]) if row else 0

    async def get_meta(self, key: str) -> str | None:
        cursor = await self.db.execute("SELECT value FROM meta WHERE key = ?", (key,))
        row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        await self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
        await self.db.commit()

    async def load_records(self) -> list[bytes]:
        cursor = await self.db.execute("SELECT raw FROM directory_records ORDER BY version")
        return [bytes(row[0]) for row in await cursor.fetchall()]

    async def save_records(self, added: list[Document], removed: list[bytes]) -> None:
        """Insert ``added`` records and delete those whose digests are ``removed``."""
        await self.db.executemany(
            "INSERT OR IGNORE INTO directory_records (digest, kind, signer, version, expires, raw)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (d.digest, d.kind, d.signer.key, d.body["version"], d.body["expires"], d.raw)
                for d in added
            ],
        )
        await self.db.executemany(
            "DELETE FROM directory_records WHERE digest = ?", [(r,) for r in removed]
        )
        await self.db.commit()

    async def save_ignored(self, counts: dict[str, int]) -> None:
        await self.db.executemany(
            "INSERT INTO directory_ignored (reason, count) VALUES (?, ?) "
            "ON CONFLICT (reason) DO UPDATE SET count = excluded.count",
            list(counts.items()),
        )
        await self.db.commit()

    async def load_ignored(self) -> dict[str, int]:
        cursor = await self.db.execute("SELECT reason, count FROM directory_ignored")
        return {str(r[0]): int(r[1]) for r in await cursor.fetchall()}

    async def load_replay_state(self) -> bytes | None:
        row = await (await self.db.execute("SELECT state FROM replay_state")).fetchone()
        return None if row is None else bytes(row[0])

    async def save_replay_state(self, state: bytes) -> None:
        await self.db.execute(
            "INSERT INTO replay_state (id, state) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            (state,),
        )
        await self.db.commit()

    async def table_counts(self) -> dict[str, int]:
        """Rows per table, for `tsfnode status`."""
        names = [
            r[0]
            for r in await (
                await self.db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ).fetchall()
        ]
        counts = {}
        for name in names:
            row = await (await self.db.execute(f'SELECT count(*) FROM "{name}"')).fetchone()  # noqa: S608
            counts[name] = int(row[0]) if row else 0
        return counts
