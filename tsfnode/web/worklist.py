"""Lists of cases that sort and filter on the server, by the page's query, so that they
work without JavaScript and every link keeps the choice: the reader's worklist, the
sender's "my cases" and the coordinator's cases to follow.

    /web/cases?state=delivered&urgency=urgent&modality=CT&group=...&sort=due

Each row is a dict with ``state``, ``urgent``, ``overdue``, ``due_ms``, ``submitted_ms``,
``modality`` and ``group_name``. A filter's choices are the values the rows have; an
unknown sort or filter name is refused (400) with the name of what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tsfnode.i18n import N_, Texts

FILTERS = ("state", "urgency", "modality", "group")
LATEST = 2**62  # no due time yet: after every due time

Row = dict[str, Any]
SORTS: dict[str, tuple[str, Callable[[Row], Any]]] = {
    # first what to read first: taken or waiting, overdue, urgent, nearest due
    "priority": (
        N_("list_sort_priority"),
        lambda r: (
            r["state"] not in ("delivered", "assigned"),
            not r["overdue"],
            not r["urgent"],
            r["due_ms"] or LATEST,
        ),
    ),
    "due": (N_("list_sort_due"), lambda r: (r["due_ms"] or LATEST, not r["urgent"])),
    "submitted": (N_("list_sort_submitted"), lambda r: -(r["submitted_ms"] or 0)),
    "urgency": (
        N_("list_sort_urgency"),
        lambda r: (not r["urgent"], not r["overdue"], r["due_ms"] or LATEST),
    ),
    "state": (N_("list_sort_state"), lambda r: (r["state"], r["due_ms"] or LATEST)),
    "modality": (N_("list_sort_modality"), lambda r: (r["modality"], r["due_ms"] or LATEST)),
    "group": (N_("list_sort_group"), lambda r: (r["group_name"], r["due_ms"] or LATEST)),
}


def _value(row: Row, name: str) -> str:
    if name == "urgency":
        return "urgent" if row["urgent"] else "routine"
    if name == "group":
        return str(row["group_name"])
    return str(row[name])


@dataclass(frozen=True)
class ListChoice:
    """The sort and the filters a person chose (by the page's query)."""

    sort: str = "priority"
    filters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, query: Mapping[str, str], _: Texts, default: str = "priority") -> ListChoice:
        """The choice the query says; an unknown sort refused in the person's language."""
        sort = query.get("sort") or default
        if sort not in SORTS:
            raise web.HTTPBadRequest(
                text=_("list_bad_sort", sort=sort[:40], choices=", ".join(SORTS))
            )
        return cls(sort, {k: query[k] for k in FILTERS if query.get(k)})

    def query(self, **changes: str) -> str:
        """This choice's query string, ``changes`` made (an empty value: not filtered)."""
        values = {"sort": self.sort, **self.filters, **changes}
        return urlencode({k: v for k, v in values.items() if v})

    def arrange(self, rows: list[Row]) -> list[Row]:
        """The rows the filters keep, in the chosen order."""
        kept = [r for r in rows if all(_value(r, k) == v for k, v in self.filters.items())]
        return sorted(kept, key=SORTS[self.sort][1])

    def controls(self, rows: list[Row]) -> dict[str, Any]:
        """What the template shows: the choices of each filter (the values the rows
        have, the chosen one kept), the orders, the chosen ones."""
        choices = {}
        for name in FILTERS:
            values = {_value(r, name) for r in rows}
            if name in self.filters:
                values.add(self.filters[name])
            choices[name] = sorted(values)
        return {
            "choices": choices,
            "sorts": [(key, label) for key, (label, _) in SORTS.items()],
            "chosen": self,
            "filtered": bool(self.filters),
        }
