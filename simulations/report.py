"""What a run gives an operator: a JSON summary, a Markdown report, PNG plots and, on
request, a CSV of every case (the same seed gives the same bytes). Figures can be taken
for a window: the cases sent in it."""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulations.bandwidth import background_kbit_s
from simulations.casesim import DAY, HOUR, CaseWorld, Outcome
from simulations.directorysim import Spread
from simulations.scenario import NodeSpec, Scenario, ScenarioError, parse_day

PNG_META = {"Software": None}  # no version string: the same bytes for the same run


def significant(value: float) -> float:
    """``value`` to 4 significant digits: hours read as well for a case of a few seconds
    (a test's network, to compare with) as for one of days."""
    return float(f"{value:.4g}")


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None, "max": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {
        "median": significant(statistics.median(ordered)),
        "p90": significant(p90),
        "max": significant(ordered[-1]),
    }


@dataclass(frozen=True)
class Window:
    """Days [start, end) of the run: figures are taken over the cases sent in it."""

    start_day: float
    end_day: float

    @classmethod
    def parse(cls, text: str) -> Window:
        """``day20-day30``."""
        first, sep, last = text.partition("-")
        if not sep:
            raise ScenarioError(f"--window: {text!r} must be such as day20-day30")
        start, end = parse_day(first, "--window", "from"), parse_day(last, "--window", "to")
        if end <= start:
            raise ScenarioError(f"--window: {text!r} must end after it starts")
        return cls(start, end)

    def holds(self, case: dict[str, Any]) -> bool:
        submitted: int = case["submitted_ms"]
        return self.start_day * DAY <= submitted < self.end_day * DAY

    @property
    def text(self) -> str:
        return f"day{self.start_day:g}-day{self.end_day:g}"


def in_window(cases: list[dict[str, Any]], window: Window | None) -> list[dict[str, Any]]:
    return cases if window is None else [c for c in cases if window.holds(c)]


def waited_to_read_hours(cases: list[dict[str, Any]], end_ms: int) -> list[float]:
    """Hours from delivery to the report being signed, for every delivered case; a case
    still unread at the end counts with what it had waited by then (a lower bound)."""
    return [
        ((c["reported_ms"] if c["reported_ms"] is not None else end_ms) - c["delivered_ms"]) / HOUR
        for c in cases
        if c["delivered_ms"] is not None
    ]


def summary(
    scenario: Scenario, seed: int, outcome: Outcome, window: Window | None = None
) -> dict[str, Any]:
    cases = in_window(outcome.cases, window)
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
        "window": None if window is None else window.text,
        "reports_back": len(turnaround),
        "read": sum(1 for c in cases if c["reported_ms"] is not None),
        "unread": sum(
            1 for c in cases if c["delivered_ms"] is not None and c["reported_ms"] is None
        ),
        "late": sum(1 for c in cases if c["late"]),
        "escalated": sum(1 for c in cases if c["escalations"]),
        "over_quota": sum(1 for c in cases if c["over_quota"]),
        "transit_hours": _quantiles(transit),
        "turnaround_hours": _quantiles(turnaround),
        "reading_delay_hours": _quantiles(waited_to_read_hours(cases, outcome.end_ms)),
        "transit_hours_by_study": {k: _quantiles(v) for k, v in sorted(by_kind.items())},
        "chunk_failures": outcome.chunk_failures,
        "chunks_lost": outcome.chunks_lost,
        "relay_full_waits": outcome.relay_full_waits,
        "relay_fallbacks": outcome.relay_fallbacks,
        "pairs": _pairs(cases),
        "link_mb": {
            n: {"sent": round(s / 1e6, 1), "received": round(r / 1e6, 1)}
            for n, (s, r) in outcome.link_bytes.items()
            if s or r
        },
        "evaluated": sum(1 for c in cases if c["useful"] is not None),
        "useful_share": _share([c["useful"] for c in cases if c["useful"] is not None]),
        "background_kbit_s": _background(outcome.background_kbit_s),
        "cables": _cables(scenario, outcome),
        "link_use": _link_use(scenario, outcome),
        "backlog_max": {
            "in_transit": max((b[1] for b in outcome.backlog), default=0),
            "unread": max((b[2] for b in outcome.backlog), default=0),
        },
    }


def _share(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _background(per_node: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Gossip and liveness, kbit/s a node sends: median and most over the nodes, and
    each node's when there are at most 50."""
    if not per_node:
        return {}
    totals = [v["gossip"] + v["liveness"] for v in per_node.values()]
    out: dict[str, Any] = {
        "gossip_median": round(statistics.median(v["gossip"] for v in per_node.values()), 3),
        "liveness_median": round(statistics.median(v["liveness"] for v in per_node.values()), 3),
        "total_median": round(statistics.median(totals), 3),
        "total_max": round(max(totals), 3),
    }
    if len(per_node) <= 50:
        out["per_node"] = per_node
    return out


def _cables(scenario: Scenario, outcome: Outcome) -> dict[str, dict[str, float]]:
    """Per cable: its capacity, the most it carried in a day (a share of that day's
    capacity), and the MB it carried."""
    out = {}
    for cable in scenario.cables:
        per_day = outcome.cable_bytes.get(cable.name, [])
        use = [
            b * 8 / 1000 / 86_400 / (cable.capacity_kbit * cable.left(day + 0.5))
            for day, b in enumerate(per_day)
        ]
        out[cable.name] = {
            "capacity_kbit": cable.capacity_kbit,
            "peak_day_use": round(max(use, default=0.0), 4),
            "mb": round(sum(per_day) / 1e6, 1),
        }
    return out


BUSIEST = 4  # the nodes whose uplink use over time is plotted and written


def capacity_kbit(node: NodeSpec, hour: int) -> int:
    """What ``node``'s uplink may carry in hour ``hour`` of the run: its line, or its
    daytime cap in the day's hours (taken at the middle of the hour)."""
    if node.day_up_kbit and node.day_hours[0] <= (hour % 24) + 0.5 < node.day_hours[1]:
        return min(node.up_kbit, node.day_up_kbit)
    return node.up_kbit


def busiest_uplinks(outcome: Outcome) -> list[str]:
    """The ``BUSIEST`` nodes that sent the most bytes (ties by name)."""
    sent = sorted((-s, n) for n, (s, _) in outcome.link_bytes.items() if n in outcome.link_use)
    return [n for total, n in sent[:BUSIEST] if total]


def link_use_rows(scenario: Scenario, outcome: Outcome) -> list[dict[str, Any]]:
    """Hour by hour, each busiest node's uplink: bytes sent, mean kbit/s, the capacity
    it had (kbit/s) and the share of it used."""
    nodes = {n.name: n for n in scenario.nodes}
    hours = -(-outcome.end_ms // HOUR)
    rows = []
    for name in busiest_uplinks(outcome):
        use = outcome.link_use[name]
        for hour in range(max(hours, max(use) + 1)):
            kbit_s = use[hour] * 8 / 1000 / 3600
            capacity = capacity_kbit(nodes[name], hour)
            rows.append({
                "node": name, "hour": hour, "bytes": use[hour], "kbit_s": round(kbit_s, 3),
                "capacity_kbit": capacity, "share": round(kbit_s / capacity, 4),
            })  # fmt: skip
    return rows


def _link_use(scenario: Scenario, outcome: Outcome) -> dict[str, dict[str, float]]:
    """Per busiest node: its uplink's capacity, its busiest hour (kbit/s, and as a share
    of the capacity then), and the hours it used more than 80% of it."""
    nodes = {n.name: n for n in scenario.nodes}
    out: dict[str, dict[str, float]] = {}
    for row in link_use_rows(scenario, outcome):
        mine = out.setdefault(
            row["node"],
            {"up_kbit": nodes[row["node"]].up_kbit, "peak_kbit_s": 0.0, "peak_share": 0.0,
             "hours_over_80": 0, "mb_sent": 0.0},
        )  # fmt: skip
        if row["kbit_s"] > mine["peak_kbit_s"]:
            mine["peak_kbit_s"], mine["peak_share"] = row["kbit_s"], row["share"]
        mine["hours_over_80"] += row["share"] > 0.8
        mine["mb_sent"] += row["bytes"] / 1e6
    for mine in out.values():
        mine["mb_sent"] = round(mine["mb_sent"], 1)
    return out


def _pairs(cases: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per pair (a sender's node and their reader, or group): cases, those sent beyond
    the weekly quota, those late (read after their due time, or escalated, or unread
    past it at the end)."""
    out: dict[str, dict[str, int]] = {}
    for c in cases:
        row = out.setdefault(c["pair"], {"cases": 0, "over_quota": 0, "late": 0})
        row["cases"] += 1
        row["over_quota"] += int(c["over_quota"])
        row["late"] += int(c["late"])
    return dict(sorted(out.items()))


def _troubled(facts: dict[str, Any]) -> list[tuple[str, dict[str, int]]]:
    """The pairs with cases over quota or late, most first (at most 15)."""
    rows = [(k, v) for k, v in facts["pairs"].items() if v["over_quota"] or v["late"]]
    return sorted(rows, key=lambda kv: (-(kv[1]["over_quota"] + kv[1]["late"]), kv[0]))[:15]


def markdown(scenario: Scenario, facts: dict[str, Any], plots: list[str]) -> str:
    def hours(q: dict[str, float | None]) -> str:
        if q["median"] is None:
            return "none arrived"
        return f"median {q['median']} h, 90% within {q['p90']} h, longest {q['max']} h"

    lines = [
        f"# Simulation: {scenario.name}",
        "",
        f"{facts['nodes']} nodes, {facts['senders']} senders, {facts['readers']} readers, "
        f"{scenario.days:g} days, seed {facts['seed']}."
        + (f" Figures for the cases sent {facts['window']}." if facts.get("window") else ""),
        "",
        "## Cases",
        "",
        f"- {facts['cases']} cases sent; {facts['delivered']} delivered; {facts['read']} read, "
        f"{facts['unread']} delivered and still unread at the end; "
        f"{facts['reports_back']} reports back.",
        f"- {facts['late']} late (read after their due time, escalated, or unread past it "
        f"at the end), of which {facts['escalated']} escalated (taken from a late reader, or "
        f"left unread in the pool past the due time); {facts['over_quota']} sent beyond "
        "their pair's weekly quota (the reader accepted).",
        f"- Transit (sent to delivered): {hours(facts['transit_hours'])}.",
        f"- Reading delay (delivered to read; unread cases count what they waited): "
        f"{hours(facts['reading_delay_hours'])}.",
        f"- Turnaround (sent to report back): {hours(facts['turnaround_hours'])}.",
        f"- {facts['evaluated']} reports evaluated by their sender; "
        + (
            "none judged yet."
            if facts["useful_share"] is None
            else f"{100 * facts['useful_share']:.0f}% judged useful."
        ),
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
        f"chunk requests that failed (chunk_loss) and were sent again: {facts['chunks_lost']}.",
        f"- Deposits that waited for room at a full relay: {facts['relay_full_waits']}; "
        f"left at a later relay because the first was down: {facts['relay_fallbacks']}.",
        *_background_lines(facts),
        *(
            f"- Cable {name}: {c['capacity_kbit']} kbit/s, carried {c['mb']} MB; its busiest "
            f"day used {100 * c['peak_day_use']:.1f}% of what was left of it."
            for name, c in facts["cables"].items()
        ),
        *(
            f"- Uplink of {name} ({u['up_kbit']} kbit/s): sent {u['mb_sent']} MB; its busiest "
            f"hour {u['peak_kbit_s']} kbit/s ({100 * u['peak_share']:.0f}% of its capacity "
            f"then); {u['hours_over_80']} hours above 80% (link_use.csv)."
            for name, u in facts["link_use"].items()
        ),
        f"- Most cases waiting at once: {facts['backlog_max']['in_transit']} on their way, "
        f"{facts['backlog_max']['unread']} waiting for a reader.",
        "",
        *(f"![{p}]({p})" for p in plots),
        "",
    ]
    troubles = [
        f"{len(c.nodes)} nodes cut off from day {c.start_day:g} for {c.days:g} days"
        for c in scenario.cuts
    ] + [f"{e.node} down from day {e.start_day:g} to day {e.end_day:g}" for e in scenario.node_down]
    if troubles:
        lines[4:4] = ["Cuts and nodes down: " + "; ".join(troubles) + ".", ""]
    return "\n".join(lines)


def _background_lines(facts: dict[str, Any]) -> list[str]:
    bg = facts["background_kbit_s"]
    if not bg:
        return []
    return [
        f"- Gossip and liveness, what a node sends: median {bg['total_median']} kbit/s "
        f"(gossip {bg['gossip_median']}, liveness {bg['liveness_median']}), at most "
        f"{bg['total_max']} kbit/s."
    ]


def _pair_lines(facts: dict[str, Any]) -> list[str]:
    troubled = _troubled(facts)
    if not troubled:
        return ["No pair went beyond its weekly quota, and no case was late.", ""]
    return [
        "## Pairs over quota or late",
        "",
        "| pair | cases | over quota | late |",
        "|---|---|---|---|",
        *(f"| {k} | {v['cases']} | {v['over_quota']} | {v['late']} |" for k, v in troubled),
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


def seeds_text(seeds: list[int]) -> str:
    """``seed 7``, ``seeds 1-20`` or ``seeds 1, 4, 9``."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def troubles(scenario: Scenario) -> list[tuple[float, float, str]]:
    """(first day, last day, what) of every cut and node down, to shade on plots."""
    return [
        (c.start_day, c.start_day + c.days, f"cut ({len(c.nodes)} nodes)") for c in scenario.cuts
    ] + [(e.start_day, e.end_day, f"{e.node} down") for e in scenario.node_down]


def shade(axes: Any, scenario: Scenario, *, hours: bool = False) -> None:
    """The cuts and nodes down as grey bands on a time axis (days, or hours)."""
    scale = 24 if hours else 1
    for k, (start, end, what) in enumerate(troubles(scenario)):
        axes.axvspan(
            start * scale, end * scale, color="0.85", zorder=0, label=what if k < 4 else None
        )


def titled(axes: Any, title: str, scenario: Scenario, seeds: str) -> None:
    """What the plot shows, and under it of which run: the scenario and seed(s)."""
    axes.set_title(title, loc="left", pad=14)
    axes.text(
        0, 1.01, f"{scenario.name}, {seeds}", transform=axes.transAxes, fontsize=7, color="0.3"
    )


def cdf(values: list[float]) -> tuple[list[float], list[float]]:
    """The empirical CDF as points (x sorted, share of values up to x)."""
    ordered = sorted(values)
    n = len(ordered)
    return ordered, [(k + 1) / n for k in range(n)]


def plots(
    scenario: Scenario,
    seed: int,
    outcome: Outcome | None,
    out: Path,
    directory: Spread | None = None,
    window: Window | None = None,
) -> list[str]:
    """turnaround.png (CDFs of transit, reading delay and turnaround), backlog.png (cuts
    and nodes down shaded), links.png (the busiest nodes' traffic), pairs.png (the pairs
    with cases over quota or late, when there are) and directory.png (the share of nodes
    holding a change of the directory over time); each names the scenario and the seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []
    seeds = seeds_text([seed]) + (f", cases sent {window.text}" if window else "")

    def save(figure: Any, name: str) -> None:
        figure.savefig(out / name, dpi=100, bbox_inches="tight", metadata=PNG_META)
        plt.close(figure)
        names.append(name)

    with plt.rc_context({"font.size": 9}):
        if outcome is not None:
            cases = in_window(outcome.cases, window)
            series = {
                "transit": [c["transit_ms"] / HOUR for c in cases if c["transit_ms"] is not None],
                "reading delay": waited_to_read_hours(cases, outcome.end_ms),
                "turnaround": [
                    c["turnaround_ms"] / HOUR for c in cases if c["turnaround_ms"] is not None
                ],
            }
            figure, axes = plt.subplots(figsize=(6, 3))
            for label, values in series.items():
                if values:
                    axes.step(*cdf(values), where="post", label=label)
            if any(series.values()):
                axes.legend(frameon=False)
            axes.set_xlabel("hours")
            axes.set_ylabel("share of cases")
            titled(axes, "Transit, reading delay and turnaround (CDF)", scenario, seeds)
            save(figure, "turnaround.png")
            figure, axes = plt.subplots(figsize=(6, 3))
            shade(axes, scenario)
            days = [b[0] for b in outcome.backlog]
            axes.plot(days, [b[1] for b in outcome.backlog], label="on their way")
            axes.plot(days, [b[2] for b in outcome.backlog], label="waiting for a reader")
            axes.set_xlabel("day")
            axes.set_ylabel("cases")
            titled(axes, "Backlog", scenario, seeds_text([seed]))
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
                titled(axes, "Link use, the busiest nodes", scenario, seeds_text([seed]))
                axes.legend(frameon=False)
                save(figure, "links.png")
            troubled = _troubled({"pairs": _pairs(cases)})
            if troubled:
                figure, axes = plt.subplots(figsize=(6, 0.6 + 0.25 * len(troubled)))
                labels = [name for name, _ in reversed(troubled)]
                over = [v["over_quota"] for _, v in reversed(troubled)]
                axes.barh(labels, over, label="over the weekly quota")
                axes.barh(labels, [v["late"] for _, v in reversed(troubled)], left=over,
                          label="late (after the due time, or escalated)")  # fmt: skip
                axes.set_xlabel("cases")
                titled(axes, "Pairs over quota or late", scenario, seeds)
                axes.legend(frameon=False)
                save(figure, "pairs.png")
            if scenario.cables:
                save(cable_plot(plt, scenario, seed, outcome), "cables.png")
            if busiest_uplinks(outcome):
                save(link_use_plot(plt, scenario, seed, outcome), "link_use.png")
        if directory is not None and directory.points:
            save(directory_plot(plt, scenario, seed, directory), "directory.png")
    return names


def cable_plot(plt: Any, scenario: Scenario, seed: int, outcome: Outcome) -> Any:
    """Each cable's use against its capacity, day by day: the mean kbit/s it carried,
    and what its degradation schedule left of its capacity."""
    figure, axes = plt.subplots(figsize=(6, 3))
    shade(axes, scenario)
    for cable in scenario.cables:
        per_day = outcome.cable_bytes.get(cable.name, [])
        days = list(range(len(per_day)))
        line = axes.plot(
            days, [b * 8 / 1000 / 86_400 for b in per_day], label=f"{cable.name}, used"
        )
        axes.step(
            days,
            [cable.capacity_kbit * cable.left(d + 0.5) for d in days],
            where="post",
            linestyle="--",
            color=line[0].get_color(),
            label=f"{cable.name}, capacity left",
        )
    axes.set_yscale("log")
    axes.set_xlabel("day")
    axes.set_ylabel("kbit/s (daily mean)")
    titled(axes, "Cables: use against capacity", scenario, seeds_text([seed]))
    axes.legend(frameon=False, fontsize=7)
    return figure


def link_use_plot(plt: Any, scenario: Scenario, seed: int, outcome: Outcome) -> Any:
    """Each busiest node's uplink, hour by hour: the mean kbit/s it sent against the
    capacity it had (its daytime cap included), cuts and nodes down shaded."""
    rows = link_use_rows(scenario, outcome)
    names = busiest_uplinks(outcome)
    figure, grid = plt.subplots(len(names), 1, figsize=(6, 0.8 + 1.3 * len(names)), sharex=True,
                                squeeze=False)  # fmt: skip
    for k, (name, axes) in enumerate(zip(names, grid[:, 0], strict=True)):
        mine = [r for r in rows if r["node"] == name]
        days = [r["hour"] / 24 for r in mine]
        shade(axes, scenario)
        axes.step(days, [r["kbit_s"] for r in mine], where="post", linewidth=0.8,
                  label="sent (hourly mean)")  # fmt: skip
        axes.step(days, [r["capacity_kbit"] for r in mine], where="post", linestyle="--",
                  color="0.3", label="capacity")  # fmt: skip
        axes.set_ylabel(f"{name}\nkbit/s", fontsize=7)
        axes.set_ylim(bottom=0)
        if k == 0:
            titled(axes, "Uplink use against capacity, the busiest nodes", scenario,
                   seeds_text([seed]))  # fmt: skip
            axes.legend(frameon=False, fontsize=7, loc="upper right")
    grid[-1, 0].set_xlabel("day")
    return figure


def time_unit(seconds: float) -> tuple[float, str]:
    """The unit a time axis up to ``seconds`` reads best in: (seconds per unit, name)."""
    if seconds <= 120:
        return 1.0, "seconds"
    if seconds <= 2 * 3600:
        return 60.0, "minutes"
    if seconds <= 3 * 86_400:
        return 3600.0, "hours"
    return 86_400.0, "days"


def directory_plot(plt: Any, scenario: Scenario, seed: int, directory: Spread) -> Any:
    """The share of nodes holding a change over time, on an axis in the unit that fits
    when 99.99% hold it (or the run's last point), with the 50%, 99% and 99.99% marks."""
    last = directory.seconds_to.get("99.99%") or directory.points[-1][0]
    scale, unit = time_unit(last)
    shown = [(t, s) for t, s in directory.points if t <= 1.1 * last]
    figure, axes = plt.subplots(figsize=(6, 3))
    axes.step([t / scale for t, _ in shown], [100 * s for _, s in shown], where="post")
    for label, at in directory.seconds_to.items():
        if at is not None:
            axes.axvline(at / scale, color="0.5", linestyle=":", linewidth=1)
            axes.annotate(
                f"{label}: {at / scale:.3g} {unit}",
                (at / scale, 2 + 30 * list(directory.seconds_to).index(label)),
                fontsize=7,
                color="0.3",
                xytext=(3, 0),
                textcoords="offset points",
            )
    axes.set_xlabel(f"{unit} after the change")
    axes.set_ylabel("% of nodes holding it")
    axes.set_ylim(0, 102)
    titled(axes, "A change of the directory spreading", scenario, seeds_text([seed]))
    return figure


CASE_COLUMNS = (
    "case_id", "sender", "reader", "kind", "submitted_h", "delivered_h", "read_h",
    "reported_back_h", "escalations", "late", "state",
)  # fmt: skip


def case_rows(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-case CSV's rows: the reader who signed the report (empty: unread), times
    in hours from the start of the run (day 0, Monday 00:00 UTC), empty when it did not
    happen within the run; late as the summary counts it (1 or 0)."""

    def at(ms: int | None) -> str:
        return "" if ms is None else f"{ms / HOUR:.3f}"

    return [
        {
            "case_id": c["case_id"],
            "sender": c["sender_node"],
            "reader": c["read_by"],
            "kind": c["kind"],
            "submitted_h": at(c["submitted_ms"]),
            "delivered_h": at(c["delivered_ms"]),
            "read_h": at(c["reported_ms"]),
            "reported_back_h": at(c["report_back_ms"]),
            "escalations": c["escalations"],
            "late": int(c["late"]),
            "state": c["state"],
        }
        for c in cases
    ]


def write_cases_csv(path: Path, rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> None:
    """``rows`` (``case_rows``, with the ``extra`` columns first: seed, swept values)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*extra, *CASE_COLUMNS], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


LINK_USE_COLUMNS = ("node", "hour", "bytes", "kbit_s", "capacity_kbit", "share")


def write_link_use_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """``link_use_rows`` as CSV (hour 0 starts the run)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, LINK_USE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_phase(
    scenario: Scenario, world: CaseWorld, out: Path, directory: Spread | None
) -> dict[str, Any]:
    """One phase without the cases: the directory's spread (``directory``), or, without
    it, the gossip and liveness bandwidth of every node (its outages counted, the cases
    not run). summary.json, report.md and, for the directory, directory.png."""
    out.mkdir(parents=True, exist_ok=True)
    facts: dict[str, Any] = {
        "scenario": scenario.name,
        "seed": world.seed,
        "days": scenario.days,
        "nodes": len(scenario.nodes),
    }
    if directory is not None:
        facts["phase"] = "directory"
        facts.update(_directory_facts(directory))
        lines = _directory_lines(facts)
    else:
        facts["phase"] = "liveness"
        facts["background_kbit_s"] = _background(
            background_kbit_s(
                [n.name for n in scenario.nodes],
                {n: world.up_share(n) for n in world.down},
                {n.name: n.loss for n in scenario.nodes},
            )
        )
        lines = _background_lines(facts)
    (out / "summary.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    names = plots(scenario, world.seed, None, out, directory) if directory is not None else []
    head = [f"# Simulation: {scenario.name}, {facts['phase']} only", ""]
    body = [*head, f"{facts['nodes']} nodes, seed {world.seed}.", "", *lines]
    (out / "report.md").write_text("\n".join([*body, *(f"![{p}]({p})" for p in names), ""]))
    return facts


def _directory_facts(directory: Spread) -> dict[str, Any]:
    return {
        "directory_change_hours_to": {
            k: None if v is None else round(v / 3600, 2) for k, v in directory.seconds_to.items()
        }
    }


def write(
    scenario: Scenario,
    seed: int,
    outcome: Outcome,
    out: Path,
    directory: Spread | None = None,
    *,
    window: Window | None = None,
    cases_csv: Path | None = None,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    facts = summary(scenario, seed, outcome, window)
    if directory is not None:
        facts.update(_directory_facts(directory))
    (out / "summary.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    names = plots(scenario, seed, outcome, out, directory, window)
    (out / "report.md").write_text(markdown(scenario, facts, names))
    write_link_use_csv(out / "link_use.csv", link_use_rows(scenario, outcome))
    if cases_csv is not None:
        write_cases_csv(cases_csv, case_rows(in_window(outcome.cases, window)))
    return facts
