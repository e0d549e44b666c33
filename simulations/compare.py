"""``python -m simulations compare S --metrics node-metrics.json [--seeds 1-20]``: the
scenario simulated over the seeds, its figures beside those a node measured (``tsfnode
scenario DIR --metrics FILE`` writes them), and whether each measured value lies where
95% of the simulated runs fall.

The metrics file is JSON::

    {"cases": 8,
     "transit_hours": {"median": 0.02, "p90": 0.05},
     "turnaround_hours": {"median": 3.1, "p90": 6.0}}

The interval a measured value is checked against is the 2.5th to 97.5th percentile of
the runs (where one run, as one real network is, falls 95% of the time), not the
interval of the mean (which narrows with more seeds); both are printed, and each
figure says "in interval: yes" or "no". The command exits 1 when a measured figure lies
outside (0 when all that can be compared lie inside); ``--json`` prints the rows as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from simulations.scenario import ScenarioError

# (key in the metrics file, quantile, what it is, how to read it from a run's summary)
COMPARED = (
    ("transit_hours", "median", "transit, median (h)"),
    ("transit_hours", "p90", "transit, 90% within (h)"),
    ("turnaround_hours", "median", "turnaround, median (h)"),
    ("turnaround_hours", "p90", "turnaround, 90% within (h)"),
)


def load_metrics(path: Path) -> dict[str, Any]:
    """The measured figures; a missing or wrong one is named."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError:
        raise ScenarioError(f"--metrics: cannot read {path}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"--metrics: {path} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"--metrics: {path} must hold an object")
    for key, quantile, _ in COMPARED:
        value = data.get(key, {}).get(quantile) if isinstance(data.get(key), dict) else None
        if value is not None and not isinstance(value, int | float):
            raise ScenarioError(f"--metrics: {path}: '{key}.{quantile}' must be a number")
    if not any(isinstance(data.get(k), dict) for k, _, _ in COMPARED):
        raise ScenarioError(f"--metrics: {path} has no 'transit_hours' nor 'turnaround_hours'")
    return data


def compare(runs: list[dict[str, Any]], measured: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure: the measured value, the simulated mean with its 95% interval
    (of the mean), the runs' 95% range, and whether the measured value is in that range
    (None when either side has no value)."""
    from simulations.ensemble import aggregate, interval
    from simulations.report import significant

    rows = []
    for key, quantile, label in COMPARED:
        values = [r[key][quantile] for r in runs if r[key][quantile] is not None]
        mine = measured.get(key, {}).get(quantile) if isinstance(measured.get(key), dict) else None
        row: dict[str, Any] = {"figure": label, "measured": mine, **aggregate(list(values))}
        if values:  # to 4 significant digits: a test network's cases take seconds
            low, high = interval([float(v) for v in values])
            row.update(mean=significant(sum(values) / len(values)), low=significant(low),
                       high=significant(high), min=significant(min(values)),
                       max=significant(max(values)))  # fmt: skip
        if values:
            low, high = np.percentile(np.asarray(values, dtype=float), [2.5, 97.5])
            row["runs_low"], row["runs_high"] = significant(float(low)), significant(float(high))
        else:
            row["runs_low"] = row["runs_high"] = None
        row["inside"] = (
            None
            if mine is None or row["runs_low"] is None
            else row["runs_low"] <= mine <= row["runs_high"]
        )
        rows.append(row)
    return rows


def outside(rows: list[dict[str, Any]]) -> bool:
    """Whether a measured figure lies outside the runs' 95% range."""
    return any(r["inside"] is False for r in rows)


def as_json(rows: list[dict[str, Any]], seeds: int) -> str:
    return json.dumps({"seeds": seeds, "rows": rows, "outside": outside(rows)}, indent=2) + "\n"


def text(rows: list[dict[str, Any]], seeds: int) -> str:
    """The comparison as a table an operator reads."""
    head = ("figure", "measured", f"simulated, mean [95% of the mean] ({seeds} seeds)",
            "95% of the runs", "in interval")  # fmt: skip

    def cell(row: dict[str, Any]) -> tuple[str, ...]:
        def num(v: Any) -> str:
            return "-" if v is None else f"{v:g}"

        inside = {None: "-", True: "yes", False: "no"}[row["inside"]]
        return (
            row["figure"],
            num(row["measured"]),
            f"{num(row['mean'])} [{num(row['low'])}, {num(row['high'])}]",
            f"{num(row['runs_low'])} to {num(row['runs_high'])}",
            inside,
        )

    table = [head, *(cell(r) for r in rows)]
    widths = [max(len(line[k]) for line in table) for k in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in table
    )
