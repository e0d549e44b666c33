"""The simulator: the 1,000-node scenario over 30 simulated days (cases by the node's
case machine and upload engine, then a change of the directory by the node's gossip
engine), as ``python -m simulations run`` does it, against the issue's budget of 120 s
of wall time on this machine (2 cores); and an ensemble of that scenario over several
seeds (``--seeds``, worker processes), beside one seed run alone, for issue 27's
budget: 20 seeds in at most 10 minutes."""

from __future__ import annotations

import resource
import time
import tomllib
from pathlib import Path
from typing import Any

from bench.result import Result
from simulations.casesim import DAY, CaseWorld
from simulations.directorysim import change_day, spread
from simulations.ensemble import default_jobs, run_ensemble
from simulations.scenario import parse_scenario

SCENARIO = Path(__file__).parents[1] / "simulations" / "scenarios" / "network_1000.toml"
BUDGET_S = 120.0
ENSEMBLE_SEEDS = 20  # issue 27: 20 seeds...
ENSEMBLE_BUDGET_S = 600.0  # ...in at most 10 minutes
MEASURED_SEEDS = 4  # what the benchmark runs (the 20 are extrapolated from it)


def _data(quick: bool) -> dict[str, Any]:
    data = tomllib.loads(SCENARIO.read_text(encoding="utf-8"))
    if quick:  # a tenth of the nodes, a week
        data["days"] = 7
        for table in ("nodes", "readers", "senders"):
            for entry in data[table]:
                entry["count"] = max(1, entry.get("count", 1) // 10)
    return data


def simulation_1000_nodes(*, quick: bool = False) -> Result:
    data = _data(quick)
    scenario = parse_scenario(data, str(SCENARIO))
    start = time.perf_counter()
    world = CaseWorld(scenario)
    outcome = world.run()
    cases_s = time.perf_counter() - start
    directory = spread(scenario, world, publish_day=change_day(scenario))
    wall = time.perf_counter() - start
    simulated_s = scenario.days * DAY / 1000
    return Result(
        name="simulation_1000_nodes_vs_budget",
        value=wall,
        unit=f"s of wall time for {len(scenario.nodes)} nodes over {scenario.days:g} days "
        f"({len(outcome.cases)} cases, then a change of the directory)",
        baseline="the issue's budget for this run on this machine (120 s; a target, not run)",
        baseline_value=BUDGET_S,
        higher_is_better=False,
        target="under 120 s",
        extra={
            "simulated_s_per_wall_s": simulated_s / wall,
            "cases_phase_s": cases_s,
            "directory_hours_to_all": (directory.seconds_to["99.99%"] or 0) / 3600,
        },
    )


def simulation_1000_nodes_ensemble(*, quick: bool = False) -> Result:
    """The cases of the 1,000-node scenario over ``MEASURED_SEEDS`` seeds as ``--seeds``
    runs them (worker processes, one per core), against one seed run alone in this
    process: ratio = ensemble time / (seeds x one seed's time), under 1 by the parallel
    speed-up. The time of 20 seeds is extrapolated from the measured ones (each seed is
    an independent run of about the same size), and said so. On a machine shared with
    other work, wall times say more of the others' load than of the simulator: the
    processor time of the runs (this process's, and the workers' once reaped) is given
    too, and the 20 seeds extrapolated from it for cores of our own."""
    data = _data(quick)
    seeds = 2 if quick else MEASURED_SEEDS
    scenario = parse_scenario(data, str(SCENARIO))
    start, cpu = time.perf_counter(), time.process_time()
    CaseWorld(scenario, seed=1).run()
    single = time.perf_counter() - start
    single_cpu = time.process_time() - cpu
    jobs = default_jobs()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    ensemble = run_ensemble(data, str(SCENARIO), list(range(1, seeds + 1)), jobs=jobs)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    ensemble_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    per_seed = wall / seeds
    estimated = per_seed * ENSEMBLE_SEEDS
    on_free_cores = ensemble_cpu / seeds * ENSEMBLE_SEEDS / jobs
    cases = sum(r["facts"]["cases"] for r in ensemble.results) / seeds
    return Result(
        name="simulation_1000_nodes_ensemble_vs_one_seed_alone",
        value=wall,
        unit=f"s of wall time for {seeds} seeds of {len(scenario.nodes)} nodes over "
        f"{scenario.days:g} days ({cases:.0f} cases a seed) on {jobs} worker processes; "
        f"{ENSEMBLE_SEEDS} seeds extrapolated from these {seeds}: "
        f"{estimated:.0f} s (budget {ENSEMBLE_BUDGET_S:.0f} s); from their processor time, "
        f"on {jobs} cores of our own: {on_free_cores:.0f} s",
        baseline=f"{seeds} x one seed run alone in one process (cases only, as in the ensemble)",
        baseline_value=seeds * single,
        higher_is_better=False,
        target=f"{ENSEMBLE_SEEDS} seeds in at most {ENSEMBLE_BUDGET_S:.0f} s "
        "(extrapolated, not run)",
        extra={
            "one_seed_s": single,
            "one_seed_cpu_s": single_cpu,
            "ensemble_cpu_s": ensemble_cpu,
            "extrapolated_20_seeds_on_free_cores_s": on_free_cores,
            "seeds_measured": seeds,
            "workers": jobs,
            "extrapolated_20_seeds_s": estimated,
        },
    )


BENCHMARKS = {
    "simulation_1000_nodes": simulation_1000_nodes,
    "simulation_1000_nodes_ensemble": simulation_1000_nodes_ensemble,
}
