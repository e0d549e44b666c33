"""Ensembles and sweeps: a scenario run over several seeds, and over a grid of values of
its keys, each figure given as its mean over the seeds with a 95% interval.

    python -m simulations run S --seeds 1-20
    python -m simulations run S --seeds 1-10 --set readers.count=1,2,5,10 --set links.loss=0.01,0.05

``--set TABLE.KEY=V1,V2`` sets KEY in every entry of ``[[TABLE]]`` (``links`` is another
name for ``nodes``), ``--set KEY=V`` a top-level key; the grid is every combination of
the values. Runs are independent (each a ``CaseWorld`` with its seed) and spread over
worker processes; results are gathered in the order of the grid and the seeds, so the
output is the same bytes whatever the number of workers.

The interval is a percentile bootstrap of the mean over seeds (numpy, 10,000 resamples,
its own fixed seed): it says how well the seeds pin down the mean, not how much one run
varies (for that, the table gives the lowest and highest run).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import tomllib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulations.casesim import HOUR, CaseWorld
from simulations.report import (
    PNG_META,
    Window,
    case_rows,
    cdf,
    in_window,
    seeds_text,
    shade,
    summary,
    titled,
    waited_to_read_hours,
    write_cases_csv,
)
from simulations.scenario import Scenario, ScenarioError, parse_scenario

ALIASES = {"links": "nodes"}
RESAMPLES = 10_000

# (key in the table, what it is, how to read it from a run's summary)
FIGURES: tuple[tuple[str, str, Callable[[dict[str, Any]], float | None]], ...] = (
    ("cases", "cases sent", lambda f: f["cases"]),
    ("delivered", "cases delivered", lambda f: f["delivered"]),
    ("read", "cases read", lambda f: f["read"]),
    ("unread", "delivered, unread at the end", lambda f: f["unread"]),
    ("late", "cases late", lambda f: f["late"]),
    ("escalated", "cases escalated", lambda f: f["escalated"]),
    ("transit_median_h", "transit, median (h)", lambda f: f["transit_hours"]["median"]),
    ("transit_p90_h", "transit, 90% within (h)", lambda f: f["transit_hours"]["p90"]),
    (
        "reading_median_h",
        "reading delay, median (h)",
        lambda f: f["reading_delay_hours"]["median"],
    ),
    ("reading_p90_h", "reading delay, 90% within (h)", lambda f: f["reading_delay_hours"]["p90"]),
    (
        "turnaround_median_h",
        "turnaround, median (h)",
        lambda f: f["turnaround_hours"]["median"],
    ),
    ("turnaround_p90_h", "turnaround, 90% within (h)", lambda f: f["turnaround_hours"]["p90"]),
    ("chunk_failures", "chunks failed and sent again", lambda f: f["chunk_failures"]),
    ("relay_fallbacks", "mail left at a later relay", lambda f: f["relay_fallbacks"]),
    ("useful_share", "reports judged useful (share)", lambda f: f["useful_share"]),
)
PLOTTED = ("reading_median_h", "turnaround_median_h", "transit_median_h", "late", "unread")


def parse_seeds(text: str) -> list[int]:
    """``1-20``, ``1,4,9`` or ``3-5,9``: the seeds, in that order, without repeats."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            first, sep, last = part.strip().partition("-")
            span = range(int(first), int(last) + 1) if sep else [int(first)]
            seeds.extend(s for s in span if s not in seeds)
    except ValueError:
        raise ScenarioError(f"--seeds: {text!r} must be such as 1-20 or 1,4,9") from None
    if not seeds:
        raise ScenarioError(f"--seeds: {text!r} names no seed")
    return seeds


def _value(text: str) -> Any:
    """A TOML value (``2``, ``0.05``, ``true``, ``"x"``), or else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_set(text: str) -> tuple[str, list[Any]]:
    """``readers.count=1,2,5`` -> ("readers.count", [1, 2, 5])."""
    key, sep, values = text.partition("=")
    if not (sep and key.strip() and values.strip()):
        raise ScenarioError(f"--set: {text!r} must be such as readers.count=1,2,5")
    return key.strip(), [_value(v.strip()) for v in values.split(",")]


def with_values(data: dict[str, Any], point: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A copy of the scenario's TOML data with each ``key = value`` of ``point`` set."""
    data = copy.deepcopy(data)
    for key, value in point:
        table, sep, name = key.partition(".")
        table = ALIASES.get(table, table)
        if not sep:
            data[key] = value
        elif isinstance(data.get(table), list) and data[table]:
            for entry in data[table]:
                entry[name] = value
        elif isinstance(data.get(table), dict):
            data[table][name] = value
        else:
            raise ScenarioError(f"--set {key}: the scenario has no [[{table}]] nor [{table}]")
    return data


@dataclass(frozen=True)
class Job:
    """One run of an ensemble: the scenario's data with the point's values, a seed."""

    data: dict[str, Any]
    where: str
    point: tuple[tuple[str, Any], ...]
    seed: int
    window: Window | None
    cases: bool  # keep the per-case rows


def run_job(job: Job) -> dict[str, Any]:
    """One run (in a worker process): its summary, the values its plots need, and its
    cases if asked."""
    scenario = parse_scenario(with_values(job.data, job.point), job.where)
    world = CaseWorld(scenario, job.seed)
    outcome = world.run()
    cases = in_window(outcome.cases, job.window)
    return {
        "point": job.point,
        "seed": job.seed,
        "facts": summary(scenario, job.seed, outcome, job.window),
        "backlog": outcome.backlog,
        "series": {
            "transit": [c["transit_ms"] / HOUR for c in cases if c["transit_ms"] is not None],
            "reading delay": waited_to_read_hours(cases, outcome.end_ms),
            "turnaround": [
                c["turnaround_ms"] / HOUR for c in cases if c["turnaround_ms"] is not None
            ],
        },
        "rows": case_rows(cases) if job.cases else [],
    }


def interval(values: list[float], resamples: int = RESAMPLES) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the mean of ``values`` (fixed seed)."""
    import numpy as np

    if len(values) < 2:
        return values[0], values[0]
    data = np.asarray(values, dtype=float)
    picks = np.random.default_rng(0).integers(0, len(data), size=(resamples, len(data)))
    means = data[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def aggregate(values: list[float | None]) -> dict[str, Any]:
    """Mean, 95% interval, lowest and highest run, and how many runs had the figure."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return {"mean": None, "low": None, "high": None, "min": None, "max": None, "n": 0}
    low, high = interval(present)
    return {
        "mean": round(sum(present) / len(present), 2),
        "low": round(low, 2),
        "high": round(high, 2),
        "min": round(min(present), 2),
        "max": round(max(present), 2),
        "n": len(present),
    }


@dataclass
class Ensemble:
    scenario: Scenario  # as written, before any --set
    seeds: list[int]
    sets: list[tuple[str, list[Any]]]
    window: Window | None
    results: list[dict[str, Any]]  # in grid order, then seed order

    @property
    def points(self) -> list[tuple[tuple[str, Any], ...]]:
        return grid(self.sets)

    def runs_of(self, point: tuple[tuple[str, Any], ...]) -> list[dict[str, Any]]:
        return [r for r in self.results if r["point"] == point]

    def table(self) -> list[dict[str, Any]]:
        """One row per point of the grid: its values, then each figure over the seeds."""
        rows = []
        for point in self.points:
            runs = self.runs_of(point)
            row: dict[str, Any] = dict(point)
            row["seeds"] = len(runs)
            for key, _, read in FIGURES:
                row[key] = aggregate([read(r["facts"]) for r in runs])
            rows.append(row)
        return rows


def grid(sets: Sequence[tuple[str, list[Any]]]) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of the values of ``sets`` (one empty point without sets)."""
    keys = [k for k, _ in sets]
    return [
        tuple(zip(keys, combo, strict=True)) for combo in itertools.product(*(v for _, v in sets))
    ]


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_ensemble(
    data: dict[str, Any],
    where: str,
    seeds: list[int],
    sets: Sequence[tuple[str, list[Any]]] = (),
    *,
    window: Window | None = None,
    cases: bool = False,
    jobs: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> Ensemble:
    """Every point of the grid of ``sets`` with every seed, over ``jobs`` worker
    processes (1: in this process)."""
    scenario = parse_scenario(data, where)
    work = [Job(data, where, point, seed, window, cases) for point in grid(sets) for seed in seeds]
    for point in grid(sets):  # a wrong key or value is told before anything runs
        parse_scenario(with_values(data, point), where)
    jobs = jobs or default_jobs()
    results: list[dict[str, Any]] = []
    if jobs == 1 or len(work) == 1:
        for job in work:
            results.append(run_job(job))
            if progress is not None:
                progress(1)
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
            for result in pool.map(run_job, work):  # in the order of the work
                results.append(result)
                if progress is not None:
                    progress(1)
    return Ensemble(scenario, seeds, list(sets), window, results)


# --- what an ensemble writes -----------------------------------------------------------


def _cell(v: Any) -> str:
    return "" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def flat_table(ensemble: Ensemble) -> tuple[list[str], list[list[str]]]:
    """The table as CSV columns: the swept keys, seeds, then mean, low and high (the
    95% interval), min and max of each figure."""
    keys = [k for k, _ in ensemble.sets]
    header = [*keys, "seeds"]
    for key, _, _ in FIGURES:
        header += [f"{key}_mean", f"{key}_low", f"{key}_high", f"{key}_min", f"{key}_max"]
    body = []
    for row in ensemble.table():
        line = [_cell(row[k]) for k in keys] + [str(row["seeds"])]
        for key, _, _ in FIGURES:
            a = row[key]
            line += [
                _cell(a["mean"]),
                _cell(a["low"]),
                _cell(a["high"]),
                _cell(a["min"]),
                _cell(a["max"]),
            ]
        body.append(line)
    return header, body


def printed_table(ensemble: Ensemble, figures: Iterable[str] = PLOTTED) -> str:
    """The main figures as aligned text: ``mean [low, high]`` for each point."""
    keys = [k for k, _ in ensemble.sets]
    labels = {k: label for k, label, _ in FIGURES}
    chosen = [f for f in ("cases", *figures)]
    header = [*keys, *(labels[f] for f in chosen)]
    lines = []
    for row in ensemble.table():
        cells = [_cell(row[k]) for k in keys]
        for f in chosen:
            a = row[f]
            cells.append(
                "-" if a["mean"] is None else f"{a['mean']:g} [{a['low']:g}, {a['high']:g}]"
            )
        lines.append(cells)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(s.rstrip() for s in out)


def write_ensemble(ensemble: Ensemble, out: Path, cases_csv: Path | None = None) -> str:
    """summary.json, table.csv, report.md and the plots; the printed table is returned."""
    import csv

    out.mkdir(parents=True, exist_ok=True)
    seeds = seeds_text(ensemble.seeds)
    facts = {
        "scenario": ensemble.scenario.name,
        "seeds": ensemble.seeds,
        "sets": dict(ensemble.sets),
        "window": None if ensemble.window is None else ensemble.window.text,
        "interval": "95% percentile bootstrap of the mean over seeds",
        "points": ensemble.table(),
    }
    (out / "summary.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    header, body = flat_table(ensemble)
    with (out / "table.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(body)
    names = ensemble_plots(ensemble, out)
    printed = printed_table(ensemble)
    window = f" Figures for the cases sent {ensemble.window.text}." if ensemble.window else ""
    sweep = "; ".join(f"{k} = {', '.join(map(_cell, v))}" for k, v in ensemble.sets)
    lines = [
        f"# Simulation: {ensemble.scenario.name}, {seeds}",
        "",
        f"{len(ensemble.seeds)} seeds per point" + (f"; swept: {sweep}" if sweep else "") + "."
        f"{window} Each figure: mean over the seeds [95% interval of the mean, percentile "
        "bootstrap]. All figures, with the lowest and highest run: table.csv.",
        "",
        "```",
        printed,
        "```",
        "",
        "Reports their sender judged useful (the 2008 pilot: 80%):",
        "",
        "```",
        printed_table(ensemble, ("useful_share",)),
        "```",
        "",
        *(f"![{p}]({p})" for p in names),
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    if cases_csv is not None:
        keys = tuple(k for k, _ in ensemble.sets)
        rows = [
            {"seed": r["seed"], **dict(r["point"]), **row}
            for r in ensemble.results
            for row in r["rows"]
        ]
        write_cases_csv(cases_csv, rows, ("seed", *keys))
    return printed


def ensemble_plots(ensemble: Ensemble, out: Path) -> list[str]:
    """Without a sweep: backlog.png and turnaround.png (CDFs), the mean over the seeds
    with its 95% interval shaded. With one: sweep_FIGURE_by_KEY.png, each main figure
    against each swept value (one line for each combination of the other swept
    values), the interval shaded. Every plot names the scenario and the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names: list[str] = []
    scenario, seeds = ensemble.scenario, seeds_text(ensemble.seeds)

    def save(figure: Any, name: str) -> None:
        figure.savefig(out / name, dpi=100, bbox_inches="tight", metadata=PNG_META)
        plt.close(figure)
        names.append(name)

    def band(axes: Any, x: Any, per_seed: list[Any], label: str) -> None:
        """The mean of ``per_seed`` curves over ``x``, with its interval shaded."""
        curves = np.asarray(per_seed, dtype=float)
        bounds = np.array([interval(list(col), 2_000) for col in curves.T])
        (line,) = axes.plot(x, curves.mean(axis=0), label=label)
        axes.fill_between(x, bounds[:, 0], bounds[:, 1], color=line.get_color(), alpha=0.25, lw=0)

    with plt.rc_context({"font.size": 9}):
        if not ensemble.sets:
            runs = ensemble.results
            figure, axes = plt.subplots(figsize=(6, 3))
            days = [b[0] for b in runs[0]["backlog"]]
            shade(axes, scenario)
            band(axes, days, [[b[1] for b in r["backlog"]] for r in runs], "on their way")
            band(axes, days, [[b[2] for b in r["backlog"]] for r in runs], "waiting for a reader")
            axes.set_xlabel("day")
            axes.set_ylabel("cases")
            titled(axes, "Backlog (mean, 95% interval shaded)", scenario, seeds)
            axes.legend(frameon=False)
            save(figure, "backlog.png")
            figure, axes = plt.subplots(figsize=(6, 3))
            for label in ("transit", "reading delay", "turnaround"):
                every = [r["series"][label] for r in runs]
                if not all(every):
                    continue
                top = max(max(v) for v in every)
                x = np.linspace(0, top, 200)
                per_seed = []
                for values in every:
                    xs, ys = cdf(values)
                    per_seed.append(np.interp(x, xs, ys, left=0.0, right=1.0))
                band(axes, x, per_seed, label)
            axes.set_xlabel("hours")
            axes.set_ylabel("share of cases")
            axes.legend(frameon=False)
            titled(axes, "Transit, reading delay, turnaround (CDF)", scenario, seeds)
            save(figure, "turnaround.png")
            return names
        table = ensemble.table()
        labels = {k: label for k, label, _ in FIGURES}
        for key, values in ensemble.sets:
            others = [k for k, _ in ensemble.sets if k != key]
            numeric = all(isinstance(v, int | float) for v in values)
            for figure_key in PLOTTED:
                figure, axes = plt.subplots(figsize=(6, 3))
                series: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
                for row in table:
                    series.setdefault(tuple(row[k] for k in others), []).append(row)
                for rest, rows in series.items():
                    positions = [row[key] if numeric else str(row[key]) for row in rows]
                    cells = [row[figure_key] for row in rows]
                    keep = [i for i, c in enumerate(cells) if c["mean"] is not None]
                    if not keep:
                        continue
                    at: list[Any] = [positions[i] for i in keep]
                    label = ", ".join(f"{k}={_cell(v)}" for k, v in zip(others, rest, strict=True))
                    (line,) = axes.plot(
                        at, [cells[i]["mean"] for i in keep], marker="o", label=label or None
                    )
                    axes.fill_between(
                        at,
                        [cells[i]["low"] for i in keep],
                        [cells[i]["high"] for i in keep],
                        color=line.get_color(),
                        alpha=0.25,
                        lw=0,
                    )
                axes.set_xlabel(key)
                axes.set_ylabel(labels[figure_key])
                if others:
                    axes.legend(frameon=False, fontsize=7)
                titled(axes, f"{labels[figure_key]} by {key}", scenario, seeds)
                safe = key.replace(".", "_").replace("/", "_")
                save(figure, f"sweep_{figure_key}_by_{safe}.png")
    return names
