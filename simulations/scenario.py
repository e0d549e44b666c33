"""Scenarios: a network, its people and its troubles, as a TOML file an operator writes.

    name = "..."          days = 183            seed = 1
    [latency_ms]          "europe/west-africa" = 120    (one way; both orders)
    [[nodes]]             name, region, up_kbit, down_kbit, count (name "X-{i}" if > 1),
                          power_cuts_per_month, power_cut_hours = [min, max],
                          leaves_per_year, away_days = [min, max] (churn),
                          nat = true with relay = "a node" (mail waits there), or
                          relays = ["A", "B"] (in order: when A is down, B is used),
                          loss = 0.01 (packets lost on its line: TCP's throughput falls
                          as Mathis et al. model it), chunk_loss = 0.001 (share of
                          chunk requests that fail and are sent again),
                          day_up_kbit = 128 with day_hours = [7, 19] (UTC): the upload
                          cap that keeps the hospital's line usable by day,
                          extra_latency_ms (one way: a satellite link adds 250),
                          relay_quota_mb (what it holds for others as a relay),
                          delivery_overhead_s = [0.31, 0.42, ...]: the node's own work
                          per bundle it sends (outbox, offer, manifest, receipt), in
                          seconds, as measured: each delivery from it draws one of
                          these values (seeded), before its bytes go (default: none)
    [[senders]]           node, cases_per_week, pair (a reader's name) or group, count,
                          weekly_quota (the pair's; beyond it the reader must accept)
    [[readers]]           name, node, group, reading_hours = [min, max], count,
                          days = ["mon", "wed", "sat"], hours = [18, 23] (UTC): when
                          they read (a report is signed only then; default: any time);
                          with a capacity, cases_per_session = 8, sessions_per_week = 3,
                          minutes_per_case = 20: they read in sessions (on their days
                          and hours), at most that many cases each, oldest first, and
                          cases wait in their queue (or their group's pool); without
                          one, each case takes a draw of reading_hours whatever the load
    [[groups]]            name, routing = "claim" (a member takes it: the first who
                          reads; the default), "pool" (a community: the same), or
                          "assign" (the coordinator, a reader of the group, gives it
                          to the least loaded member), coordinator, assign_hours,
                          kind ("institutional", "subspeciality", "community") and
                          subspecialities = ["paediatrics"] (as the directory says;
                          carried for the operator, cases are not routed on them yet)
    [[studies]]           kind, weight, mb = [min, max]   (size as sent, compressed)
    [[cuts]]              region (or nodes = [...]), start_day, days: cut from the rest
    [[events]]            kind = "node_down", node, from = "day20", to = "day23": the
                          node is off (no transfer to or from it, nor through it)
    [[cables]]            name, capacity_kbit, region or regions = [...] or nodes = [...]
                          (the side of the cable: traffic between them and the rest
                          crosses it, each transfer getting a fair share of the cable),
                          degraded = [{from = "day20", to = "day41", left = 0.3}, ...]
                          (the share of capacity left: a cut, then partial repair)
    useful_share = 0.8    the share of reports the sender judges useful (the 2008 pilot);
    evaluation_hours = [2, 72]  how long after the report is back the sender evaluates
    case_list = "cases.csv"     a fixed list of cases replayed instead of random arrivals
                          (beside the scenario file): day, hour, sender (a node), to (a
                          reader's name for a pair, or "group NAME"), kind, mb

    extends = "pilot_2008.toml"   another scenario (beside it) whose keys and tables it
                          takes, replacing those it gives itself

Day 0 starts on a Monday at 00:00 UTC.
    directory_day = 25    when a change of the directory (a revocation) is made; default:
                          a day into the first cut, else mid-run

Every error names the file, the table and the key.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ScenarioError(Exception):
    """A scenario file that cannot be run, with what is wrong in it."""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    region: str
    up_kbit: int
    down_kbit: int
    power_cuts_per_month: float = 0.0
    power_cut_hours: tuple[float, float] = (1.0, 8.0)
    leaves_per_year: float = 0.0  # churn: the node goes away (broken, unpaid, moved)...
    away_days: tuple[float, float] = (7.0, 60.0)  # ...for this long, then comes back
    nat: bool = False  # unreachable from outside: mail for it waits at a relay...
    relays: tuple[str, ...] = ()  # ...the first of these that is up
    loss: float = 0.0  # share of packets lost on this node's line (TCP slows down)
    chunk_loss: float = 0.0  # share of chunk requests that fail (sent again)
    extra_latency_ms: int = 0  # one way, on top of its region's (satellite: 250)
    relay_quota_mb: int = 2048  # what it holds for the nodes it relays for
    day_up_kbit: int = 0  # the uplink cap by day (0: none)...
    day_hours: tuple[float, float] = (7.0, 19.0)  # ...between these hours (UTC)
    delivery_overhead_s: tuple[float, ...] = ()  # its work per bundle sent, as measured

    @property
    def relay(self) -> str:
        """The first relay listed (the one used while it is up)."""
        return self.relays[0] if self.relays else ""


@dataclass(frozen=True)
class SenderSpec:
    node: str
    cases_per_week: float
    pair: str = ""
    group: str = ""
    weekly_quota: int = 0  # the pair's: beyond it, the reader is asked to accept (0: none)


@dataclass(frozen=True)
class ReaderSpec:
    name: str
    node: str
    group: str
    reading_hours: tuple[float, float] = (12.0, 72.0)
    days: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)  # when they read: Monday is 0...
    hours: tuple[float, float] = (0.0, 24.0)  # ...between these hours (UTC)
    cases_per_session: int = 0  # a capacity: at most this many cases a session (0: none)
    sessions_per_week: float = 0.0  # default: one a reading day
    minutes_per_case: float = 20.0

    @property
    def has_capacity(self) -> bool:
        return self.cases_per_session > 0


@dataclass(frozen=True)
class GroupSpec:
    name: str
    routing: str = "claim"  # a member claims it, or "assign": the coordinator gives it
    coordinator: str = ""  # a reader of the group
    assign_hours: tuple[float, float] = (1.0, 24.0)
    kind: str = ""  # institutional, subspeciality or community (as the directory says)
    subspecialities: tuple[str, ...] = ()  # what it reads (carried, not yet routed on)


@dataclass(frozen=True)
class StudySpec:
    kind: str
    weight: float
    mb: tuple[float, float]


@dataclass(frozen=True)
class CutSpec:
    nodes: tuple[str, ...]
    start_day: float
    days: float


@dataclass(frozen=True)
class Span:
    """Days ``start_day`` to ``end_day`` of a scenario, when something is so."""

    start_day: float
    end_day: float


@dataclass(frozen=True, kw_only=True)
class NodeDown(Span):
    """A node off for a span (a scenario's ``node_down`` event)."""

    node: str


@dataclass(frozen=True, kw_only=True)
class Degraded(Span):
    """A cable with only ``left`` of its capacity for a span."""

    left: float


@dataclass(frozen=True)
class CableSpec:
    """A shared link (a submarine cable): the traffic between ``nodes`` and the rest of
    the network crosses it, and its transfers share its capacity fairly."""

    name: str
    capacity_kbit: int
    nodes: frozenset[str]
    degraded: tuple[Degraded, ...] = ()

    def left(self, day: float) -> float:
        """The share of the capacity there is on ``day`` (1 outside the schedule)."""
        return next((d.left for d in self.degraded if d.start_day <= day < d.end_day), 1.0)

    def crossed_by(self, a: str, b: str) -> bool:
        return (a in self.nodes) != (b in self.nodes)


@dataclass(frozen=True)
class ListedCase:
    """A case of a fixed list: when, from which sender (an index in ``senders``), what."""

    submitted_ms: int
    sender: int
    kind: str
    size: int


@dataclass(frozen=True)
class Scenario:
    name: str
    days: float
    seed: int
    latency_ms: dict[tuple[str, str], int]
    nodes: tuple[NodeSpec, ...]
    senders: tuple[SenderSpec, ...]
    readers: tuple[ReaderSpec, ...]
    studies: tuple[StudySpec, ...]
    cuts: tuple[CutSpec, ...] = field(default=())
    groups: tuple[GroupSpec, ...] = field(default=())
    delay_hours: int = 72
    directory_day: float | None = None  # when a change of the directory is made
    node_down: tuple[NodeDown, ...] = field(default=())
    cables: tuple[CableSpec, ...] = field(default=())
    useful_share: float = 0.8  # reports the sender judges useful (the 2008 pilot's 80%)
    evaluation_hours: tuple[float, float] = (2.0, 72.0)  # after the report is back
    case_list: tuple[ListedCase, ...] | None = None  # replayed instead of random arrivals

    def latency(self, a: str, b: str) -> int:
        return self.latency_ms.get((a, b), self.latency_ms.get((b, a), 100))

    def group(self, name: str) -> GroupSpec:
        return next((g for g in self.groups if g.name == name), GroupSpec(name))


def _get(table: dict[str, Any], key: str, kind: type, where: str, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise ScenarioError(f"{where}: '{key}' is missing")
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ScenarioError(f"{where}: '{key}' must be {kind.__name__}, not {value!r}")
    return value


def _pair(
    table: dict[str, Any], key: str, where: str, default: tuple[float, float]
) -> tuple[float, float]:
    value = table.get(key, list(default))
    if not (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and v >= 0 for v in value)
        and value[0] <= value[1]
    ):
        raise ScenarioError(f"{where}: '{key}' must be [min, max], not {value!r}")
    return float(value[0]), float(value[1])


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _days(table: dict[str, Any], where: str) -> tuple[int, ...]:
    value = table.get("days", list(DAYS))
    if not (isinstance(value, list) and value and all(v in DAYS for v in value)):
        raise ScenarioError(f'{where}: \'days\' must be a list such as ["mon", "sat"]')
    return tuple(sorted({DAYS.index(v) for v in value}))


def _hours(
    table: dict[str, Any],
    where: str,
    key: str = "hours",
    default: tuple[float, float] = (0.0, 24.0),
) -> tuple[float, float]:
    start, end = _pair(table, key, where, default)
    if not 0 <= start < end <= 24:
        raise ScenarioError(f"{where}: '{key}' must be [start, end] within 0 to 24")
    return start, end


def _relays(table: dict[str, Any], where: str) -> tuple[str, ...]:
    """``relay = "A"`` or ``relays = ["A", "B"]`` (in the order they are tried)."""
    if "relay" in table and "relays" in table:
        raise ScenarioError(f"{where}: say 'relay' or 'relays', not both")
    if "relays" in table:
        value = table["relays"]
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise ScenarioError(f'{where}: \'relays\' must be a list such as ["A", "B"]')
        if len(set(value)) != len(value):
            raise ScenarioError(f"{where}: 'relays' lists a node twice")
        return tuple(value)
    relay = _get(table, "relay", str, where, "")
    return (relay,) if relay else ()


def _overhead(table: dict[str, Any], where: str) -> tuple[float, ...]:
    """A node's ``delivery_overhead_s``: the seconds of its own work per bundle sent, as
    measured (a list of values, each delivery drawing one)."""
    value = table.get("delivery_overhead_s", [])
    if not (
        isinstance(value, list)
        and all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise ScenarioError(
            f"{where}: 'delivery_overhead_s' must be a list of seconds >= 0, not {value!r}"
        )
    return tuple(float(v) for v in value)


def _capacity(table: dict[str, Any], where: str) -> dict[str, Any]:
    """A reader's capacity: cases per session, sessions per week, minutes per case."""
    out = {
        "cases_per_session": _get(table, "cases_per_session", int, where, 0),
        "sessions_per_week": _get(table, "sessions_per_week", float, where, 0.0),
        "minutes_per_case": _get(table, "minutes_per_case", float, where, 20.0),
    }
    if out["cases_per_session"] < 0 or out["sessions_per_week"] < 0:
        raise ScenarioError(f"{where}: 'cases_per_session' and 'sessions_per_week' must be >= 0")
    if out["minutes_per_case"] <= 0:
        raise ScenarioError(f"{where}: 'minutes_per_case' must be positive")
    if out["sessions_per_week"] and not out["cases_per_session"]:
        raise ScenarioError(f"{where}: 'sessions_per_week' needs 'cases_per_session'")
    return out


def parse_day(value: Any, where: str, key: str) -> float:
    """``"day20"`` (or ``"day20.5"``, or a number of days) as days from the start."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str) and value.startswith("day"):
        try:
            day = float(value[3:])
        except ValueError:
            day = -1.0
        if day >= 0:
            return day
    raise ScenarioError(f"{where}: '{key}' must be a day such as \"day20\", not {value!r}")


def _events(data: dict[str, Any], where: str, known: set[str]) -> tuple[NodeDown, ...]:
    out = []
    for i, t in enumerate(data.get("events", [])):
        at = f"{where}: events[{i}]"
        kind = _get(t, "kind", str, at)
        if kind != "node_down":
            raise ScenarioError(f"{at}: 'kind' must be \"node_down\", not {kind!r}")
        node = _get(t, "node", str, at)
        if node not in known:
            raise ScenarioError(f"{at}: node '{node}' is not among the [[nodes]]")
        if "from" not in t or "to" not in t:
            raise ScenarioError(f"{at}: 'from' and 'to' are needed (\"day20\", \"day23\")")
        start, end = parse_day(t["from"], at, "from"), parse_day(t["to"], at, "to")
        if end <= start:
            raise ScenarioError(f"{at}: 'to' must come after 'from'")
        out.append(NodeDown(start, end, node=node))
    return tuple(out)


def _cables(data: dict[str, Any], where: str, nodes: list[NodeSpec]) -> tuple[CableSpec, ...]:
    out = []
    regions = {n.region for n in nodes}
    known = {n.name for n in nodes}
    for i, t in enumerate(data.get("cables", [])):
        at = f"{where}: cables[{i}]"
        name = _get(t, "name", str, at)
        capacity = _get(t, "capacity_kbit", int, at)
        if capacity <= 0:
            raise ScenarioError(f"{at}: 'capacity_kbit' must be positive")
        sides = [k for k in ("region", "regions", "nodes") if k in t]
        if len(sides) != 1:
            raise ScenarioError(f"{at}: say one of 'region', 'regions' or 'nodes'")
        if sides[0] == "nodes":
            listed = _get(t, "nodes", list, at)
            if not listed or not set(listed) <= known:
                raise ScenarioError(
                    f"{at}: 'nodes' names unknown nodes {sorted(set(listed) - known)}"
                )
            inside = frozenset(listed)
        else:
            wanted = (
                [_get(t, "region", str, at)]
                if sides[0] == "region"
                else _get(t, "regions", list, at)
            )
            unknown = sorted(set(wanted) - regions)
            if not wanted or unknown:
                raise ScenarioError(f"{at}: '{sides[0]}' names regions without a node {unknown}")
            inside = frozenset(n.name for n in nodes if n.region in wanted)
        degraded: list[Degraded] = []
        for k, d in enumerate(_get(t, "degraded", list, at, [])):
            here = f"{at}: degraded[{k}]"
            if not isinstance(d, dict) or "from" not in d or "to" not in d:
                raise ScenarioError(f"{here}: 'from' and 'to' are needed (\"day20\", \"day41\")")
            start, end = parse_day(d["from"], here, "from"), parse_day(d["to"], here, "to")
            left = _get(d, "left", float, here)
            if end <= start:
                raise ScenarioError(f"{here}: 'to' must come after 'from'")
            if not 0 < left <= 1:
                raise ScenarioError(
                    f"{here}: 'left' must be a share of capacity, above 0 and at most 1"
                )
            if degraded and start < degraded[-1].end_day:
                raise ScenarioError(f"{here}: periods must be in order and not overlap")
            degraded.append(Degraded(start, end, left=left))
        out.append(CableSpec(name, capacity, inside, tuple(degraded)))
    return tuple(out)


CASE_LIST_COLUMNS = ("day", "hour", "sender", "to", "kind", "mb")


def _case_list(
    data: dict[str, Any], where: str, base: Path | None, senders: list[SenderSpec]
) -> tuple[ListedCase, ...] | None:
    """The scenario's ``case_list``: a CSV beside it, one case a row, in time order."""
    if "case_list" not in data:
        return None
    name = _get(data, "case_list", str, where)
    path = (base or Path()) / name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise ScenarioError(f"{where}: 'case_list': cannot read {path}") from None
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    if not rows:
        raise ScenarioError(f"{where}: 'case_list' {name} lists no case")
    missing = [c for c in CASE_LIST_COLUMNS if c not in rows[0]]
    if missing:
        raise ScenarioError(f"{where}: 'case_list' {name} lacks the columns {missing}")
    out = []
    for line, row in enumerate(rows, start=2):
        at = f"{where}: case_list {name} row {line}"
        try:
            day, hour, mb = float(row["day"]), float(row["hour"]), float(row["mb"])
        except ValueError:
            raise ScenarioError(f"{at}: 'day', 'hour' and 'mb' must be numbers") from None
        if day < 0 or not 0 <= hour < 24 or mb <= 0:
            raise ScenarioError(f"{at}: 'day' >= 0, 'hour' from 0 to 24, 'mb' > 0")
        to = row["to"]
        group = to.removeprefix("group ") if to.startswith("group ") else ""
        found = [
            k
            for k, s in enumerate(senders)
            if s.node == row["sender"] and (s.group == group if group else s.pair == to)
        ]
        if not found:
            raise ScenarioError(
                f"{at}: no [[senders]] entry sends from '{row['sender']}' to '{to}'"
            )
        out.append(
            ListedCase(int((day + hour / 24) * 86_400_000), found[0], row["kind"], int(mb * 1e6))
        )
    return tuple(sorted(out, key=lambda c: c.submitted_ms))


def read_scenario(path: Path) -> dict[str, Any]:
    """The TOML of a scenario file; one that says ``extends = "other.toml"`` (beside
    it) takes the other's keys and tables, its own replacing them."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML ({exc})") from None
    if "extends" in data:
        other = _get(data, "extends", str, str(path))
        if (path.parent / other).resolve() == path.resolve():
            raise ScenarioError(f"{path}: 'extends' names the file itself")
        data = {**read_scenario(path.parent / other), **data}
        del data["extends"]
    return data


def load_scenario(path: Path) -> Scenario:
    return parse_scenario(read_scenario(path), str(path), path.parent)


def parse_scenario(
    data: dict[str, Any], where: str = "scenario", base: Path | None = None
) -> Scenario:
    """The scenario in ``data`` (``where`` names it in errors; ``base`` is the folder
    its ``case_list`` is read from; default: the folder of ``where``)."""
    base = Path(where).parent if base is None else base
    nodes: list[NodeSpec] = []
    for i, t in enumerate(data.get("nodes", [])):
        at = f"{where}: nodes[{i}]"
        name = _get(t, "name", str, at)
        count = _get(t, "count", int, at, 1)
        spec = dict(
            region=_get(t, "region", str, at),
            up_kbit=_get(t, "up_kbit", int, at),
            down_kbit=_get(t, "down_kbit", int, at),
            power_cuts_per_month=_get(t, "power_cuts_per_month", float, at, 0.0),
            power_cut_hours=_pair(t, "power_cut_hours", at, (1.0, 8.0)),
            leaves_per_year=_get(t, "leaves_per_year", float, at, 0.0),
            away_days=_pair(t, "away_days", at, (7.0, 60.0)),
            nat=_get(t, "nat", bool, at, False),
            relays=_relays(t, at),
            loss=_get(t, "loss", float, at, 0.0),
            chunk_loss=_get(t, "chunk_loss", float, at, 0.0),
            extra_latency_ms=_get(t, "extra_latency_ms", int, at, 0),
            relay_quota_mb=_get(t, "relay_quota_mb", int, at, 2048),
            day_up_kbit=_get(t, "day_up_kbit", int, at, 0),
            day_hours=_hours(t, at, "day_hours", (7.0, 19.0)),
            delivery_overhead_s=_overhead(t, at),
        )
        if not 0.0 <= spec["loss"] <= 0.5:
            raise ScenarioError(f"{at}: 'loss' must be from 0 to 0.5 (a share of packets)")
        if not 0.0 <= spec["chunk_loss"] <= 0.5:
            raise ScenarioError(f"{at}: 'chunk_loss' must be from 0 to 0.5 (a share of chunks)")
        if spec["day_up_kbit"] < 0:
            raise ScenarioError(f"{at}: 'day_up_kbit' must be >= 0")
        if spec["extra_latency_ms"] < 0 or spec["relay_quota_mb"] < 0:
            raise ScenarioError(f"{at}: 'extra_latency_ms' and 'relay_quota_mb' must be >= 0")
        if spec["nat"] and not spec["relays"]:
            raise ScenarioError(f"{at}: a node behind NAT needs a 'relay' (a node's name)")
        if spec["up_kbit"] <= 0 or spec["down_kbit"] <= 0:
            raise ScenarioError(f"{at}: up_kbit and down_kbit must be positive")
        names = [name] if count == 1 else [name.replace("{i}", str(k)) for k in range(count)]
        if count > 1 and "{i}" not in name:
            raise ScenarioError(f"{at}: a name with count > 1 needs '{{i}}' in it")
        nodes.extend(NodeSpec(name=n, **spec) for n in names)
    if not nodes:
        raise ScenarioError(f"{where}: no [[nodes]]")
    known = {n.name for n in nodes}
    if len(known) != len(nodes):
        raise ScenarioError(f"{where}: two nodes have the same name")
    for n in nodes:
        for relay in n.relays:
            if relay not in known or relay == n.name:
                raise ScenarioError(
                    f"{where}: node '{n.name}': relay '{relay}' is not another node"
                )
    readers = []
    for i, t in enumerate(data.get("readers", [])):
        at = f"{where}: readers[{i}]"
        count = _get(t, "count", int, at, 1)
        name, node = _get(t, "name", str, at), _get(t, "node", str, at)
        if count > 1 and "{i}" not in name:
            raise ScenarioError(f"{at}: a name with count > 1 needs '{{i}}' in it")
        for k in range(count):
            here = node.replace("{i}", str(k))
            if here not in known:
                raise ScenarioError(f"{at}: node '{here}' is not among the [[nodes]]")
            readers.append(
                ReaderSpec(
                    name=name.replace("{i}", str(k)),
                    node=here,
                    group=_get(t, "group", str, at, ""),
                    reading_hours=_pair(t, "reading_hours", at, (12.0, 72.0)),
                    days=_days(t, at),
                    hours=_hours(t, at),
                    **_capacity(t, at),
                )
            )
    reader_names = {r.name for r in readers}
    groups = {r.group for r in readers if r.group}
    group_specs = []
    for i, t in enumerate(data.get("groups", [])):
        at = f"{where}: groups[{i}]"
        gspec = GroupSpec(
            name=_get(t, "name", str, at),
            routing=_get(t, "routing", str, at, "claim"),
            coordinator=_get(t, "coordinator", str, at, ""),
            assign_hours=_pair(t, "assign_hours", at, (1.0, 24.0)),
            kind=_get(t, "kind", str, at, ""),
            subspecialities=tuple(_get(t, "subspecialities", list, at, [])),
        )
        if gspec.kind not in ("", "institutional", "subspeciality", "community"):
            raise ScenarioError(f"{at}: 'kind' must be institutional, subspeciality or community")
        if not all(isinstance(v, str) for v in gspec.subspecialities):
            raise ScenarioError(f"{at}: 'subspecialities' must be a list such as [\"chest\"]")
        if gspec.name not in groups:
            raise ScenarioError(f"{at}: group '{gspec.name}' has no reader")
        if gspec.routing not in ("claim", "pool", "assign"):
            raise ScenarioError(f"{at}: 'routing' must be claim, pool or assign")
        if gspec.routing == "assign" and not any(
            r.name == gspec.coordinator and r.group == gspec.name for r in readers
        ):
            raise ScenarioError(f"{at}: 'coordinator' must be a reader of the group")
        group_specs.append(gspec)
    senders = []
    for i, t in enumerate(data.get("senders", [])):
        at = f"{where}: senders[{i}]"
        node = _get(t, "node", str, at)
        count = _get(t, "count", int, at, 1)
        pair, group = _get(t, "pair", str, at, ""), _get(t, "group", str, at, "")
        if pair and pair not in reader_names:
            raise ScenarioError(f"{at}: pair '{pair}' is not among the [[readers]]")
        if group and group not in groups:
            raise ScenarioError(f"{at}: group '{group}' has no reader")
        if not (pair or group):
            raise ScenarioError(f"{at}: say 'pair' (a reader) or 'group'")
        names = [node] if count == 1 else [node.replace("{i}", str(k)) for k in range(count)]
        for n in names:
            if n not in known:
                raise ScenarioError(f"{at}: node '{n}' is not among the [[nodes]]")
            senders.append(
                SenderSpec(
                    n,
                    _get(t, "cases_per_week", float, at),
                    pair=pair,
                    group=group,
                    weekly_quota=_get(t, "weekly_quota", int, at, 0),
                )
            )
    studies = []
    for i, t in enumerate(data.get("studies", [])):
        at = f"{where}: studies[{i}]"
        studies.append(
            StudySpec(
                _get(t, "kind", str, at), _get(t, "weight", float, at), _pair(t, "mb", at, (1, 1))
            )
        )
    if not studies:
        raise ScenarioError(f"{where}: no [[studies]] (the study mix)")
    latency: dict[tuple[str, str], int] = {}
    for key, value in data.get("latency_ms", {}).items():
        a, _, b = key.partition("/")
        if not (a and b and isinstance(value, int) and value >= 0):
            raise ScenarioError(f"{where}: latency_ms '{key}' must be \"region/region\" = ms")
        latency[(a, b)] = value
    regions = {n.region for n in nodes}
    cuts = []
    for i, t in enumerate(data.get("cuts", [])):
        at = f"{where}: cuts[{i}]"
        if "region" in t:
            region = _get(t, "region", str, at)
            if region not in regions:
                raise ScenarioError(f"{at}: region '{region}' has no node")
            cut_nodes = tuple(n.name for n in nodes if n.region == region)
        else:
            cut_nodes = tuple(_get(t, "nodes", list, at))
            if not set(cut_nodes) <= known:
                raise ScenarioError(f"{at}: unknown nodes {sorted(set(cut_nodes) - known)}")
        cuts.append(CutSpec(cut_nodes, _get(t, "start_day", float, at), _get(t, "days", float, at)))
    useful = _get(data, "useful_share", float, where, 0.8)
    if not 0 <= useful <= 1:
        raise ScenarioError(f"{where}: 'useful_share' must be from 0 to 1")
    return Scenario(
        name=_get(data, "name", str, where),
        days=_get(data, "days", float, where),
        seed=_get(data, "seed", int, where, 1),
        latency_ms=latency,
        nodes=tuple(nodes),
        senders=tuple(senders),
        readers=tuple(readers),
        studies=tuple(studies),
        cuts=tuple(cuts),
        groups=tuple(group_specs),
        delay_hours=_get(data, "delay_hours", int, where, 72),
        directory_day=_get(data, "directory_day", float, where, None),
        node_down=_events(data, where, known),
        cables=_cables(data, where, nodes),
        useful_share=useful,
        evaluation_hours=_pair(data, "evaluation_hours", where, (2.0, 72.0)),
        case_list=_case_list(data, where, base, senders),
    )
