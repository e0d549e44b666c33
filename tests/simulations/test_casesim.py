"""Cases over a modelled network in virtual time, with the node's own case machine and
upload engine: deterministic, complete without faults, delayed by a cut and no more."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from protocol.bundle import choose_chunk_size
from simulations.casesim import DAY, CaseWorld, Layout, available_from
from simulations.directorysim import spread
from simulations.report import write
from simulations.scenario import ScenarioError, load_scenario, parse_scenario

SMALL = {
    "name": "small",
    "days": 20,
    "seed": 7,
    "latency_ms": {"europe/africa": 120},
    "nodes": [
        {"name": "Erasme", "region": "europe", "up_kbit": 20000, "down_kbit": 20000},
        {"name": "H-{i}", "count": 4, "region": "africa", "up_kbit": 256, "down_kbit": 1024},
    ],
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


def run(data: dict, seed: int | None = None) -> tuple[CaseWorld, list[dict]]:
    world = CaseWorld(parse_scenario(data), seed)
    return world, world.run().cases


def test_without_faults_every_case_arrives_and_its_report_comes_back() -> None:
    _, cases = run({**SMALL, "days": 30})
    finished = [c for c in cases if c["submitted_ms"] < 25 * DAY]  # time left to finish
    assert len(finished) >= 30
    assert all(c["state"] == "report_delivered" for c in finished)
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
    data = {**SMALL, "days": 30}
    data["nodes"] = [
        SMALL["nodes"][0],
        {**SMALL["nodes"][1], "power_cuts_per_month": 60, "power_cut_hours": [0.2, 2]},
    ]
    world, cases = run(data)
    assert world.outcome.chunk_failures > 0
    finished = [c for c in cases if c["submitted_ms"] < 25 * DAY]
    assert all(c["state"] == "report_delivered" for c in finished)


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
        "directory.png",
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
        ({"readers": [{**SMALL["readers"][0], "days": ["funday"]}]}, "'days' must be a list"),
        ({"readers": [{**SMALL["readers"][0], "hours": [20, 25]}]}, "'hours'"),
        (
            {"groups": [{"name": "g", "routing": "assign", "coordinator": "Zoé"}]},
            "'coordinator' must be a reader of the group",
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
    assert all(c["state"] == "report_delivered" for c in finished)
    assert world.relayed == len(cases)  # every case went through Erasme
    assert world.links["Erasme"].received >= sum(c["size"] for c in finished)
    assert world.links["Erasme"].sent >= sum(c["size"] for c in finished)


def test_a_node_that_goes_away_sends_its_cases_when_it_comes_back() -> None:
    data = {**SMALL, "days": 60}
    data["nodes"] = [
        SMALL["nodes"][0],
        {**SMALL["nodes"][1], "leaves_per_year": 20.0, "away_days": [3, 6]},
    ]
    world, cases = run(data)
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
        assert case["state"] == "report_delivered"
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
        assert case["state"] == "report_delivered"
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
    assert all(c["state"] == "report_delivered" for c in finished)
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
    assert all(c["state"] == "report_delivered" for c in finished)


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
    assert all(c["state"] == "report_delivered" for c in finished)
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
