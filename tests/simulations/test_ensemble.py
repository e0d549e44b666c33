"""Ensembles and sweeps: seeds and grids parsed as an operator writes them, each figure a
mean with its 95% interval, the same bytes whatever the number of worker processes, and
figures for a window of the run."""

from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path

import pytest

from simulations.__main__ import main
from simulations.casesim import DAY, CaseWorld
from simulations.ensemble import (
    aggregate,
    grid,
    interval,
    parse_seeds,
    parse_set,
    run_ensemble,
    with_values,
    write_ensemble,
)
from simulations.report import Window, summary
from simulations.scenario import ScenarioError, parse_scenario
from tests.simulations.worlds import pooled

TINY = pooled(
    "tiny", days=10, seed=3, hospitals=2, readers=2, cases_per_week=10.0, cases_per_session=4
)


def test_seeds_and_sweeps_are_read_as_an_operator_writes_them() -> None:
    assert parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert parse_seeds("3,1,3-4") == [3, 1, 4]
    with pytest.raises(ScenarioError, match="--seeds"):
        parse_seeds("one-two")
    assert parse_set("readers.count=1,2,5") == ("readers.count", [1, 2, 5])
    assert parse_set("links.loss=0.01,0.05") == ("links.loss", [0.01, 0.05])
    with pytest.raises(ScenarioError, match="--set"):
        parse_set("readers.count")
    grid_points = grid([("a", [1, 2]), ("b", [0.1, 0.2])])
    assert grid_points == [
        (("a", 1), ("b", 0.1)), (("a", 1), ("b", 0.2)),
        (("a", 2), ("b", 0.1)), (("a", 2), ("b", 0.2)),
    ]  # fmt: skip
    changed = with_values(TINY, [("links.loss", 0.05), ("readers.count", 7), ("days", 4)])
    assert all(n["loss"] == 0.05 for n in changed["nodes"])  # links: every node
    assert changed["readers"][0]["count"] == 7
    assert changed["days"] == 4
    assert "loss" not in TINY["nodes"][0]  # the scenario itself is left alone
    with pytest.raises(ScenarioError, match="no \\[\\[wires\\]\\]"):
        with_values(TINY, [("wires.loss", 0.1)])


def test_the_interval_is_around_the_mean_and_narrows_with_more_seeds() -> None:
    assert interval([5.0]) == (5.0, 5.0)
    few = [10.0, 14.0, 9.0, 13.0]
    low, high = interval(few)
    assert low < sum(few) / len(few) < high
    many = few * 10
    low_many, high_many = interval(many)
    assert high_many - low_many < high - low
    assert aggregate([None, None])["mean"] is None
    assert aggregate([1.0, None, 3.0]) == {**aggregate([1.0, 3.0]), "n": 2}


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_ensemble_gives_the_same_bytes_with_one_worker_or_two(tmp_path: Path) -> None:
    sets = [("readers.count", [1, 3])]
    outputs = []
    for jobs in (1, 2):
        ensemble = run_ensemble(TINY, "tiny", [1, 2, 3], sets, cases=True, jobs=jobs)
        folder = tmp_path / f"jobs{jobs}"
        write_ensemble(ensemble, folder, folder / "cases.csv")
        outputs.append(_outputs(folder))
    assert outputs[0] == outputs[1]
    assert "table.csv" in outputs[0]
    assert "sweep_reading_median_h_by_readers_count.png" in outputs[0]
    facts = json.loads(outputs[0]["summary.json"])
    assert [p["readers.count"] for p in facts["points"]] == [1, 3]
    for point in facts["points"]:
        cases = point["cases"]
        assert point["seeds"] == 3
        assert cases["n"] == 3
        assert cases["min"] <= cases["low"] <= cases["mean"] <= cases["high"] <= cases["max"]
    # each run is the single run of its seed: the mean is theirs
    single = [
        summary(w.scenario, w.seed, w.run())["cases"]
        for w in (
            CaseWorld(parse_scenario(with_values(TINY, [("readers.count", 1)])), s)
            for s in (1, 2, 3)
        )
    ]
    assert facts["points"][0]["cases"]["mean"] == round(sum(single) / 3, 2)
    with (tmp_path / "jobs1" / "cases.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == round(sum(p["cases"]["mean"] * 3 for p in facts["points"]))
    assert {r["seed"] for r in rows} == {"1", "2", "3"}
    assert {r["readers.count"] for r in rows} == {"1", "3"}


def test_figures_for_a_window_count_only_the_cases_sent_in_it() -> None:
    world = CaseWorld(parse_scenario(TINY))
    outcome = world.run()
    window = Window.parse("day2-day5")
    facts = summary(world.scenario, world.seed, outcome, window)
    inside = [c for c in outcome.cases if 2 * DAY <= c["submitted_ms"] < 5 * DAY]
    assert 0 < facts["cases"] == len(inside) < len(outcome.cases)
    assert facts["late"] == sum(c["late"] for c in inside)
    assert facts["window"] == "day2-day5"
    with pytest.raises(ScenarioError, match="--window"):
        Window.parse("day5-day2")


def test_the_command_runs_a_sweep_and_writes_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tiny.toml"
    import tomli_w

    path.write_text(tomli_w.dumps(TINY))
    assert tomllib.loads(path.read_text())["name"] == "tiny"
    out = tmp_path / "out"
    code = main(
        ["run", str(path), "--seeds", "1-2", "--set", "readers.count=1,2", "--jobs", "2",
         "--window", "day0-day7", "--cases-csv", str(tmp_path / "cases.csv"),
         "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "readers.count" in printed
    assert "reading delay, median (h)" in printed
    with (out / "table.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["readers.count"] for r in table] == ["1", "2"]
    assert all(r["seeds"] == "2" for r in table)
    assert "seeds 1-2" in (out / "report.md").read_text()
    assert main(["run", str(path), "--seed", "1", "--seeds", "1-2"]) == 2
    assert main(["run", str(path), "--set", "wires.loss=0.1", "--quiet"]) == 2
    assert "no [[wires]]" in capsys.readouterr().err
