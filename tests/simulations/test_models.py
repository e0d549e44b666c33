"""The simulator's models for an operator's questions: a shared cable and its
degradation, the sender's evaluations, a fixed case list, gossip and liveness
bandwidth, and the phases run alone."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.liveness import LivenessConfig
from simulations.bandwidth import (
    indirect_probe_bytes,
    liveness_bytes_per_s,
    probe_bytes,
    probe_failure,
)
from simulations.casesim import DAY, HOUR, CaseWorld
from simulations.scenario import ScenarioError, load_scenario, parse_scenario
from tests.protocol.helpers import NOW
from tests.simulations.test_liveness_net import network
from tests.simulations.worlds import europe_africa, pooled

SCENARIOS = Path(__file__).parents[2] / "simulations" / "scenarios"


def behind_a_cable(tmp_path: Path, rows: list[str], **cable: object) -> dict:
    """Erasme and two hospitals on 2 Mbit/s uplinks behind a 1 Mbit/s cable (the
    africa region), sending the cases of ``rows`` (day,hour,sender,to,kind,mb) to Anne."""
    (tmp_path / "cases.csv").write_text(
        "day,hour,sender,to,kind,mb\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    return {
        "name": "cable",
        "days": 3,
        "seed": 1,
        **europe_africa(2, 2048, 2048),
        "readers": [{"name": "Anne", "node": "Erasme", "group": "g", "reading_hours": [1, 2]}],
        "senders": [{"node": "H-{i}", "count": 2, "cases_per_week": 1.0, "pair": "Anne"}],
        "studies": [{"kind": "CT", "weight": 1, "mb": [10, 10]}],
        "cables": [{"name": "SAT-3", "capacity_kbit": 1024, "region": "africa", **cable}],
        "case_list": "cases.csv",
    }


def transits(data: dict, where: Path) -> list[float]:
    world = CaseWorld(parse_scenario(data, str(where / "s.toml")))
    return [c["transit_ms"] / 1000 for c in world.run().cases]


def test_two_hospitals_behind_one_cable_finish_later_than_one_alone(tmp_path: Path) -> None:
    alone = transits(behind_a_cable(tmp_path, ["0,1,H-0,Anne,CT,10"]), tmp_path)
    both = transits(
        behind_a_cable(tmp_path, ["0,1,H-0,Anne,CT,10", "0,1,H-1,Anne,CT,10"]), tmp_path
    )
    # 10 MB over the 1 Mbit/s cable: about 80 s alone (each hospital's own line is 2
    # Mbit/s); sharing it, each gets half, and both take about twice as long
    assert 75 < alone[0] < 95
    assert len(both) == 2
    assert all(t > 1.8 * alone[0] for t in both)


def test_a_cable_degraded_to_30_percent_lengthens_transit_by_about_1_over_0_3(
    tmp_path: Path,
) -> None:
    rows = ["0,1,H-0,Anne,CT,10"]
    full = transits(behind_a_cable(tmp_path, rows), tmp_path)[0]
    cut = [{"from": "day0", "to": "day2", "left": 0.3}]
    degraded = transits(behind_a_cable(tmp_path, rows, degraded=cut), tmp_path)[0]
    assert 3.0 < degraded / full < 3.6  # 1 / 0.3 = 3.3, latency aside


def in_transit_by_day(degraded: list[dict]) -> dict[int, int]:
    """Ten hospitals sending two 4-8 MB studies a day each over one 400 kbit/s cable, with this
    degradation schedule: cases on their way, at the start of each day."""
    data = {
        **pooled("repair", days=30, seed=3, hospitals=10, readers=10, cases_per_week=14.0,
                 cases_per_session=20),
        "studies": [{"kind": "CT", "weight": 1, "mb": [4, 8]}],
        "cables": [{"name": "c", "capacity_kbit": 400, "region": "africa",
                    "degraded": degraded}],
    }  # fmt: skip
    return {round(day): n for day, n, _ in CaseWorld(parse_scenario(data)).run().backlog}


def test_the_backlog_follows_the_cables_repair_schedule() -> None:
    cut = {"from": "day10", "to": "day20", "left": 0.02}  # 8 kbit/s: less than they send
    partial = in_transit_by_day([cut, {"from": "day20", "to": "day30", "left": 0.05}])
    at_once = in_transit_by_day([cut])
    assert max(partial[d] for d in range(10)) == 0
    peak = partial[20]
    assert peak > 50
    assert peak == at_once[20]
    # repaired at once, the backlog is gone the next day; repaired in part (20
    # kbit/s), it drains for days, then is gone before the cable is whole again
    assert at_once[22] <= 5
    assert partial[22] > peak / 2
    assert max(partial[d] for d in range(26, 30)) <= 5


def test_senders_judge_reports_useful_at_the_scenarios_share() -> None:
    data = pooled("eval", days=60, seed=5, hospitals=5, readers=10, cases_per_week=5.0,
                  cases_per_session=20)  # fmt: skip
    cases = CaseWorld(parse_scenario({**data, "evaluation_hours": [1, 10]})).run().cases
    evaluated = [c for c in cases if c["useful"] is not None]
    assert len(evaluated) > 150
    share = sum(c["useful"] for c in evaluated) / len(evaluated)
    assert 0.72 < share < 0.88  # 0.8 by default, the 2008 pilot's
    for c in evaluated:
        assert c["state"] == "evaluated"
        assert HOUR <= c["evaluated_ms"] - c["report_back_ms"] <= 10 * HOUR
    never = CaseWorld(parse_scenario({**data, "useful_share": 0.0})).run().cases
    assert not any(c["useful"] for c in never)
    with pytest.raises(ScenarioError, match="useful_share"):
        parse_scenario({**data, "useful_share": 1.5})


def test_the_pilots_case_list_is_replayed_exactly_and_the_same_every_time() -> None:
    scenario = load_scenario(SCENARIOS / "pilot_2008_replay.toml")
    listed = (SCENARIOS / "pilot_2008_cases.csv").read_text(encoding="utf-8").splitlines()
    rows = [r.split(",") for r in listed if r and not r.startswith(("#", "day,"))]
    assert len(rows) == 30
    runs = [CaseWorld(scenario).run().cases for _ in range(2)]
    assert runs[0] == runs[1]
    got = sorted(
        (c["submitted_ms"], c["sender_node"], c["kind"], c["size"], c["pair"]) for c in runs[0]
    )
    want = sorted(
        (int((float(d) + float(h) / 24) * DAY), node, kind, int(float(mb) * 1e6), f"{node} -> {to}")
        for d, h, node, to, kind, mb in rows
    )
    assert got == want  # each at its time, from its sender, to its pair


def test_a_case_list_row_without_a_matching_sender_is_refused_with_its_row(
    tmp_path: Path,
) -> None:
    data = behind_a_cable(tmp_path, ["0,1,H-0,Anne,CT,10", "0,2,H-0,Bob,CT,10"])
    with pytest.raises(
        ScenarioError, match="row 3: no \\[\\[senders\\]\\] entry sends from 'H-0' to 'Bob'"
    ):
        parse_scenario(data, str(tmp_path / "s.toml"))
    data = behind_a_cable(tmp_path, ["0,1,H-0,Anne,CT,ten"])
    with pytest.raises(ScenarioError, match="row 2: 'day', 'hour' and 'mb' must be numbers"):
        parse_scenario(data, str(tmp_path / "s.toml"))


def test_a_cable_with_no_capacity_left_is_refused_naming_the_field(tmp_path: Path) -> None:
    data = behind_a_cable(tmp_path, ["0,1,H-0,Anne,CT,10"], degraded=[
        {"from": "day1", "to": "day2", "left": 0.0}])  # fmt: skip
    with pytest.raises(ScenarioError, match=r"cables\[0\]: degraded\[0\]: 'left'"):
        parse_scenario(data, str(tmp_path / "s.toml"))


def test_liveness_bandwidth_is_the_real_engines_probes_while_the_node_is_up() -> None:
    ping, pong = probe_bytes()
    assert ping > 64
    assert pong > 64
    interval_s = LivenessConfig().probe_interval_ms / 1000
    # what real engines send in a steady state, probing each other
    nodes, net = network(12)
    net.loop.run_until(NOW + 10 * 60_000)
    net.bytes_sent.clear()
    net.loop.run_until(NOW + 40 * 60_000)
    measured = statistics.fmean(net.bytes_sent[n] for n in nodes) / (30 * 60)
    assert liveness_bytes_per_s() == pytest.approx((ping + pong) / interval_s)
    assert liveness_bytes_per_s() == pytest.approx(measured, rel=0.15)
    data = {**pooled("bw", days=20, seed=2, hospitals=2, readers=2, cases_per_week=1.0,
                     cases_per_session=5)}  # fmt: skip
    data["nodes"] = [data["nodes"][0], {**data["nodes"][1], "power_cuts_per_month": 20,
                                        "power_cut_hours": [10, 20]}]  # fmt: skip
    per_node = CaseWorld(parse_scenario(data)).run().background_kbit_s
    always_up = (ping + pong) * 8 / 1000 / interval_s
    assert per_node["Erasme"]["liveness"] == pytest.approx(always_up, abs=1e-3)
    assert per_node["H-0"]["liveness"] < 0.9 * always_up  # off for its power cuts
    assert 0 < per_node["Erasme"]["gossip"] < 2  # kbit/s: small on a 256 kbit/s line


def test_lost_probes_bring_indirect_probes_whose_share_the_liveness_bandwidth_counts() -> None:
    ping, pong = probe_bytes()
    indirect = indirect_probe_bytes()  # from real engines, one of whose pings was lost
    assert set(indirect) == {"ping_req", "ping", "pong", "ping_ack"}
    assert (indirect["ping"], indirect["pong"]) == (ping, pong)  # nothing piggybacked
    assert indirect["ping_req"] > 32 + 64  # a target's id and the envelope's signature
    interval_s = LivenessConfig().probe_interval_ms / 1000
    k = LivenessConfig().indirect_probes
    data = pooled("bw", days=5, seed=2, hospitals=4, readers=2, cases_per_week=1.0,
                  cases_per_session=5)  # fmt: skip
    direct = (ping + pong) * 8 / 1000 / interval_s
    clean = CaseWorld(parse_scenario(data)).run().background_kbit_s
    assert all(v["liveness"] == pytest.approx(direct, abs=1e-3) for v in clean.values())
    lossy = {**data, "nodes": [{**n, "loss": 0.05} for n in data["nodes"]]}
    per_node = CaseWorld(parse_scenario(lossy)).run().background_kbit_s
    failed = probe_failure(1 - 0.95 * 0.95)  # every line loses 5%: each path, both lines
    share = failed * k * sum(indirect.values()) * 8 / 1000 / interval_s
    assert share > 0.001
    for node, figures in per_node.items():
        assert figures["liveness"] == pytest.approx(direct + share, abs=1e-3), node
        assert figures["gossip"] == clean[node]["gossip"]


def test_the_busiest_uplinks_use_over_time_adds_up_to_the_bytes_they_sent(
    tmp_path: Path,
) -> None:
    import csv

    from simulations.report import BUSIEST, write

    data = pooled("uplinks", days=6, seed=3, hospitals=6, readers=2, cases_per_week=14.0,
                  cases_per_session=20)  # fmt: skip
    data["studies"] = [{"kind": "CT", "weight": 1, "mb": [300, 500]}]  # an hour on the line
    data["cuts"] = [{"region": "africa", "start_day": 2, "days": 1}]
    scenario = parse_scenario(data)
    outputs = []
    for name in ("a", "b"):
        outcome = CaseWorld(scenario).run()
        write(scenario, scenario.seed, outcome, tmp_path / name)
        outputs.append({p: (tmp_path / name / p).read_bytes() for p in ("link_use.png",
                                                                      "link_use.csv")})  # fmt: skip
    assert outputs[0] == outputs[1]  # the same bytes for the same seed
    with (tmp_path / "a" / "link_use.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    sent = {n: s for n, (s, _) in outcome.link_bytes.items()}
    busiest = sorted(sent, key=lambda n: (-sent[n], n))[:BUSIEST]
    assert sorted({r["node"] for r in rows}) == sorted(busiest)
    for node in busiest:
        mine = [r for r in rows if r["node"] == node]
        assert [int(r["hour"]) for r in mine] == list(range(6 * 24))
        assert sum(int(r["bytes"]) for r in mine) == sent[node] > 0  # every byte, once
        up = next(n.up_kbit for n in scenario.nodes if n.name == node)
        assert all(int(r["capacity_kbit"]) == up for r in mine)
        assert max(float(r["share"]) for r in mine) <= 1.0  # a line carries no more
        if node.startswith("H-"):  # cut off on day 2: nothing leaves
            assert all(int(r["bytes"]) == 0 for r in mine if 48 <= int(r["hour"]) < 72)
    assert max(float(r["share"]) for r in rows if r["node"].startswith("H-")) > 0.9
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    for node in busiest:
        figures = summary["link_use"][node]
        assert figures["mb_sent"] == round(sent[node] / 1e6, 1)
    assert "link_use.png" in (tmp_path / "a" / "report.md").read_text()


def run_cli(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, "-m", "simulations", "run", *args, "--out", str(out), "--quiet"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return {"files": sorted(p.name for p in out.iterdir()),
            "summary": json.loads((out / "summary.json").read_text())}  # fmt: skip


@pytest.mark.slow
def test_the_cases_phase_alone_writes_no_directory_figures(tmp_path: Path) -> None:
    cases = run_cli(tmp_path / "cases", "pilot_2008_replay", "--phase", "cases")
    assert "directory.png" not in cases["files"]
    assert "directory_change_hours_to" not in cases["summary"]
    assert cases["summary"]["cases"] == 30
    assert cases["summary"]["background_kbit_s"]["total_median"] > 0
    alone = run_cli(tmp_path / "dir", "pilot_2008_replay", "--phase", "directory")
    assert alone["files"] == ["directory.png", "report.md", "summary.json"]
    assert "cases" not in alone["summary"]
    assert alone["summary"]["directory_change_hours_to"]["50%"] is not None
    live = run_cli(tmp_path / "live", "pilot_2008_replay", "--phase", "liveness")
    assert live["files"] == ["report.md", "summary.json"]
    assert live["summary"]["background_kbit_s"] == cases["summary"]["background_kbit_s"]


def test_compare_says_whether_each_measured_figure_lies_where_the_runs_fall(
    tmp_path: Path,
) -> None:
    from simulations.compare import compare, load_metrics

    runs = [
        {"transit_hours": {"median": 1.0 + k / 10, "p90": 2.0 + k / 10},
         "turnaround_hours": {"median": 10.0 + k, "p90": None}}
        for k in range(20)
    ]  # fmt: skip
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"transit_hours": {"median": 1.5, "p90": 9.0},
                                   "turnaround_hours": {"median": 50}}))  # fmt: skip
    rows = {r["figure"]: r for r in compare(runs, load_metrics(metrics))}
    assert rows["transit, median (h)"]["inside"] is True
    assert rows["transit, median (h)"]["runs_low"] >= 1.0
    assert rows["transit, median (h)"]["runs_high"] <= 2.9
    assert rows["transit, 90% within (h)"]["inside"] is False
    assert rows["turnaround, median (h)"]["inside"] is False
    assert rows["turnaround, 90% within (h)"]["inside"] is None  # neither side has it
    metrics.write_text(json.dumps({"transit_hours": {"median": "fast"}}))
    with pytest.raises(ScenarioError, match=r"'transit_hours.median' must be a number"):
        load_metrics(metrics)
    metrics.write_text("{}")
    with pytest.raises(ScenarioError, match="no 'transit_hours' nor 'turnaround_hours'"):
        load_metrics(metrics)
