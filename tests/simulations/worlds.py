"""Scenarios the simulator's tests share: one reading node in Europe, hospitals in Africa."""

from __future__ import annotations

from typing import Any


def europe_africa(hospitals: int, up_kbit: int, down_kbit: int) -> dict[str, Any]:
    """The network of every test scenario: Erasme (Brussels) and ``hospitals`` nodes
    H-1.. in Africa on links of the given rates, 120 ms apart."""
    return {
        "latency_ms": {"europe/africa": 120},
        "nodes": [
            {"name": "Erasme", "region": "europe", "up_kbit": 20000, "down_kbit": 20000},
            {"name": "H-{i}", "count": hospitals, "region": "africa",
             "up_kbit": up_kbit, "down_kbit": down_kbit},
        ],
    }  # fmt: skip


def pooled(
    name: str,
    *,
    days: int,
    seed: int,
    hospitals: int,
    readers: int,
    cases_per_week: float,
    cases_per_session: int,
) -> dict[str, Any]:
    """A group pool: ``readers`` readers at Erasme reading evenings, 3 sessions a week,
    one sender per hospital sending photos to the group."""
    return {
        "name": name, "days": days, "seed": seed,
        **europe_africa(hospitals, 1024, 2048),
        "readers": [
            {"name": "R-{i}", "count": readers, "node": "Erasme", "group": "g", "hours": [18, 23],
             "cases_per_session": cases_per_session, "sessions_per_week": 3},
        ],
        "groups": [{"name": "g", "routing": "pool"}],
        "senders": [{"node": "H-{i}", "count": hospitals, "cases_per_week": cases_per_week,
                     "group": "g"}],
        "studies": [{"kind": "photo", "weight": 1, "mb": [0.5, 2]}],
    }  # fmt: skip
