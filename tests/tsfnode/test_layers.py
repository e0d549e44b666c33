"""SQL lives in tsfnode/store/ only: every other module of the node asks a repository
(store/cases.py, pairs.py, audit.py, transfers.py...) and gets frozen dataclasses back.

Read from the source (Python's own parser), so a query hidden in an f-string or in a
string built over several lines is found as well as a call to ``execute``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tsfnode

NODE = Path(tsfnode.__path__[0])
STORE = NODE / "store"
SQL_START = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE)\s")
EXECUTE = frozenset({"execute", "executemany", "executescript"})


def _text_start(node: ast.expr) -> str | None:
    """The literal text a string expression starts with (None: not a string)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        first = node.values[0] if node.values else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
        return ""
    return None


def sql_in(source: str) -> list[int]:
    """The lines of ``source`` that call ``execute`` (or its kin) or hold a string that
    starts as an SQL statement."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in EXECUTE
        ):
            found.append(node.lineno)
        elif isinstance(node, ast.Constant | ast.JoinedStr):
            text = _text_start(node)
            if text is not None and SQL_START.match(text):
                found.append(node.lineno)
    return sorted(set(found))


def _sql_by_module(root: Path) -> dict[str, list[int]]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        lines = sql_in(path.read_text("utf-8"))
        if lines:
            out[path.relative_to(NODE).as_posix()] = lines
    return out


def test_the_detector_finds_calls_and_statements_in_every_form() -> None:
    source = '''
db.execute("PRAGMA user_version")
conn.executemany(query, rows)
q = "SELECT a FROM t"
r = (
    "  INSERT INTO t (a)"
    " VALUES (?)"
)
s = f"UPDATE cases SET {names} WHERE case_id = ?"
t = """
    DELETE FROM t"""
fine = "Select a study to send"
also_fine = f"{x} SELECT"
'''
    assert sql_in(source) == [2, 3, 4, 6, 9, 10]


def test_the_store_is_where_sql_is() -> None:
    found = _sql_by_module(STORE)
    for module in (
        "store/cases.py",
        "store/pairs.py",
        "store/audit.py",
        "store/transfers.py",
        "store/accounts.py",
        "store/destinations.py",
    ):
        assert module in found, module


def test_no_module_outside_the_store_holds_sql() -> None:
    found = {
        module: lines
        for module, lines in _sql_by_module(NODE).items()
        if not module.startswith("store/")
    }
    assert found == {}, f"SQL outside tsfnode/store/ (module: lines): {found}"
