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
import csv
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomli_w

from bootstrap.network import NetworkFileError, load_network
from protocol.directory import Directory, pair_terms
from tsfnode.clock import Clock
from tsfnode.config import load_config
from tsfnode.errors import NodeError
from tsfnode.nodedir import NodeDir
from tsfnode.store import Store
from tsfnode.store.cases import CaseRow, CaseStore
from tsfnode.store.transfers import CaseDelivery, TransferStore

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
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
DEFAULT_SESSIONS = 3  # a reader's sessions a week, when their record gives a weekly capacity
REPLAY_DAYS_AFTER = 7  # a replayed case list runs this long after its last case


@dataclass(frozen=True)
class Held:
    """What this node's store holds that the export reads."""

    config: Any
    directory: Directory
    me: bytes
    rates: list[float]  # the goodput (bytes/s) of its last deliveries
    cases: list[CaseRow]  # the cases sent from here
    deliveries: list[CaseDelivery]  # their images' deliveries


async def _read(directory: Path) -> Held:
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
    async with await Store.open(node_dir.database, readonly=True) as store:
        held = Directory(network.network)
        held.add_many(await store.load_records(), Clock().now_ms())
        transfers = TransferStore(store.db)
        rates = await transfers.recent_rates(20)
        deliveries = await transfers.case_deliveries()
        cases = CaseStore(store.db)
        rows = await cases.submitted_between(0, None)
    mine = [r for r in rows if r.role == "sender" and r.case.submitted_ms is not None]
    return Held(config, held, me, rates, mine, deliveries)


def _hours(values: list[int]) -> dict[str, float | None]:
    """Median and 90th percentile in hours, as the simulator's summary takes them (the
    90th: the value at index int(0.9 n) of the sorted values)."""
    ordered = sorted(v / 3_600_000 for v in values)
    if not ordered:
        return {"median": None, "p90": None}
    return {
        "median": _significant(statistics.median(ordered)),
        "p90": _significant(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]),
    }


def _significant(hours: float) -> float:
    """To 4 significant digits, as the simulator's summary (a test's network runs in
    seconds, a real one in hours)."""
    return float(f"{hours:.4g}")


def measured(rows: list[CaseRow]) -> dict[str, Any]:
    """Transit (sent to delivered), turnaround (sent to report back) and the share of
    evaluated reports judged useful, over the cases in ``rows``."""
    transit, turnaround, useful = [], [], []
    for row in rows:
        case = row.case
        assert case.submitted_ms is not None  # noqa: S101 - _read keeps those
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


def _kbit(bytes_per_s: float) -> int:
    return max(1, round(bytes_per_s * 8 / 1000))


@dataclass
class Export:
    """The scenario (TOML tables), where each figure came from (comments), and the
    cases sent from here as a case list (rows of the CSV)."""

    scenario: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    case_list: list[dict[str, Any]] = field(default_factory=list)


def _nodes(held: Held, view: Any, out: Export) -> dict[bytes, str]:
    """The admitted nodes, this one first: their region (country), links, relays and
    whether they can be reached (a node that publishes no address is behind NAT)."""
    names: dict[bytes, str] = {}
    for key in sorted(view.admitted, key=lambda k: (k != held.me, k)):
        record = view.nodes.get(key)
        name = record.body["name"] if record is not None else key.hex()[:8]
        while name in names.values():
            name += "'"
        names[key] = name
    per_peer: dict[bytes, list[float]] = {}
    for d in held.deliveries:
        if d.rate > 0:
            per_peer.setdefault(d.recipient, []).append(d.rate)
    measured_to = {k: statistics.median(v) for k, v in per_peer.items() if k in names}
    nodes = []
    for key, name in names.items():
        record = view.nodes.get(key)
        up, down = DEFAULT_KBIT
        said = [f"default up/down {up}/{down} kbit/s"]
        if key == held.me:
            if measured_to:
                up = _kbit(max(measured_to.values()))
                said = [f"up {up} kbit/s: the fastest goodput measured to a peer"]
            elif held.rates:
                up = _kbit(statistics.median(held.rates))
                said = [f"up {up} kbit/s: median goodput of its last deliveries"]
            elif held.config.transfer_upload_kbit_s:
                up = held.config.transfer_upload_kbit_s
                said = [f"up {up} kbit/s: its configured cap"]
            said.append(f"down {down} kbit/s: default")
        elif key in measured_to:
            down = _kbit(measured_to[key])
            n = len(per_peer[key])
            said = [
                f"down {down} kbit/s: median goodput of {n} deliveries from here to it",
                f"up {up} kbit/s: default",
            ]
        entry: dict[str, Any] = {
            "name": name,
            "region": (record.body["country"] if record is not None else "") or "unknown",
            "up_kbit": up,
            "down_kbit": down,
        }
        if record is not None:
            relays = [names[bytes(r)] for r in record.body["relays"] if bytes(r) in names]
            relays = [r for r in dict.fromkeys(relays) if r != name]
            if relays:
                entry["relays"] = relays
                said.append("relays from its record, in order")
            if not record.body["addresses"]:
                if relays:
                    entry["nat"] = True
                    said.append("behind NAT: its record publishes no address")
                else:
                    said.append("publishes no address and lists no relay: taken as reachable")
        nodes.append(entry)
        out.notes.append(f"node {name}: " + "; ".join(said))
    out.scenario["nodes"] = nodes
    return names


def _readers(
    held: Held, view: Any, names: dict[bytes, str], out: Export
) -> tuple[dict[bytes, str], dict[bytes, str]]:
    """The readers (and coordinators who read) of the groups, on the nodes known, with
    the reading times measured on the cases sent from here, and their capacity."""
    groups = {g: r.body["name"] for g, r in view.group_records.items()}
    read_ms: dict[bytes, list[int]] = {}
    for row in held.cases:
        case = row.case
        if case.reader is not None and case.reported_ms and case.delivered_ms:
            read_ms.setdefault(case.reader, []).append(case.reported_ms - case.delivered_ms)
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
        entry: dict[str, Any] = {
            "name": name,
            "node": names[body["home_node"]],
            "group": groups.get(body["group"], body["group"].hex()[:8]),
        }
        said = []
        if key in read_ms:
            hours = [v / 3_600_000 for v in read_ms[key]]
            entry["reading_hours"] = [round(min(hours), 6), round(max(hours), 6)]
            said.append(f"reading_hours: the shortest and longest of {len(hours)} cases measured")
        else:
            said.append("reading_hours: the default (12 to 72 h)")
        capacity = body["weekly_capacity"]
        if capacity and key in read_ms:
            said.append(
                f"{capacity} cases a week in its record, not made sessions: the reading "
                "times measured say how this reader reads"
            )
        elif capacity:
            entry["cases_per_session"] = max(1, math.ceil(capacity / DEFAULT_SESSIONS))
            entry["sessions_per_week"] = float(DEFAULT_SESSIONS)
            said.append(f"{capacity} cases a week (its record) in {DEFAULT_SESSIONS} sessions")
        else:
            said.append("no weekly capacity in its record: each case read in its own time")
        readers.append(entry)
        out.notes.append(f"reader {name}: " + "; ".join(said))
    out.scenario["readers"] = readers
    return reader_names, groups


def _groups(view: Any, readers: list[dict[str, Any]], reader_names: dict[bytes, str]) -> list[Any]:
    """The groups that have readers here: routing (a coordinator assigns, or a member
    claims: a community's pool), coordinator, kind and sub-specialities."""
    out: list[dict[str, Any]] = []
    for _, record in sorted(view.group_records.items()):
        body = record.body
        members = [r for r in readers if r["group"] == body["name"]]
        if not members or any(g["name"] == body["name"] for g in out):
            continue
        entry: dict[str, Any] = {"name": body["name"], "kind": body["kind"]}
        coordinators = [reader_names.get(bytes(c)) for c in body["coordinators"]]
        ours = [c for c in coordinators if c in {r["name"] for r in members}]
        if body["routing"] == "assign" and ours:
            entry["routing"], entry["coordinator"] = "assign", ours[0]
        elif body["routing"] == "pool" or body["kind"] == "community":
            entry["routing"] = "pool"
        else:
            entry["routing"] = "claim"
        if body["subspecialities"]:
            entry["subspecialities"] = list(body["subspecialities"])
        out.append(entry)
    return out


def _senders(
    held: Held,
    now: int,
    view: Any,
    names: dict[bytes, str],
    reader_names: dict[bytes, str],
    groups: dict[bytes, str],
    out: Export,
) -> None:
    """One entry per sender and way they send: each pair in force (its weekly quota),
    each group they sent cases to; their cases per week measured over four weeks here;
    and the cases sent from here as a case list."""
    pairs: dict[bytes, list[dict[str, Any]]] = {}
    delays = []
    for record in view.pairs.values():
        terms = pair_terms(record)
        if terms["status"] == "active" and terms["reader"] in reader_names:
            pairs.setdefault(terms["sender"], []).append(terms)
            delays.append(terms["reading_delay_hours"])
    since = now - 4 * WEEK_MS
    counts: dict[tuple[bytes, str], int] = {}
    target_of: dict[bytes, str] = {}
    for row in held.cases:
        case = row.case
        if case.routing.value == "pair":
            to = reader_names.get(case.target, "")
        else:
            to = f"group {groups[case.target]}" if case.target in groups else ""
        if to:
            target_of[case.case_id] = to
            if (case.submitted_ms or 0) >= since:
                counts[case.sender, to] = counts.get((case.sender, to), 0) + 1
    busiest = max(
        {r["group"] for r in out.scenario["readers"]},
        key=lambda g: sum(r["group"] == g for r in out.scenario["readers"]),
        default="",
    )
    known_groups = {g["name"] for g in out.scenario["groups"]}
    senders = []
    for key, member in sorted(view.members.items()):
        body = member.body
        if body["role"] != "sender" or body["home_node"] not in names:
            continue
        node = names[body["home_node"]]
        measured_here = any(s == key for s, _ in counts)
        mine: list[dict[str, Any]] = []
        for terms in pairs.get(key, []):
            reader = reader_names[terms["reader"]]
            mine.append({"node": node, "pair": reader, "weekly_quota": terms["weekly_quota"]})
        for (sender, to), _ in sorted(counts.items()):
            group = to.removeprefix("group ")
            if sender == key and to.startswith("group ") and group in known_groups:
                mine.append({"node": node, "group": group})
        if not mine and busiest:
            mine.append({"node": node, "group": busiest})
        for entry in mine:
            to = entry["pair"] if "pair" in entry else f"group {entry['group']}"
            n = counts.get((key, to), 0)
            entry["cases_per_week"] = round(n / 4, 2) if measured_here else DEFAULT_CASES_PER_WEEK
            senders.append(entry)
        out.notes.append(
            f"sender {body['display_name']} at {node}: "
            + ("cases per week measured here (4 weeks)" if measured_here else "default rate")
        )
    out.scenario["senders"] = senders
    if delays:
        out.scenario["delay_hours"] = int(statistics.median(delays))
    bundles = {(d.case_id, d.bundle_id): d.size for d in held.deliveries}
    sizes: dict[bytes, int] = {}
    for (case_id, _), size in bundles.items():  # each bundle once, whatever its recipients
        sizes[case_id] = sizes.get(case_id, 0) + size
    sender_node = {k: names[m.body["home_node"]] for k, m in view.members.items()
                   if m.body["home_node"] in names}  # fmt: skip
    listed = [
        row.case
        for row in held.cases
        if row.case_id in target_of and row.case_id in sizes and row.case.sender in sender_node
    ]
    if not listed:
        return
    first = min(c.submitted_ms or 0 for c in listed)
    monday = first - (first - 4 * DAY_MS) % WEEK_MS  # 1970-01-01 was a Thursday
    for case in sorted(listed, key=lambda c: (c.submitted_ms or 0, c.case_id)):
        at = (case.submitted_ms or 0) - monday
        out.case_list.append({
            "day": at // DAY_MS, "hour": round(at % DAY_MS / 3_600_000, 6),
            "sender": sender_node[case.sender], "to": target_of[case.case_id],
            "kind": "images", "mb": round(sizes[case.case_id] / 1e6, 6),
        })  # fmt: skip


def build(held: Held, now: int) -> Export:
    view = held.directory.view(now)
    day = time.strftime("%Y-%m-%d", time.gmtime(now / 1000))
    out = Export({"name": f"{held.config.name}: the network as seen on {day}", "days": 30,
                  "seed": 1})  # fmt: skip
    names = _nodes(held, view, out)
    reader_names, groups = _readers(held, view, names, out)
    out.scenario["groups"] = _groups(view, out.scenario["readers"], reader_names)
    _senders(held, now, view, names, reader_names, groups, out)
    out.scenario["latency_ms"] = _latency(view, names, out)
    _overhead(held, names, out)
    out.scenario["studies"] = STUDIES
    return out


def _loopback(address: Any) -> bool:
    host = urlsplit(str(address)).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _latency(view: Any, names: dict[bytes, str], out: Export) -> dict[str, int]:
    """One-way latency between regions. A node measures none between others (nor keeps
    the round trips ``tsfnode nearest`` measures), so: 0 ms between regions whose nodes
    all sit on this machine (every address they publish is a loopback one: a test or a
    demo network), else the default."""
    region = {n["name"]: n["region"] for n in out.scenario["nodes"]}
    local: dict[str, list[bool]] = {r: [] for r in region.values()}
    for key, name in names.items():
        record = view.nodes.get(key)
        addresses = record.body["addresses"] if record is not None else []
        if addresses:  # one behind NAT publishes none: it says nothing of its line
            local[region[name]].append(all(_loopback(a) for a in addresses))
    regions = sorted(local)
    latency: dict[str, int] = {}
    for i, a in enumerate(regions):
        for b in regions[i:]:
            seen = local[a] + local[b]
            if seen and all(seen):
                latency[f"{a}/{b}"] = 0
                said = "0 ms: every address its nodes publish is on this machine (loopback)"
            else:
                latency[f"{a}/{b}"] = DEFAULT_LATENCY_MS
                said = f"default {DEFAULT_LATENCY_MS} ms: not measured"
            out.notes.append(f"latency_ms {a}/{b}: {said}")
    return latency


def _overhead(held: Held, names: dict[bytes, str], out: Export) -> None:
    """This node's own work per delivery, as measured on the images it sent: each
    delivery's transit (its case submitted to the bundle delivered) less what the
    scenario's links account for (its bytes at the link's rate, the link's latency),
    written as the list of measured values (``delivery_overhead_s``) from which the
    simulator draws one per delivery: the outbox, sealing, the offer, the manifest and
    the receipt, which no link figure holds."""
    me = names.get(held.me)
    nodes = {n["name"]: n for n in out.scenario["nodes"]}
    latency: dict[str, int] = out.scenario["latency_ms"]

    def explained(a: str, b: str, size: int) -> float:
        bps = float(min(nodes[a]["up_kbit"], nodes[b]["down_kbit"])) * 125.0
        ra, rb = nodes[a]["region"], nodes[b]["region"]
        return size / bps + latency.get(f"{ra}/{rb}", latency.get(f"{rb}/{ra}", 0)) / 1000

    submitted = {row.case.case_id: row.case.submitted_ms for row in held.cases}
    values: list[float] = []
    for d in held.deliveries:
        start = submitted.get(d.case_id)
        if me is None or start is None or d.delivered_ms is None or d.recipient not in names:
            continue
        peer = nodes[names[d.recipient]]
        relays = peer.get("relays", [])
        via = relays[0] if peer.get("nat") and me not in relays else ""  # as the simulator
        hops = [(me, via), (via, peer["name"])] if via else [(me, peer["name"])]
        took = (d.delivered_ms - start) / 1000 - sum(explained(a, b, d.size) for a, b in hops)
        values.append(round(max(0.0, took), 3))
    if me is None or not values:
        return
    nodes[me]["delivery_overhead_s"] = sorted(values)
    out.notes.append(
        f"node {me}: delivery_overhead_s: its own work per delivery, measured on "
        f"{len(values)} deliveries from here (each one's transit less its bytes at the "
        "link's rate and the link's latency); each simulated delivery draws one"
    )


HEADER = """# Exported by `tsfnode scenario` from {node}: run it with
#   python -m simulations run THIS_FILE
# Measured here: the goodput of its deliveries to each peer (that peer's down_kbit, and
# this node's up_kbit), else its configured cap; its own work per delivery (its
# delivery_overhead_s); its senders' cases per week (last 4 weeks); the readers' reading
# times on the cases sent from here; the pairs' quotas and the groups' routing, the
# relays and NAT from the directory.
# Defaults to correct: other links ({up}/{down} kbit/s), latencies between regions
# ({latency} ms; 0 between nodes all on this machine), power cuts (none), cases per week
# of other nodes' senders ({cases}), the study mix, and senders without a pair or group
# routed to the group with most readers.
{notes}"""


def export(args: argparse.Namespace) -> int:
    if args.case_list and args.out is None:
        raise NodeError("--case-list writes a CSV beside the scenario: give --out FILE too")
    for path in (args.out, args.metrics):
        if path is not None and not path.parent.is_dir():
            raise NodeError(f"{path}: its folder {path.parent} does not exist")
    held = asyncio.run(_read(args.directory))
    made = build(held, Clock().now_ms())
    scenario = made.scenario
    if not scenario["senders"] or not scenario["readers"]:
        raise NodeError(
            "the directory holds no sender or no reader yet: nothing to simulate "
            f"({len(scenario['senders'])} senders, {len(scenario['readers'])} readers)"
        )
    if args.case_list:
        if not made.case_list:
            raise NodeError("no case sent from here has been delivered: no case list to write")
        csv_path = args.out.with_name(args.out.stem + "-cases.csv")
        with csv_path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, list(made.case_list[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(made.case_list)
        scenario["case_list"] = csv_path.name
        last = max(r["day"] for r in made.case_list)
        scenario["days"] = last + 1 + REPLAY_DAYS_AFTER
        made.notes.append(
            f"case_list {csv_path.name}: the {len(made.case_list)} cases sent from here, "
            f"replayed at their times; days: to {REPLAY_DAYS_AFTER} days after the last"
        )
    text = HEADER.format(
        node=held.config.name,
        up=DEFAULT_KBIT[0],
        down=DEFAULT_KBIT[1],
        latency=DEFAULT_LATENCY_MS,
        cases=DEFAULT_CASES_PER_WEEK,
        notes="".join(f"# {line}\n" for line in made.notes),
    ) + tomli_w.dumps(scenario)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"scenario written to {args.out}: {len(scenario['nodes'])} nodes")
    if args.metrics is not None:
        figures = measured(held.cases)
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
    p.add_argument(
        "--case-list",
        action="store_true",
        help="also write the cases sent from here beside --out, replayed at their times",
    )
    p.set_defaults(handler=export)
