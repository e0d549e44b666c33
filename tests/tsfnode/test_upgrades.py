"""Upgrades: a database made by any earlier schema level, with data in every table, is
migrated when today's node opens it, losing no row; and a node whose database a former
release made starts on it and lets its administrator sign in. (Accounts of levels
before person keys existed have none: a sender or reader of such a database would be
given one by `tsfnode account`; no release was made at those levels.)"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from tests.harness.nodes import RunningNode, tsfnode
from tests.harness.people import PASSWORD, Browser
from tsfnode.auth.accounts import hash_password
from tsfnode.store import SCHEMA_VERSION, Store
from tsfnode.store.migrations import MIGRATIONS

EARLIER = range(1, len(MIGRATIONS))


def at_level(path: Path, level: int) -> sqlite3.Connection:
    """A database as the release whose schema was ``level`` left it."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA foreign_keys=ON")
    for i in range(level):
        con.executescript(f"BEGIN; {MIGRATIONS[i]} PRAGMA user_version = {i + 1}; COMMIT;")
    return con


def _allowed(sql: str) -> dict[str, list[str]]:
    """The values a column's CHECK (column IN (...)) allows."""
    return {
        m.group(1): [v.strip().strip("'") for v in m.group(2).split(",")]
        for m in re.finditer(r"CHECK\s*\(\s*(\w+)\s+IN\s*\(([^)]*)\)", sql)
    }


def fill(con: sqlite3.Connection, level: int) -> dict[str, int]:
    """Two rows in every table (values of each column's type, within its CHECKs); the
    number of rows of each table."""
    tables = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    for name, sql in tables:
        allowed = _allowed(sql)
        columns = con.execute(f"PRAGMA table_info({name})").fetchall()
        for row in range(2):
            values: list[object] = []
            for _, column, kind, *_ in columns:
                if column in allowed:
                    values.append(allowed[column][row % len(allowed[column])])
                elif "INT" in kind.upper():
                    values.append(row + 1)
                elif "BLOB" in kind.upper():
                    values.append(bytes([level, row]) * 16)
                else:
                    values.append(f"{column}-{level}-{row}")
            marks = ",".join("?" * len(values))
            try:
                con.execute(f"INSERT INTO {name} VALUES ({marks})", values)  # noqa: S608
            except sqlite3.IntegrityError:
                assert row == 1, f"{name}: not even one row fits at level {level}"
    con.commit()
    return {name: con.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0] for name, _ in tables}  # noqa: S608


@pytest.mark.parametrize("level", EARLIER)
async def test_a_database_of_every_earlier_level_is_migrated_with_its_rows(
    tmp_path: Path, level: int
) -> None:
    path = tmp_path / "node.db"
    con = at_level(path, level)
    before = fill(con, level)
    assert all(count >= 1 for count in before.values()), before
    con.close()
    store = await Store.open(path)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        for table, count in before.items():
            cursor = await store.db.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608
            row = await cursor.fetchone()
            assert row is not None
            assert row[0] == count, f"{table}: {count} rows at level {level}, {row[0]} after"
        cursor = await store.db.execute("PRAGMA integrity_check")
        assert await cursor.fetchall() == [("ok",)]
        cursor = await store.db.execute("PRAGMA foreign_key_check")
        assert await cursor.fetchall() == []
    finally:
        await store.close()


@pytest.mark.slow
@pytest.mark.parametrize("level", [1, len(MIGRATIONS) // 2, len(MIGRATIONS) - 1])
def test_a_node_starts_on_a_database_an_earlier_release_made(tmp_path: Path, level: int) -> None:
    directory = tmp_path / "node"
    made = tsfnode("init", directory, "--name", "CHU Parakou", "--port", "0")
    assert made.returncode == 0, made.stderr
    database = directory / "node.db"
    meta = sqlite3.connect(database).execute("SELECT key, value FROM meta").fetchall()
    database.unlink()
    con = at_level(database, level)
    con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta)
    con.execute(
        "INSERT INTO accounts (username, display_name, role, password_hash, language,"
        " created_ms) VALUES ('admin', 'IT', 'admin', ?, 'fr', 1)",
        (hash_password(PASSWORD),),
    )
    con.commit()
    con.close()
    with RunningNode(directory) as node:
        status, url, page = Browser(node.url).sign_in("admin", PASSWORD)
        assert status == 200, page[:300]
        assert "/web/login" not in url
    con = sqlite3.connect(database)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.close()
