"""Charts of the coordinator's quality dashboard, drawn by matplotlib as small inline SVG
(text kept as text, no embedded fonts: a few kilobytes each, light at 256 kbit/s)."""

from __future__ import annotations

import io
import re
import statistics
from collections.abc import Iterable
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from tsfnode.i18n import Texts
from tsfnode.store.cases import CaseRow

WEEK_MS = 7 * 86_400_000
WEEKS = 8
COLOURS = ("#12456b", "#c99400", "#1d6b2f", "#a11d1d")
STYLE: dict[str, Any] = {
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "tsf",  # the same SVG for the same figures
}


def _svg(figure: Any) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = out.getvalue()
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    return text[text.index("<svg") :]  # inline: without the XML prologue


def _by(
    rows: Iterable[CaseRow], pair_names: dict[bytes, str], _: Texts
) -> dict[str, list[CaseRow]]:
    out: dict[str, list[CaseRow]] = {}
    for row in rows:
        pair = row.pair_id
        key = pair_names.get(pair, "?") if pair is not None else _("group_cases")
        out.setdefault(key, []).append(row)
    return dict(sorted(out.items()))


def quality_charts(
    rows: list[CaseRow], pair_names: dict[bytes, str], _: Texts, now: int
) -> dict[str, str]:
    """Four charts (SVG text) of the cases ``rows``, per pair (and the group's own cases):
    median turnaround (in minutes or hours by its magnitude), share judged useful, image
    quality, and volume per week; "no data" where a pair has nothing to measure; legends
    outside the plot area."""
    if not rows:
        return {}
    groups = _by(rows, pair_names, _)
    labels = list(groups)
    charts: dict[str, str] = {}
    with plt.rc_context(STYLE):  # type: ignore[arg-type]  # keys typed as literals
        turnaround: list[float | None] = []
        for v in groups.values():
            took = [
                r.case.report_back_ms - r.case.submitted_ms
                for r in v
                if r.case.report_back_ms and r.case.submitted_ms
            ]
            turnaround.append(statistics.median(took) if took else None)
        scale, unit = duration_unit(turnaround, _)
        charts["turnaround"] = _bars(
            labels,
            [None if t is None else t / scale for t in turnaround],
            _("chart_turnaround"),
            unit,
            _,
            digits=0 if scale == MINUTE_MS else 1,
        )
        useful: list[float | None] = []
        for v in groups.values():
            judged = [r for r in v if r.useful is not None]
            useful.append(
                100 * sum(bool(r.useful) for r in judged) / len(judged) if judged else None
            )
        charts["useful"] = _bars(labels, useful, _("chart_useful"), "%", _, limit=100)
        figure, axes = plt.subplots(figsize=(5.6, 0.5 + 0.35 * len(labels)))
        adequate = [sum(r.image_quality == "adequate" for r in v) for v in groups.values()]
        inadequate = [sum(r.image_quality == "inadequate" for r in v) for v in groups.values()]
        axes.barh(labels, adequate, color=COLOURS[2], label=_("adequate"))
        axes.barh(labels, inadequate, left=adequate, color=COLOURS[3], label=_("inadequate"))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if not any(adequate) and not any(inadequate):  # nothing rated yet: 0 to 1, not ±0.05
            axes.set_xlim(0, 1)
        axes.set_title(_("chart_quality"), loc="left")
        _legend_outside(axes)
        charts["quality"] = _svg(figure)
        figure, axes = plt.subplots(figsize=(5.6, 2.4))
        start = now - WEEKS * WEEK_MS
        weeks = list(range(-WEEKS + 1, 1))
        for i, (label, v) in enumerate(groups.items()):
            counts = [0] * WEEKS
            for r in v:
                when = r.case.submitted_ms or r.case.delivered_ms or r.updated_ms
                if when and when >= start:
                    counts[min(WEEKS - 1, int((when - start) // WEEK_MS))] += 1
            axes.plot(weeks, counts, marker="o", color=COLOURS[i % len(COLOURS)], label=label)
        axes.set_xticks(weeks)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel(_("chart_weeks"))
        axes.set_title(_("chart_volume"), loc="left")
        _legend_outside(axes)
        charts["volume"] = _svg(figure)
    return charts


def _legend_outside(axes: Any) -> None:
    """The legend right of the plot area, never over its bars or lines."""
    axes.legend(
        frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0
    )


MINUTE_MS = 60_000
HOUR_MS = 3_600_000


def duration_unit(values: Iterable[float | None], _: Texts) -> tuple[int, str]:
    """The unit durations (ms) are shown in, by their magnitude: minutes while the
    longest is under two hours (nine minutes is "9 min", not "0 h"), else hours."""
    longest = max((v for v in values if v is not None), default=0.0)
    return (MINUTE_MS, _("unit_minutes")) if longest < 2 * HOUR_MS else (HOUR_MS, _("unit_hours"))


def _bars(
    labels: list[str],
    values: list[float | None],
    title: str,
    unit: str,
    _: Texts,
    limit: float | None = None,
    digits: int = 0,
) -> str:
    """Horizontal bars, each labelled with its value and unit, or "no data" where there
    is nothing to measure (never a bar of 0)."""
    figure, axes = plt.subplots(figsize=(5.6, 0.5 + 0.35 * len(labels)))
    bars = axes.barh(labels, [v or 0 for v in values], color=COLOURS[0])
    shown = [_("no_data") if v is None else f"{_.number(v, digits)} {unit}" for v in values]
    axes.bar_label(bars, labels=shown, padding=3, fontsize=8)
    if limit is not None:
        axes.set_xlim(0, limit * 1.15)
    elif not any(values):
        axes.set_xlim(0, 1)
    axes.set_xlabel(unit)
    axes.set_title(title, loc="left")
    return _svg(figure)
