"""The figures of the network's work, with nobody at the centre.

Each node counts its own cases (sent from here, received here) and computes, per node,
per pair, per group and per period: cases sent, received, read; transit time (submitted
-> delivered), reading time (delivered -> report signed), turnaround (submitted -> report
back at the sender); the share of opinions judged useful; image quality ratings; overdue
cases. It publishes its totals as a signed ``node_stats`` record in the directory (no
patient data: counts and durations), so any node shows the whole network's figures from
the records its gossip brought. Export: JSON and CSV on the local API; Prometheus text
on ``/metrics`` for operators.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from protocol.directory import make_record
from protocol.identity import PublicIdentity
from tsfnode.logs import log
from tsfnode.store.cases import CaseRow

if TYPE_CHECKING:
    from tsfnode.cases.service import CaseService

DAY_MS = 86_400_000
STATS_PERIOD_MS = 30 * DAY_MS
STATS_TTL_MS = 2 * DAY_MS
READ_STATES = ("reported", "report_delivered", "evaluated", "closed", "purged")
COUNTS = (
    "sent",
    "received",
    "read",
    "reports_back",
    "evaluated",
    "useful",
    "quality_adequate",
    "quality_inadequate",
    "overdue_now",
    "escalations",
)
DURATIONS = ("transit_ms", "reading_ms", "turnaround_ms")


def _median(values: list[int]) -> int | None:
    return int(statistics.median(values)) if values else None


def figures(rows: Iterable[CaseRow], now: int) -> dict[str, Any]:
    """The figures of some cases."""
    counts = dict.fromkeys(COUNTS, 0)
    transit: list[int] = []
    reading: list[int] = []
    turnaround: list[int] = []
    for row in rows:
        case = row.case
        if row.role == "sender":
            counts["sent"] += 1
            if case.delivered_ms is not None and case.submitted_ms is not None:
                transit.append(case.delivered_ms - case.submitted_ms)
            if case.report_back_ms is not None:
                counts["reports_back"] += 1
                turnaround.append(case.report_back_ms - (case.submitted_ms or 0))
            if row.useful is not None:
                counts["evaluated"] += 1
                counts["useful"] += int(row.useful)
            if row.image_quality in ("adequate", "inadequate"):
                counts[f"quality_{row.image_quality}"] += 1
        else:
            counts["received"] += 1
            if case.state.value in READ_STATES and case.reported_ms is not None:
                counts["read"] += 1
                if case.delivered_ms is not None:
                    reading.append(case.reported_ms - case.delivered_ms)
        counts["escalations"] += case.escalations
        if case.overdue(now):
            counts["overdue_now"] += 1
    out: dict[str, Any] = dict(counts)
    out["transit_ms"] = _median(transit)
    out["reading_ms"] = _median(reading)
    out["turnaround_ms"] = _median(turnaround)
    out["useful_share"] = (
        round(counts["useful"] / counts["evaluated"], 3) if counts["evaluated"] else None
    )
    return out


async def case_rows(
    service: CaseService, since: int = 0, until: int | None = None
) -> list[CaseRow]:
    """The cases submitted in [since, until) (all of them by default)."""
    return await service.rows.submitted_between(since, until)


def week_of(ms: int) -> str:
    """The ISO week a time falls in, as ``2026-W48`` (UTC)."""
    year, week, _ = datetime.fromtimestamp(ms / 1000, UTC).isocalendar()
    return f"{year}-W{week:02d}"


async def local_figures(
    service: CaseService, now: int, since: int = 0, until: int | None = None
) -> dict[str, Any]:
    """This node's figures for the cases submitted in [since, until): in total, per pair
    and per group (the group or community a case was routed to; a pair's cases under the
    pair), and per ISO week of submission. Durations and overdue cases are as of now."""
    rows = await case_rows(service, since, until)
    by: dict[str, dict[str, list[CaseRow]]] = {"pair": {}, "group": {}, "week": {}}
    for row in rows:
        if row.pair_id is not None:
            by["pair"].setdefault(row.pair_id.hex(), []).append(row)
        else:
            by["group"].setdefault(row.case.target.hex(), []).append(row)
        submitted = row.case.submitted_ms
        if submitted is None:
            submitted = row.updated_ms
        by["week"].setdefault(week_of(submitted), []).append(row)
    return {
        "node": service.me.hex(),
        "since_ms": since,
        "until_ms": now if until is None else min(until, now),
        "total": figures(rows, now),
        "pairs": {k: figures(v, now) for k, v in sorted(by["pair"].items())},
        "groups": {k: figures(v, now) for k, v in sorted(by["group"].items())},
        "weeks": {k: figures(v, now) for k, v in sorted(by["week"].items())},
    }


OPEN_PREFIX = "open:"  # + the first 16 bytes of a group's key, in hex
MAX_GROUP_COUNTERS = 40


def _counters(total: dict[str, Any], open_by_group: dict[bytes, int]) -> dict[str, Any]:
    """The node_stats counters: totals, and the cases sent from here that wait or are
    being read, per group they were routed to (the groups' load, network-wide)."""
    counters = {k: v for k, v in total.items() if k in COUNTS or k in DURATIONS}
    busiest = sorted(open_by_group.items(), key=lambda kv: (-kv[1], kv[0]))
    for group, count in busiest[:MAX_GROUP_COUNTERS]:
        counters[OPEN_PREFIX + group[:16].hex()] = count
    return counters


def open_by_group(rows: Iterable[CaseRow]) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for row in rows:
        if row.role == "sender" and row.pair_id is None and row.case.state.value in OPEN_STATES:
            group = row.case.target
            out[group] = out.get(group, 0) + 1
    return out


OPEN_STATES = ("submitted", "in_transit", "delivered", "assigned")


async def publish_stats(service: CaseService, now: int) -> bool:
    """Sign this node's figures of the last 30 days as its ``node_stats`` record."""
    directory = service.directory
    if not directory.view(now).is_admitted(service.me):
        return False
    mine = await local_figures(service, now, since=now - STATS_PERIOD_MS)
    waiting = open_by_group(await case_rows(service))
    record = make_record(
        "node_stats",
        {
            "period_start": now - STATS_PERIOD_MS,
            "period_end": now,
            "counters": _counters(mine["total"], waiting),
        },
        signer=service.identity,
        network=directory.network.name,
        version=directory.next_version(now),
        now=now,
        ttl=STATS_TTL_MS,
    )
    outcome = await directory.add([record], now)
    log("node stats published", outcome=",".join(outcome))
    return bool(outcome["added"])


def network_figures(service: CaseService, now: int) -> dict[str, Any]:
    """Every node's signed figures held in the directory, and their sums."""
    view = service.directory.view(now)
    nodes = []
    sums = dict.fromkeys(COUNTS, 0)
    for node, record in sorted(view.stats.items()):
        counters = dict(record.body["counters"])
        # a node without its record here yet: its id, as people read it
        name = (
            view.nodes[node].body["name"] if node in view.nodes else PublicIdentity(node).text[:15]
        )
        nodes.append(
            {
                "node": node.hex(),
                "name": name,
                "period_start": record.body["period_start"],
                "period_end": record.body["period_end"],
                **counters,
            }
        )
        for key in COUNTS:
            value = counters.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                sums[key] += value
    total: dict[str, Any] = dict(sums)
    total["useful_share"] = (
        round(sums["useful"] / sums["evaluated"], 3) if sums["evaluated"] else None
    )
    return {"nodes": nodes, "total": total}


CSV_COLUMNS = ("scope", "key", *COUNTS, *DURATIONS, "useful_share")


def as_csv(mine: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    lines = [("node", mine["node"], mine["total"])]
    lines += [("pair", k, v) for k, v in mine["pairs"].items()]
    lines += [("group", k, v) for k, v in mine["groups"].items()]
    lines += [("week", k, v) for k, v in mine["weeks"].items()]
    for scope, key, values in lines:
        writer.writerow(
            [scope, key, *("" if values[c] is None else values[c] for c in CSV_COLUMNS[2:])]
        )
    return out.getvalue()


def prometheus_text(
    mine: dict[str, Any], transfers: dict[str, int], transcodings: dict[str, int] | None = None
) -> bytes:
    """The node's figures in Prometheus' text format (a registry per scrape); with
    DICOMweb's ``transcodings`` (tasks.Turns: running, waiting, and the most of each
    since the node started)."""
    # prometheus_client is loaded by the first scrape, not at the node's start
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    total = mine["total"]
    for key in COUNTS:
        gauge = Gauge(f"tsf_cases_{key}", f"cases: {key.replace('_', ' ')}", registry=registry)
        gauge.set(total[key])
    for key in DURATIONS:
        value = total[key]
        name = f"tsf_cases_{key.removesuffix('_ms')}_median_seconds"
        gauge = Gauge(name, f"median {key.removesuffix('_ms')} time", registry=registry)
        gauge.set(float("nan") if value is None else value / 1000)
    by_state = Gauge(
        "tsf_transfers",
        "transfers by direction and state",
        ["direction", "state"],
        registry=registry,
    )
    for label, count in transfers.items():
        direction, state = label.split(":", 1)
        by_state.labels(direction, state).set(count)
    at_once = Gauge(
        "tsf_dicomweb_transcodings",
        "DICOMweb transcodings: running and waiting now, the most of each since start",
        ["figure"],
        registry=registry,
    )
    for figure, count in (transcodings or {}).items():
        at_once.labels(figure).set(count)
    return bytes(generate_latest(registry))


def group_suggestions(
    service: CaseService, now: int, subspeciality: str | None = None
) -> list[dict[str, Any]]:
    """Groups and communities that could read a case (covering ``subspeciality`` when
    given), with their readers, weekly capacity and current load: the open cases routed
    to them that every node reports in its signed figures. Least loaded first."""
    view = service.directory.view(now)
    open_cases: dict[str, int] = {}
    for record in view.stats.values():
        for key, value in dict(record.body["counters"]).items():
            if key.startswith(OPEN_PREFIX) and isinstance(value, int):
                open_cases[key] = open_cases.get(key, 0) + value
    out = []
    for group, record in view.group_records.items():
        if group not in view.groups:
            continue
        covers = list(record.body["subspecialities"])
        if subspeciality and subspeciality not in covers:
            continue
        readers = [
            m
            for m in view.members.values()
            if m.body["group"] == group and m.body["role"] in ("reader", "coordinator")
        ]
        capacity = sum(int(m.body["weekly_capacity"]) for m in readers)
        waiting = open_cases.get(OPEN_PREFIX + group[:16].hex(), 0)
        out.append(
            {
                "group": PublicIdentity(group).text,
                "name": record.body["name"],
                "kind": record.body["kind"],
                "routing": "community" if record.body["kind"] == "community" else "group",
                "subspecialities": covers,
                "readers": len(readers),
                "weekly_capacity": capacity,
                "open_cases": waiting,
                "load": round(waiting / capacity, 3) if capacity else None,
            }
        )
    return sorted(out, key=lambda g: (g["load"] is None, g["load"] or 0, g["name"]))
