"""``tsfnode scenario DIR [--out FILE]``: this node's view of the network as a scenario
for ``python -m simulations run``, to start planning from what is there.

From the directory in force: the admitted nodes (their country as the region), the
groups' readers and coordinators, the senders with their pairs. From this node's own
records: the uplink goodput of its last deliveries (else its configured cap) and, for
its own senders, their cases per week over the last four weeks. What no node measures
(other nodes' links, latencies between countries, power cuts, the study mix) gets a
stated default, listed at the top of the file for the operator to correct.

``--metrics FILE`` writes beside it what this node measured of the cases it sent (JSON:
their transit and turnaround in hours, median and 90th percentile as the simulator
computes them, and the share of reports judged useful), for ``python -m simulations
compare SCENARIO --metrics FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import tomli_w

from bootstrap.network import NetworkFileError, load_network
from protocol.directory import Directory, pair_terms
from tsfnode.clock import Clock
from tsfnode.config import load_config
from tsfnode.errors import NodeError
from tsfnode.nodedir import NodeDir
from tsfnode.store import Store
from tsfnode.store.cases import CaseRow, CaseStore
from tsfnode.store.transfers import TransferStore

DEFAULT_KBIT = (512, 2048)  # up, down: a district hospital's shared line
DEFAULT_LATENCY_MS = 150
DEFAULT_CASES_PER_WEEK = 0.5
STUDIES = [
    {"kind": "photo of a film", "weight": 0.45, "mb": [1, 4]},
    {"kind": "chest film", "weight": 0.25, "mb": [3, 8]},
    {"kind": "ultrasound", "weight": 0.1, "mb": [2, 15]},
    {"kind": "CT", "weight": 0.15, "mb": [40, 200]},
    {"kind": "MR", "weight": 0.05, "mb": [10, 60]},
]
WEEK_MS = 7 * 86_400_000


async def _read(
    directory: Path,
) -> tuple[Any, Directory, list[float], dict[bytes, int], bytes]:
    node_dir = NodeDir(directory)
    if not node_dir.exists():
        raise NodeError(f"{directory} is not a node directory (tsfnode init)")
    config = load_config(node_dir.config)
    try:
        network = load_network(config.network, base=node_dir.root)
    except NetworkFileError as exc:
        raise NodeError(str(exc)) from None
    from tsfnode.keyfile import read_key

    me = read_key(node_dir.key).public.key
    store = await Store.open(node_dir.database, readonly=True)
    try:
        held = Directory(network.network)
        held.add_many(await store.load_records(), Clock().now_ms())
        rates = await TransferStore(store.db).recent_rates(20)
        since = Clock().now_ms() - 4 * WEEK_MS
        sent = await CaseStore(store.db).sent_by_sender_since(since)
    finally:
        await store.close()
    return config, held, rates, sent, me


async def _sent_cases(directory: Path) -> list[CaseRow]:
    """The cases this node sent (it decides them), from its case store."""
    store = await Store.open(NodeDir(directory).database, readonly=True)
    try:
        rows = await CaseStore(store.db).submitted_between(0, None)
    finally:
        await store.close()
    return [r for r in rows if r.role == "sender" and r.case.submitted_ms is not None]


def _hours(values: list[int]) -> dict[str, float | None]:
    """Median and 90th percentile in hours, as the simulator's summary takes them (the
    90th: the value at index int(0.9 n) of the sorted values)."""
    ordered = sorted(v / 3_600_000 for v in values)
    if not ordered:
        return {"median": None, "p90": None}
    return {
        "median": round(statistics.median(ordered), 2),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2),
    }


def measured(rows: list[CaseRow]) -> dict[str, Any]:
    """Transit (sent to delivered), turnaround (sent to report back) and the share of
    evaluated reports judged useful, over the cases in ``rows``."""
    transit, turnaround, useful = [], [], []
    for row in rows:
        case = row.case
        assert case.submitted_ms is not None  # noqa: S101 - _sent_cases keeps those
        if case.delivered_ms is not None:
            transit.append(case.delivered_ms - case.submitted_ms)
        if case.report_back_ms is not None:
            turnaround.append(case.report_back_ms - case.submitted_ms)
        if row.useful is not None:
            useful.append(row.useful)
    return {
        "cases": len(rows),
        "delivered": len(transit),
        "reports_back": len(turnaround),
        "transit_hours": _hours(transit),
        "turnaround_hours": _hours(turnaround),
        "useful_share": round(sum(useful) / len(useful), 4) if useful else None,
    }


def build(
    config: Any,
    held: Directory,
    rates: list[float],
    sent: dict[bytes, int],
    me: bytes,
    now: int,
) -> dict[str, Any]:
    view = held.view(now)
    names: dict[bytes, str] = {}
    nodes = []
    for key in sorted(view.admitted, key=lambda k: (k != me, k)):
        record = view.nodes.get(key)
        name = record.body["name"] if record is not None else key.hex()[:8]
        while name in names.values():
            name += "'"
        names[key] = name
        up, down = DEFAULT_KBIT
        if key == me:
            if rates:
                up = max(1, int(statistics.median(rates) * 8 / 1000))
            elif config.transfer_upload_kbit_s:
                up = config.transfer_upload_kbit_s
        region = (record.body["country"] if record is not None else "") or "unknown"
        nodes.append({"name": name, "region": region, "up_kbit": up, "down_kbit": down})
    groups = {g: r.body["name"] for g, r in view.group_records.items()}
    readers: list[dict[str, Any]] = []
    reader_names: dict[bytes, str] = {}
    for key, member in sorted(view.members.items()):
        body = member.body
        if body["role"] not in ("reader", "coordinator") or body["home_node"] not in names:
            continue
        name = body["display_name"]
        while name in reader_names.values():
            name += "'"
        reader_names[key] = name
        readers.append(
            {
                "name": name,
                "node": names[body["home_node"]],
                "group": groups.get(body["group"], body["group"].hex()[:8]),
            }
        )
    pair_of = {}
    for record in view.pairs.values():
        terms = pair_terms(record)
        if terms["status"] == "active" and terms["reader"] in reader_names:
            pair_of[terms["sender"]] = reader_names[terms["reader"]]
    busiest = max(
        {r["group"] for r in readers},
        key=lambda g: sum(r["group"] == g for r in readers),
        default="",
    )
    senders = []
    for key, member in sorted(view.members.items()):
        body = member.body
        if body["role"] != "sender" or body["home_node"] not in names:
            continue
        entry: dict[str, Any] = {
            "node": names[body["home_node"]],
            "cases_per_week": round(sent[key] / 4, 2) if key in sent else DEFAULT_CASES_PER_WEEK,
        }
        if key in pair_of:
            entry["pair"] = pair_of[key]
        elif busiest:
            entry["group"] = busiest
        else:
            continue
        senders.append(entry)
    regions = sorted({n["region"] for n in nodes})
    day = time.strftime("%Y-%m-%d", time.gmtime(now / 1000))
    return {
        "name": f"{config.name}: the network as seen on {day}",
        "days": 30,
        "seed": 1,
        "latency_ms": {
            f"{a}/{b}": DEFAULT_LATENCY_MS for i, a in enumerate(regions) for b in regions[i:]
        },
        "nodes": nodes,
        "readers": readers,
        "senders": senders,
        "studies": STUDIES,
    }


HEADER = """# Exported by `tsfnode scenario` from {node}: run it with
#   python -m simulations run THIS_FILE
# Measured here: this node's uplink ({uplink}); its senders' cases per week (last 4 weeks).
# Defaults to correct: other nodes' links ({up}/{down} kbit/s), latencies between regions
# ({latency} ms), power cuts (none), cases per week of other nodes' senders ({cases}), the
# study mix, and senders without a pair routed to the group with the most readers.
"""


def export(args: argparse.Namespace) -> int:
    config, held, rates, sent, me = asyncio.run(_read(args.directory))
    scenario = build(config, held, rates, sent, me, Clock().now_ms())
    if not scenario["senders"] or not scenario["readers"]:
        raise NodeError(
            "the directory holds no sender or no reader yet: nothing to simulate "
            f"({len(scenario['senders'])} senders, {len(scenario['readers'])} readers)"
        )
    text = HEADER.format(
        node=config.name,
        uplink="median of the last deliveries" if rates else "its configured cap or the default",
        up=DEFAULT_KBIT[0],
        down=DEFAULT_KBIT[1],
        latency=DEFAULT_LATENCY_MS,
        cases=DEFAULT_CASES_PER_WEEK,
    ) + tomli_w.dumps(scenario)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"scenario written to {args.out}: {len(scenario['nodes'])} nodes")
    if args.metrics is not None:
        figures = measured(asyncio.run(_sent_cases(args.directory)))
        args.metrics.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
        print(f"measured figures of {figures['cases']} cases written to {args.metrics}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("scenario", help="this node's view of the network, as a simulation scenario")
    p.add_argument("directory", type=Path)
    p.add_argument("--out", type=Path, default=None, help="a TOML file (default: standard output)")
    p.add_argument(
        "--metrics",
        type=Path,
        default=None,
        help="also write this node's measured transit and turnaround (JSON) to compare with",
    )
    p.set_defaults(handler=export)
