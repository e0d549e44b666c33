"""What a run gives an operator: a JSON summary, a Markdown report and PNG plots (the
same seed gives the same bytes)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from simulations.casesim import HOUR, Outcome
from simulations.directorysim import Spread
from simulations.scenario import Scenario

PNG_META = {"Software": None}  # no version string: the same bytes for the same run


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None, "max": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {
        "median": round(statistics.median(ordered), 2),
        "p90": round(p90, 2),
        "max": round(ordered[-1], 2),
    }


def summary(scenario: Scenario, seed: int, outcome: Outcome) -> dict[str, Any]:
    cases = outcome.cases
    transit = [c["transit_ms"] / HOUR for c in cases if c["transit_ms"] is not None]
    turnaround = [c["turnaround_ms"] / HOUR for c in cases if c["turnaround_ms"] is not None]
    by_kind: dict[str, list[float]] = {}
    for c in cases:
        if c["transit_ms"] is not None:
            by_kind.setdefault(c["kind"], []).append(c["transit_ms"] / HOUR)
    return {
        "scenario": scenario.name,
        "seed": seed,
        "days": scenario.days,
        "nodes": len(scenario.nodes),
        "senders": len(scenario.senders),
        "readers": len(scenario.readers),
        "cases": len(cases),
        "delivered": len(transit),
        "reports_back": len(turnaround),
        "overdue": sum(1 for c in cases if c["overdue"]),
        "escalated": sum(1 for c in cases if c["escalations"]),
        "over_quota": sum(1 for c in cases if c["over_quota"]),
        "transit_hours": _quantiles(transit),
        "turnaround_hours": _quantiles(turnaround),
        "transit_hours_by_study": {k: _quantiles(v) for k, v in sorted(by_kind.items())},
        "chunk_failures": outcome.chunk_failures,
        "chunks_lost": outcome.chunks_lost,
        "relay_full_waits": outcome.relay_full_waits,
        "pairs": _pairs(cases),
        "link_mb": {
            n: {"sent": round(s / 1e6, 1), "received": round(r / 1e6, 1)}
            for n, (s, r) in outcome.link_bytes.items()
            if s or r
        },
        "backlog_max": {
            "in_transit": max((b[1] for b in outcome.backlog), default=0),
            "unread": max((b[2] for b in outcome.backlog), default=0),
        },
    }


def _pairs(cases: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per pair (a sender's node and their reader, or group): cases, those sent beyond
    the weekly quota, those read after their due time."""
    out: dict[str, dict[str, int]] = {}
    for c in cases:
        row = out.setdefault(c["pair"], {"cases": 0, "over_quota": 0, "overdue": 0})
        row["cases"] += 1
        row["over_quota"] += int(c["over_quota"])
        row["overdue"] += int(c["overdue"])
    return dict(sorted(out.items()))


def _troubled(facts: dict[str, Any]) -> list[tuple[str, dict[str, int]]]:
    """The pairs with cases over quota or overdue, most first (at most 15)."""
    rows = [(k, v) for k, v in facts["pairs"].items() if v["over_quota"] or v["overdue"]]
    return sorted(rows, key=lambda kv: (-(kv[1]["over_quota"] + kv[1]["overdue"]), kv[0]))[:15]


def markdown(scenario: Scenario, facts: dict[str, Any], plots: list[str]) -> str:
    def hours(q: dict[str, float | None]) -> str:
        if q["median"] is None:
            return "none arrived"
        return f"median {q['median']} h, 90% within {q['p90']} h, longest {q['max']} h"

    lines = [
        f"# Simulation: {scenario.name}",
        "",
        f"{facts['nodes']} nodes, {facts['senders']} senders, {facts['readers']} readers, "
        f"{scenario.days:g} days, seed {facts['seed']}.",
        "",
        "## Cases",
        "",
        f"- {facts['cases']} cases sent; {facts['delivered']} delivered; "
        f"{facts['reports_back']} reports back; {facts['escalated']} taken from a late reader "
        f"and given to another; {facts['overdue']} read after their due time; "
        f"{facts['over_quota']} sent beyond their pair's weekly quota (the reader accepted).",
        f"- Transit (sent to delivered): {hours(facts['transit_hours'])}.",
        f"- Turnaround (sent to report back): {hours(facts['turnaround_hours'])}.",
        "",
        "| study | transit, median (h) | 90% within (h) |",
        "|---|---|---|",
        *(
            f"| {kind} | {q['median']} | {q['p90']} |"
            for kind, q in facts["transit_hours_by_study"].items()
        ),
        "",
        *_pair_lines(facts),
        *_directory_lines(facts),
        "## Links",
        "",
        f"- Chunks lost to cuts and power failures, and sent again: {facts['chunk_failures']}; "
        f"lost on the line (loss) and sent again: {facts['chunks_lost']}.",
        f"- Deposits that waited for room at a full relay: {facts['relay_full_waits']}.",
        f"- Most cases waiting at once: {facts['backlog_max']['in_transit']} on their way, "
        f"{facts['backlog_max']['unread']} waiting for a reader.",
        "",
        *(f"![{p}]({p})" for p in plots),
        "",
    ]
    if scenario.cuts:
        lines[4:4] = [
            "Cuts: "
            + "; ".join(
                f"{len(c.nodes)} nodes cut off from day {c.start_day:g} for {c.days:g} days"
                for c in scenario.cuts
            ),
            "",
        ]
    return "\n".join(lines)


def _pair_lines(facts: dict[str, Any]) -> list[str]:
    troubled = _troubled(facts)
    if not troubled:
        return ["No pair went beyond its weekly quota, and no case was read late.", ""]
    return [
        "## Pairs over quota or overdue",
        "",
        "| pair | cases | over quota | read late |",
        "|---|---|---|---|",
        *(f"| {k} | {v['cases']} | {v['over_quota']} | {v['overdue']} |" for k, v in troubled),
        "",
    ]


def _directory_lines(facts: dict[str, Any]) -> list[str]:
    reached = facts.get("directory_change_hours_to")
    if reached is None:
        return []

    def when(v: float | None) -> str:
        return "not within the run" if v is None else f"{v} h"

    return [
        "## Directory",
        "",
        "A change (such as a revoked reader) made at one node reached half the nodes in "
        f"{when(reached['50%'])}, 99% in {when(reached['99%'])}, 99.99% in "
        f"{when(reached['99.99%'])}.",
        "",
    ]


def plots(outcome: Outcome, out: Path, directory: Spread | None = None) -> list[str]:
    """turnaround.png (transit and turnaround distributions), backlog.png, links.png
    (the busiest nodes' traffic), pairs.png (the pairs with cases over quota or read
    late, when there are) and directory.png (the share of nodes holding a change of the
    directory over time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []

    def save(figure: Any, name: str) -> None:
        figure.savefig(out / name, dpi=100, bbox_inches="tight", metadata=PNG_META)
        plt.close(figure)
        names.append(name)

    transit = [c["transit_ms"] / HOUR for c in outcome.cases if c["transit_ms"] is not None]
    turnaround = [
        c["turnaround_ms"] / HOUR for c in outcome.cases if c["turnaround_ms"] is not None
    ]
    with plt.rc_context({"font.size": 9}):
        figure, axes = plt.subplots(figsize=(6, 3))
        if transit or turnaround:
            axes.hist([transit, turnaround], bins=30, label=["transit", "turnaround"])
            axes.legend(frameon=False)
        axes.set_xlabel("hours")
        axes.set_ylabel("cases")
        axes.set_title("Transit and turnaround", loc="left")
        save(figure, "turnaround.png")
        figure, axes = plt.subplots(figsize=(6, 3))
        days = [b[0] for b in outcome.backlog]
        axes.plot(days, [b[1] for b in outcome.backlog], label="on their way")
        axes.plot(days, [b[2] for b in outcome.backlog], label="waiting for a reader")
        axes.set_xlabel("day")
        axes.set_ylabel("cases")
        axes.set_title("Backlog", loc="left")
        axes.legend(frameon=False)
        save(figure, "backlog.png")
        busiest = sorted(outcome.link_bytes.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[:15]
        if busiest:
            figure, axes = plt.subplots(figsize=(6, 0.6 + 0.25 * len(busiest)))
            labels = [name for name, _ in reversed(busiest)]
            axes.barh(labels, [b[1][0] / 1e6 for b in reversed(busiest)], label="sent")
            axes.barh(
                labels,
                [b[1][1] / 1e6 for b in reversed(busiest)],
                left=[b[1][0] / 1e6 for b in reversed(busiest)],
                label="received",
            )
            axes.set_xlabel("MB")
            axes.set_title("Link use, the busiest nodes", loc="left")
            axes.legend(frameon=False)
            save(figure, "links.png")
        troubled = _troubled({"pairs": _pairs(outcome.cases)})
        if troubled:
            figure, axes = plt.subplots(figsize=(6, 0.6 + 0.25 * len(troubled)))
            labels = [name for name, _ in reversed(troubled)]
            over = [v["over_quota"] for _, v in reversed(troubled)]
            axes.barh(labels, over, label="over the weekly quota")
            axes.barh(labels, [v["overdue"] for _, v in reversed(troubled)], left=over,
                      label="read after the due time")  # fmt: skip
            axes.set_xlabel("cases")
            axes.set_title("Pairs over quota or overdue", loc="left")
            axes.legend(frameon=False)
            save(figure, "pairs.png")
        if directory is not None and directory.points:
            figure, axes = plt.subplots(figsize=(6, 3))
            axes.step(
                [t / 3600 for t, _ in directory.points],
                [100 * s for _, s in directory.points],
                where="post",
            )
            axes.set_xlabel("hours after the change")
            axes.set_ylabel("% of nodes holding it")
            axes.set_title("A change of the directory spreading", loc="left")
            save(figure, "directory.png")
    return names


def write(
    scenario: Scenario, seed: int, outcome: Outcome, out: Path, directory: Spread | None = None
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    facts = summary(scenario, seed, outcome)
    if directory is not None:
        facts["directory_change_hours_to"] = {
            k: None if v is None else round(v / 3600, 2) for k, v in directory.seconds_to.items()
        }
    (out / "summary.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    names = plots(outcome, out, directory)
    (out / "report.md").write_text(markdown(scenario, facts, names))
    return facts
