"""SPEC.md's tables of kinds are the code's tables."""

from __future__ import annotations

import re
from pathlib import Path

from protocol.documents import DIRECTORY_KINDS, DOCUMENT_KINDS
from protocol.kinds import ENVELOPE_KINDS

SPEC = (Path(__file__).parents[2] / "protocol" / "SPEC.md").read_text(encoding="utf-8")


def table_after(marker: str) -> list[list[str]]:
    lines = SPEC.split(marker, 1)[1].strip().splitlines()
    rows = []
    for line in lines[3:]:  # the rest of the marker line, the header, the rule
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_envelope_kinds_table() -> None:
    rows = table_after("<!-- kinds-table")
    expected = [
        [str(k.code), k.name, str(k.max_payload), "yes" if k.encrypted else "no"]
        for k in ENVELOPE_KINDS
    ]
    assert [r[:4] for r in rows] == expected
    for row, kind in zip(rows, ENVELOPE_KINDS, strict=True):
        assert set(re.findall(r"(\w+):", row[4])) == set(kind.schema.fields)


def test_document_kinds_table() -> None:
    rows = table_after("<!-- documents-table")
    assert rows == [[str(k.code), k.name, str(k.max_body), k.signer] for k in DOCUMENT_KINDS]


RECORD_FIELDS = {"network", "version", "created", "expires"}  # §8.1, common to all records


def test_every_document_field_is_specified() -> None:
    assert all(f"`{field}" in SPEC.split("### 8.1", 1)[1][:400] for field in RECORD_FIELDS)
    for kind in DOCUMENT_KINDS:
        section = SPEC.split(f"- **{kind.name}**:", 1)[1].split("\n- **", 1)[0]
        common = RECORD_FIELDS if kind in DIRECTORY_KINDS else set()
        for field in set(kind.schema.fields) - common:
            assert f"`{field}" in section or f"{field}`" in section, (kind.name, field)
