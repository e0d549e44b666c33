"""Cases over a modelled network in virtual time, with the node's own case machine and
upload engine: deterministic, complete without faults, delayed by a cut and no more."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.bundle import choose_chunk_size
from simulations.casesim import DAY, CaseWorld, Layout, available_from, mathis_rate
from simulations.directorysim import spread
from simulations.report import write
from simulations.scenario import ScenarioError, load_scenario, parse_scenario
from tests.simulations.worlds import europe_africa, pooled

SMALL = {
    "name": "small",
    "days": 20,
    "seed": 7,
    **europe_africa(4, 256, 1024),
    "readers": [
        {"name": "Anne", "node": "Erasme", "group": "g", "reading_hours": [2, 24]},
        {"name": "Marie", "node": "Erasme", "group": "g", "reading_hours": [2, 24]},
    ],
    "senders": [
        {"node": "H-{i}", "count": 3, "cases_per_week": 3.0, "group": "g"},
        {"node": "H-3", "cases_per_week": 2.0, "pair": "Marie"},
    ],
    "studies": [
        {"kind": "photo", "weight": 2, "mb": [1, 3]},
        {"kind": "CT", "weight": 1, "mb": [20, 60]},
    ],
}


def hospitals_that(days: int, **traits: object) -> dict:
    """SMALL over ``days``, its hospitals with these ``traits`` (power cuts, leaving)."""
    return {**SMALL, "days": days, "nodes": [SMALL["nodes"][0], {**SMALL["nodes"][1], **traits}]}


def run(data: dict, seed: int | None = None) -> tuple[CaseWorld, list[dict]]:
    world = CaseWorld(parse_scenario(data), seed)
    return world, world.run().cases


def test_without_faults_every_case_arrives_and_its_report_comes_back() -> None:
    _, cases = run({**SMALL, "days": 30})
    finished = [c for c in cases if c["submitted_ms"] < 25 * DAY]  # time left to finish
    assert len(finished) >= 30
    assert all(c["state"] in ("report_delivered", "evaluated") for c in finished)
    for case in finished:
        # at least the study's own time on a 256 kbit/s uplink
        assert case["transit_ms"] >= case["size"] * 8 / 256_000 * 1000
        assert case["turnaround_ms"] > case["transit_ms"]
    assert {c["reader"] for c in cases} == {"Anne", "Marie"}


def test_a_cut_holds_the_cases_of_the_region_until_it_heals() -> None:
    cut = {**SMALL, "days": 30, "cuts": [{"region": "africa", "start_day": 5, "days": 10}]}
    _, cases = run(cut)
    during = [c for c in cases if 5 * DAY <= c["submitted_ms"] < 15 * DAY]
    assert during
    for case in during:
        delivered = case["submitted_ms"] + case["transit_ms"]
        assert delivered >= 15 * DAY  # nothing crossed the cut
        assert delivered < 15 * DAY + DAY  # and they came soon after it healed
    before = [c for c in cases if c["submitted_ms"] < 4 * DAY]
    assert all(c["transit_ms"] < DAY for c in before)


def test_power_cuts_make_chunks_go_again_and_every_case_still_arrives() -> None:
    world, cases = run(hospitals_that(30, power_cuts_per_month=60, power_cut_hours=[0.2, 2]))
    assert world.outcome.chunk_failures > 0
    finished = [c for c in cases if c["submitted_ms"] < 25 * DAY]
    assert all(c["state"] in ("report_delivered", "evaluated") for c in finished)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_cases(tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        world = CaseWorld(parse_scenario(SMALL))
        outcome = world.run()
        directory = spread(world.scenario, world, publish_day=3)
        write(world.scenario, world.seed, outcome, tmp_path / name, directory)
        outputs.append({p.name: p.read_bytes() for p in sorted((tmp_path / name).iterdir())})
    assert set(outputs[0]) == {
        "summary.json", "report.md", "turnaround.png", "backlog.png", "links.png",
        "directory.png", "link_use.png", "link_use.csv",
    }  # fmt: skip
    assert outputs[0] == outputs[1]
    _, other = run(SMALL, seed=8)
    _, same = run(SMALL)
    assert [c["submitted_ms"] for c in other] != [c["submitted_ms"] for c in same]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"days": "ten"}, "'days' must be float"),
        ({"nodes": []}, "no [[nodes]]"),
        ({"senders": [{"node": "Nowhere", "cases_per_week": 1.0, "group": "g"}]}, "'Nowhere'"),
        ({"senders": [{"node": "H-0", "cases_per_week": 1.0, "pair": "Zoé"}]}, "pair 'Zoé'"),
        ({"cuts": [{"region": "mars", "start_day": 1, "days": 1}]}, "region 'mars'"),
        ({"studies": []}, "no [[studies]]"),
        ({"nodes": [{**SMALL["nodes"][0], "loss": 0.9}]}, "'loss' must be from 0 to 0.5"),
        (
            {"nodes": [{**SMALL["nodes"][0], "delivery_overhead_s": [1, -2]}]},
            "'delivery_overhead_s' must be a list of seconds >= 0",
        ),
        ({"readers": [{**SMALL["readers"][0], "days": ["funday"]}]}, "'days' must be a list"),
        ({"readers": [{**SMALL["readers"][0], "hours": [20, 25]}]}, "'hours'"),
        (
            {"groups": [{"name": "g", "routing": "assign", "coordinator": "Zoé"}]},
            "'coordinator' must be a reader of the group",
        ),
        ({"events": [{"kind": "flood", "node": "H-0"}]}, "'kind' must be \"node_down\""),
        ({"events": [{"kind": "node_down", "node": "Mars", "from": 1, "to": 2}]}, "'Mars'"),
        ({"events": [{"kind": "node_down", "node": "H-0", "from": "day5"}]}, "'from' and 'to'"),
        (
            {"events": [{"kind": "node_down", "node": "H-0", "from": "day5", "to": "day2"}]},
            "'to' must come after",
        ),
        (
            {"events": [{"kind": "node_down", "node": "H-0", "from": "d5", "to": "day9"}]},
            "'from' must be a day",
        ),
        (
            {
                "nodes": [
                    *SMALL["nodes"],
                    {
                        **SMALL["nodes"][0],
                        "name": "X",
                        "nat": True,
                        "relays": ["Erasme", "Nowhere"],
                    },
                ]
            },
            "relay 'Nowhere' is not another node",
        ),
        (
            {"readers": [{**SMALL["readers"][0], "sessions_per_week": 2}]},
            "'sessions_per_week' needs 'cases_per_session'",
        ),
    ],
)
def test_a_wrong_scenario_names_what_is_wrong(change: dict, named: str) -> None:
    with pytest.raises(ScenarioError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_scenario({**SMALL, **change})


def test_the_shipped_scenarios_load_and_the_command_writes_a_report(tmp_path: Path) -> None:
    shipped = sorted((Path(__file__).parents[2] / "simulations" / "scenarios").glob("*.toml"))
    assert {p.stem for p in shipped} >= {"pilot_2008", "west_africa_cable_cut"}
    for path in shipped:
        load_scenario(path)
    command = [sys.executable, "-m", "simulations", "run", "pilot_2008", "--quiet"]
    done = subprocess.run(
        [*command, "--out", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "report.md").read_text()
    assert "# Simulation: 2008 pilot" in report
    assert "reports back" in report
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ndays = 3\n')
    refused = subprocess.run(
        [sys.executable, "-m", "simulations", "run", str(bad)], capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert "no [[nodes]]" in refused.stderr


def test_a_change_of_the_directory_reaches_every_node_and_waits_for_a_cut_to_heal() -> None:
    world = CaseWorld(parse_scenario(SMALL))
    free = spread(world.scenario, world, publish_day=2)
    assert free.points[-1][1] == 1.0  # every node holds it
    assert free.seconds_to["99.99%"] is not None
    assert free.seconds_to["99.99%"] < 3600  # minutes on a network without faults
    cut = {**SMALL, "cuts": [{"region": "africa", "start_day": 1, "days": 3}]}
    world = CaseWorld(parse_scenario(cut))
    held = spread(world.scenario, world, publish_day=2)
    before_heal = [share for t, share in held.points if t < 2 * DAY / 1000]
    assert max(before_heal) == pytest.approx(1 / 5)  # Erasme alone: the others are cut off
    assert held.seconds_to["50%"] is not None
    assert held.seconds_to["50%"] >= 2 * DAY / 1000  # not before the cut heals (day 4)
    assert held.points[-1][1] == 1.0  # and then all of them


def test_a_reader_behind_nat_gets_every_case_through_its_relay() -> None:
    data = {
        **SMALL,
        "nodes": [
            *SMALL["nodes"],
            {"name": "Home", "region": "europe", "up_kbit": 10000, "down_kbit": 10000,
             "nat": True, "relay": "Erasme"},
        ],
        "readers": [{"name": "Anne", "node": "Home", "group": "g", "reading_hours": [2, 24]}],
        "senders": [{"node": "H-{i}", "count": 4, "cases_per_week": 3.0, "group": "g"}],
    }  # fmt: skip
    world, cases = run(data)
    finished = [c for c in cases if c["submitted_ms"] < 15 * DAY]
    assert finished
    assert all(c["state"] in ("report_delivered", "evaluated") for c in finished)
    assert world.relayed == len(cases)  # every case went through Erasme
    assert world.links["Erasme"].received >= sum(c["size"] for c in finished)
    assert world.links["Erasme"].sent >= sum(c["size"] for c in finished)


def test_a_node_that_goes_away_sends_its_cases_when_it_comes_back() -> None:
    world, cases = run(hospitals_that(60, leaves_per_year=20.0, away_days=[3, 6]))
    away = {n: spans for n, spans in world.down.items() if spans}
    assert away  # some hospitals went away for days
    held = 0
    for case in cases:
        for start, end in world.down[case["sender_node"]]:
            if start <= case["submitted_ms"] < end and case["transit_ms"] is not None:
                held += 1
                assert case["submitted_ms"] + case["transit_ms"] >= end
    assert held > 0


def test_a_case_left_unread_at_its_due_time_goes_to_another_reader_of_the_group() -> None:
    data = {
        **SMALL,
        "days": 40,
        "delay_hours": 48,
        "readers": [
            {"name": "Late", "node": "Erasme", "group": "g", "reading_hours": [100, 150]},
            {"name": "Prompt", "node": "Erasme", "group": "g", "reading_hours": [2, 12]},
        ],
        "senders": [{"node": "H-0", "cases_per_week": 3.0, "pair": "Late"}],
    }
    _, cases = run(data)
    finished = [c for c in cases if c["submitted_ms"] < 30 * DAY]
    assert finished
    for case in finished:  # every one was late with its pair's reader
        assert case["escalations"] == 1
        assert case["reader"] == "Prompt"
        assert case["state"] in ("report_delivered", "evaluated")
        assert case["turnaround_ms"] < 48 * 3_600_000 + 24 * 3_600_000


def test_beyond_the_pairs_weekly_quota_the_reader_accepts_before_reading() -> None:
    data = {
        **SMALL,
        "days": 40,
        "senders": [{"node": "H-0", "cases_per_week": 4.0, "pair": "Marie", "weekly_quota": 1}],
    }
    _, cases = run(data)
    finished = [c for c in cases if c["submitted_ms"] < 30 * DAY]
    over = [c for c in finished if c["over_quota"]]
    within = [c for c in finished if not c["over_quota"]]
    assert over
    assert within
    for case in finished:
        assert case["state"] in ("report_delivered", "evaluated")
        assert case["reader"] == "Marie"
    week: list[int] = []  # at most one case a week within the quota, as the sender's node counts
    for case in sorted(cases, key=lambda c: c["submitted_ms"]):
        week = [t for t in week if t > case["submitted_ms"] - 7 * DAY]
        assert case["over_quota"] == (len(week) >= 1)
        week.append(case["submitted_ms"])


def test_chunk_requests_that_fail_are_sent_again_and_cost_time() -> None:
    lossy = {**SMALL, "days": 30}
    lossy["nodes"] = [SMALL["nodes"][0], {**SMALL["nodes"][1], "chunk_loss": 0.05}]
    world, cases = run(lossy)
    _, clean = run({**SMALL, "days": 30})
    sent = sum(Layout(c["size"], choose_chunk_size(c["size"])).chunk_count for c in cases)
    assert 0.03 * sent < world.outcome.chunks_lost < 0.08 * sent  # about 5% of the chunks
    finished = [c for c in cases if c["submitted_ms"] < 25 * DAY]
    assert all(c["state"] in ("report_delivered", "evaluated") for c in finished)
    slower = sum(c["transit_ms"] for c in finished)
    assert slower > sum(c["transit_ms"] for c in clean if c["submitted_ms"] < 25 * DAY)


def test_a_satellite_hop_adds_its_latency_to_every_chunk() -> None:
    data = {**SMALL}
    data["nodes"] = [SMALL["nodes"][0], {**SMALL["nodes"][1], "extra_latency_ms": 300}]
    world, cases = run(data)
    _, plain = run(SMALL)
    assert world.latency("H-0", "Erasme") == 120 + 300
    compared = 0
    for far, near in zip(cases, plain, strict=True):  # the same seed: the same cases
        assert far["submitted_ms"] == near["submitted_ms"]
        if far["transit_ms"] is not None and near["transit_ms"] is not None:
            assert far["transit_ms"] >= near["transit_ms"] + 300  # at least one chunk's wait
            compared += 1
    assert compared > 10


def test_a_full_relay_makes_deposits_wait_and_never_holds_beyond_its_quota() -> None:
    data = {
        **SMALL,
        "days": 30,
        "nodes": [
            {**SMALL["nodes"][0], "relay_quota_mb": 100},
            SMALL["nodes"][1],
            {"name": "Home", "region": "europe", "up_kbit": 2000, "down_kbit": 2000,
             "nat": True, "relay": "Erasme"},
        ],
        "readers": [{"name": "Anne", "node": "Home", "group": "g", "reading_hours": [2, 24]}],
        "senders": [{"node": "H-{i}", "count": 4, "cases_per_week": 5.0, "group": "g"}],
        "studies": [{"kind": "CT", "weight": 1, "mb": [40, 60]}],
    }  # fmt: skip
    world, cases = run(data)
    assert world.outcome.relay_full_waits > 0
    assert 0 < world.outcome.relay_peak["Erasme"] <= 100_000_000
    finished = [c for c in cases if c["submitted_ms"] < 20 * DAY]
    assert all(c["state"] in ("report_delivered", "evaluated") for c in finished)


def test_readers_sign_only_when_they_read() -> None:
    data = {**SMALL, "days": 40, "delay_hours": 24 * 7}
    data["readers"] = [{**r, "days": ["sat", "sun"], "hours": [18, 23]} for r in SMALL["readers"]]
    _, cases = run(data)
    reported = [c["reported_ms"] for c in cases if c["reported_ms"] is not None]
    assert len(reported) > 20
    for at in reported:
        assert (at // DAY) % 7 in (5, 6)  # day 0 is a Monday
        assert 18 * 3_600_000 <= at % DAY < 23 * 3_600_000


def test_a_coordinator_assigns_each_case_to_the_least_loaded_reader() -> None:
    data = {
        **SMALL,
        "days": 30,
        "readers": [
            *SMALL["readers"],
            {"name": "Paul", "node": "Erasme", "group": "g", "reading_hours": [2, 24]},
        ],
        "groups": [
            {"name": "g", "routing": "assign", "coordinator": "Anne", "assign_hours": [2, 6]}
        ],
        "senders": [{"node": "H-{i}", "count": 4, "cases_per_week": 4.0, "group": "g"}],
    }
    _, cases = run(data)
    finished = [c for c in cases if c["submitted_ms"] < 25 * DAY]
    assert all(c["state"] in ("report_delivered", "evaluated") for c in finished)
    for case in finished:
        waited = case["assigned_ms"] - case["delivered_ms"]
        assert 2 * 3_600_000 <= waited <= 6 * 3_600_000 + 1
    counts = {
        name: sum(c["reader"] == name for c in finished) for name in ("Anne", "Marie", "Paul")
    }
    assert min(counts.values()) >= len(finished) // 3 - 3  # shared out, not one reader's


def test_the_report_shows_the_pairs_over_quota_or_read_late(tmp_path: Path) -> None:
    data = {
        **SMALL,
        "days": 30,
        "senders": [
            {"node": "H-0", "cases_per_week": 4.0, "pair": "Marie", "weekly_quota": 1},
            {"node": "H-1", "cases_per_week": 1.0, "pair": "Anne"},
        ],
    }
    world = CaseWorld(parse_scenario(data))
    facts = write(world.scenario, world.seed, world.run(), tmp_path)
    marie = facts["pairs"]["H-0 -> Marie"]
    assert marie["over_quota"] > 0
    assert facts["pairs"]["H-1 -> Anne"]["over_quota"] == 0
    assert (tmp_path / "pairs.png").stat().st_size > 1000
    report = (tmp_path / "report.md").read_text()
    assert "## Pairs over quota or late" in report
    assert f"| H-0 -> Marie | {marie['cases']} | {marie['over_quota']} |" in report


def test_in_a_pool_the_member_who_reads_soonest_takes_the_case() -> None:
    data = {
        **SMALL,
        "days": 20,
        "delay_hours": 24 * 7,
        "readers": [
            {"name": "Day", "node": "Erasme", "group": "g", "hours": [8, 12]},
            {"name": "Night", "node": "Erasme", "group": "g", "hours": [20, 23]},
        ],
        "groups": [{"name": "g", "routing": "pool"}],
        "senders": [{"node": "H-{i}", "count": 4, "cases_per_week": 3.0, "group": "g"}],
    }
    world, cases = run(data)
    specs = {r.name: r for r in world.scenario.readers}
    assert {c["reader"] for c in cases} == {"Day", "Night"}
    for case in cases:
        at = case["submitted_ms"]
        first = min(specs.values(), key=lambda r: available_from(r, at))
        assert case["reader"] == first.name


BUSY = pooled(
    "busy", days=21, seed=27, hospitals=4, readers=10, cases_per_week=50.0, cases_per_session=8
)


def _readers(count: int) -> dict:
    return {**BUSY, "readers": [{**BUSY["readers"][0], "count": count}]}


def _median_wait_hours(world: CaseWorld, cases: list[dict]) -> float:
    waits = sorted(
        ((c["reported_ms"] or world.end) - c["delivered_ms"]) / 3_600_000
        for c in cases
        if c["delivered_ms"] is not None
    )
    return waits[len(waits) // 2]


def test_readers_with_a_capacity_read_later_the_more_cases_each_has() -> None:
    medians = {}
    for count in (1, 2, 10, 40):
        world, cases = run(_readers(count))
        medians[count] = _median_wait_hours(world, cases)
        sessions = {}  # no reader reads more than 8 cases a session, one after another
        for c in cases:
            if c["reported_ms"] is not None:
                sessions.setdefault((c["read_by"], c["reported_ms"] // 3_600_000 // 24), []).append(
                    c
                )
        assert max(len(v) for v in sessions.values()) <= 8 * 2  # two sessions a day at most
    # 200 cases a week against 24 a week per reader: one reader's pool only grows
    assert medians[1] > 7 * 24
    assert medians[1] > medians[2] > medians[10] >= medians[40]
    assert medians[10] < 48
    assert medians[40] < 24


def test_a_reader_reads_at_most_so_many_cases_a_session_oldest_first() -> None:
    _, cases = run(_readers(1))
    read = sorted(
        (c for c in cases if c["reported_ms"] is not None), key=lambda c: c["reported_ms"]
    )
    assert read
    runs: list[list[dict]] = [[read[0]]]
    for c in read[1:]:  # a session: reports 20 minutes apart
        if c["reported_ms"] - runs[-1][-1]["reported_ms"] <= 20 * 60_000 + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    assert max(len(r) for r in runs) == 8
    assert len(runs) <= 3 * 3 + 1  # three sessions a week over three weeks
    delivered = [c["delivered_ms"] for c in read]
    assert delivered == sorted(delivered)  # the pool is read oldest first


def test_late_means_read_after_the_due_time_or_escalated_and_the_report_counts_it(
    tmp_path: Path,
) -> None:
    world = CaseWorld(parse_scenario(_readers(1)))
    outcome = world.run()
    csv_path = tmp_path / "cases.csv"
    facts = write(world.scenario, world.seed, outcome, tmp_path, cases_csv=csv_path)
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == facts["cases"] == len(outcome.cases)
    assert facts["late"] == sum(int(r["late"]) for r in rows) > 100
    assert facts["escalated"] == sum(1 for r in rows if int(r["escalations"]) > 0)
    assert facts["unread"] == sum(1 for r in rows if r["delivered_h"] and not r["read_h"])
    assert sum(p["late"] for p in facts["pairs"].values()) == facts["late"]
    delay = world.scenario.delay_hours
    for r in rows:  # each flag as defined: escalated, or read (or unread at the end) past due
        if int(r["escalations"]):
            assert r["late"] == "1"
        elif r["delivered_h"]:
            read_h = float(r["read_h"]) if r["read_h"] else world.end / 3_600_000
            assert r["late"] == str(int(read_h > float(r["delivered_h"]) + delay + 1e-3))
    report = (tmp_path / "report.md").read_text()
    assert f"{facts['late']} late" in report
    assert "no case was late" not in report


def test_a_node_down_event_holds_its_transfers_until_it_is_back() -> None:
    data = {
        **SMALL,
        "days": 30,
        "events": [{"kind": "node_down", "node": "H-0", "from": "day5", "to": "day9"}],
    }
    world, cases = run(data)
    assert (5 * DAY, 9 * DAY) in world.down["H-0"]
    held = [
        c for c in cases if c["sender_node"] == "H-0" and 5 * DAY <= c["submitted_ms"] < 9 * DAY
    ]
    assert held
    for case in held:
        assert case["delivered_ms"] >= 9 * DAY
    others = [
        c for c in cases if c["sender_node"] == "H-1" and 5 * DAY <= c["submitted_ms"] < 8 * DAY
    ]
    assert others
    assert all(c["delivered_ms"] < 9 * DAY for c in others)


def test_mail_for_a_node_behind_nat_goes_to_its_next_relay_while_the_first_is_down() -> None:
    data = {
        **SMALL,
        "days": 20,
        "nodes": [
            *SMALL["nodes"],
            {"name": "Paris", "region": "europe", "up_kbit": 20000, "down_kbit": 20000},
            {"name": "Home", "region": "europe", "up_kbit": 10000, "down_kbit": 10000,
             "nat": True, "relays": ["Erasme", "Paris"]},
        ],
        "readers": [{"name": "Anne", "node": "Home", "group": "g", "reading_hours": [2, 24]}],
        "senders": [{"node": "H-{i}", "count": 4, "cases_per_week": 3.0, "group": "g"}],
        "events": [{"kind": "node_down", "node": "Erasme", "from": "day5", "to": "day8"}],
    }  # fmt: skip
    world, cases = run(data)
    assert world.outcome.relay_fallbacks > 0
    assert world.links["Paris"].received > 0
    during = [c for c in cases if 5 * DAY <= c["submitted_ms"] < 7 * DAY]
    assert during
    for case in during:  # through Paris, not waiting three days for Erasme
        assert case["delivered_ms"] < 8 * DAY
    assert world.relay_for("H-0", "Home", 6 * DAY) == "Paris"
    assert world.relay_for("H-0", "Home", 9 * DAY) == "Erasme"
    assert world.relay_for("Erasme", "Home", 9 * DAY) == ""  # a relay holds mail itself


def test_packet_loss_lowers_the_rate_as_tcp_does_and_a_daytime_cap_holds_the_uplink() -> None:
    assert mathis_rate(0.0, 0.24) == math.inf
    # 1% loss over 240 ms: 1460 / (0.24 * sqrt(0.02 / 3)) = about 74.5 kB/s
    assert mathis_rate(0.01, 0.24) == pytest.approx(74_500, rel=0.01)
    assert mathis_rate(0.04, 0.24) == pytest.approx(mathis_rate(0.01, 0.24) / 2)
    fast = {"name": "H-{i}", "count": 4, "region": "africa", "up_kbit": 8000, "down_kbit": 8000}
    clean = CaseWorld(parse_scenario({**SMALL, "nodes": [SMALL["nodes"][0], fast]}))
    lossy = CaseWorld(
        parse_scenario({**SMALL, "nodes": [SMALL["nodes"][0], {**fast, "loss": 0.02}]})
    )
    assert clean.rate("H-0", "Erasme", 0) == 1_000_000  # the line
    assert lossy.rate("H-0", "Erasme", 0) == pytest.approx(
        mathis_rate(1 - 0.98, 2 * 0.120), rel=1e-9
    )
    clean_cases, lossy_cases = clean.run().cases, lossy.run().cases
    assert lossy.outcome.chunks_lost == 0  # TCP hides the loss: it costs time, not chunks
    assert sum(c["transit_ms"] or 0 for c in lossy_cases) > 2 * sum(
        c["transit_ms"] or 0 for c in clean_cases
    )
    capped = CaseWorld(
        parse_scenario(
            {
                **SMALL,
                "nodes": [SMALL["nodes"][0], {**fast, "day_up_kbit": 64, "day_hours": [6, 20]}],
            }
        )
    )
    assert capped.rate("H-0", "Erasme", 12 * 3_600_000) == 8_000  # by day: 64 kbit/s
    assert capped.rate("H-0", "Erasme", 22 * 3_600_000) == 1_000_000  # at night: the line


LONE = {  # one hospital sending 1 MB photos to its pair at Erasme, its link idle between
    **SMALL,
    "days": 14,
    "readers": [{"name": "Marie", "node": "Erasme", "group": "g", "reading_hours": [2, 24]}],
    "senders": [{"node": "H-0", "cases_per_week": 5.0, "pair": "Marie"}],
    "studies": [{"kind": "photo", "weight": 1, "mb": [1, 1]}],
}
OVERHEAD_S = [20, 40, 60, 80]


def test_a_nodes_own_work_per_delivery_gives_transit_its_spread_over_seeds() -> None:
    from simulations.compare import compare
    from simulations.report import summary

    def runs(data: dict) -> tuple[list[dict], list[int]]:
        found, transits = [], []
        for seed in range(1, 13):
            world = CaseWorld(parse_scenario(data), seed)
            outcome = world.run()
            found.append(summary(world.scenario, seed, outcome))
            transits += [c["transit_ms"] for c in outcome.cases if c["transit_ms"] is not None]
        return found, transits

    hospital = {**SMALL["nodes"][1], "delivery_overhead_s": OVERHEAD_S}
    plain, bare = runs(LONE)
    worked, with_work = runs({**LONE, "nodes": [SMALL["nodes"][0], hospital]})
    # Without it, a case on an idle link takes its bytes and the latency, in every seed
    (wire,) = set(bare)
    assert len(bare) > 60
    # With it, each delivery waits one of the measured values first, drawn per seed
    assert {t - wire for t in with_work} == {s * 1000 for s in OVERHEAD_S}
    measured = {"transit_hours": {"median": (wire + 50_000) / 3_600_000, "p90": None}}
    row, bare_row = compare(worked, measured)[0], compare(plain, measured)[0]
    assert row["figure"] == "transit, median (h)"
    assert (wire + 20_000) / 3_600_000 <= row["runs_low"] < row["runs_high"]
    assert row["runs_high"] <= (wire + 80_000) / 3_600_000
    assert row["inside"] is True
    assert bare_row["runs_low"] == bare_row["runs_high"]  # the zero-width range it had
    assert bare_row["inside"] is False
    again = CaseWorld(parse_scenario({**LONE, "nodes": [SMALL["nodes"][0], hospital]}), 3)
    assert again.run().cases == CaseWorld(again.scenario, 3).run().cases  # the same draws
