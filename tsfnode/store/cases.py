"""The cases table, as rows and as the protocol's ``Case``: what the case service and
the pages read and write.

Rows still travel as dicts here; typed repositories are to come (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from typing import Any

from protocol.cases import Case, Routing, State


async def fetch_dicts(db: Any, query: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows as dicts by column name."""
    cursor = await db.execute(query, args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in await cursor.fetchall()]


def _keys(blob: bytes) -> frozenset[bytes]:
    return frozenset(blob[i : i + 32] for i in range(0, len(blob), 32))


def case_from_row(row: Any) -> Case:
    return Case(
        case_id=bytes(row["case_id"]),
        sender=bytes(row["sender"]),
        routing=Routing(row["routing"]),
        target=bytes(row["target"]),
        delay_ms=int(row["delay_ms"]),
        state=State(row["state"]),
        reader=None if row["reader"] is None else bytes(row["reader"]),
        submitted_ms=row["submitted_ms"],
        delivered_ms=row["delivered_ms"],
        due_ms=row["due_ms"],
        reported_ms=row["reported_ms"],
        report_back_ms=row["report_back_ms"],
        closed_ms=row["closed_ms"],
        escalations=int(row["escalations"]),
        needs_acceptance=bool(row["needs_acceptance"]),
        passed_over=_keys(bytes(row["passed_over"])),
        decisions=int(row["decisions"]),
    )


def case_fields(case: Case) -> dict[str, Any]:
    return {
        "state": case.state.value,
        "reader": case.reader,
        "submitted_ms": case.submitted_ms,
        "delivered_ms": case.delivered_ms,
        "due_ms": case.due_ms,
        "reported_ms": case.reported_ms,
        "report_back_ms": case.report_back_ms,
        "closed_ms": case.closed_ms,
        "escalations": case.escalations,
        "needs_acceptance": int(case.needs_acceptance),
        "passed_over": b"".join(sorted(case.passed_over)),
        "decisions": case.decisions,
    }


def row_with(row: dict[str, Any], case: Case) -> dict[str, Any]:
    return {**row, **case_fields(case)}
