"""python -m simulations run SCENARIO [--seed N | --seeds 1-20] [--set KEY=V1,V2 ...]
[--window day20-day30] [--cases-csv FILE] [--jobs N] [--out DIR]
[--phase all|cases|directory|liveness]
python -m simulations compare SCENARIO --metrics FILE [--seeds 1-20] [--jobs N] [--json]
(exits 1 when a measured figure lies outside the simulated runs' 95% range)"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulations.casesim import CaseWorld
from simulations.compare import as_json, compare, load_metrics, outside, text
from simulations.directorysim import change_day, spread
from simulations.ensemble import parse_seeds, parse_set, run_ensemble, write_ensemble
from simulations.report import Window, write, write_phase
from simulations.scenario import ScenarioError, parse_scenario, read_scenario

SCENARIOS = Path(__file__).parent / "scenarios"
PHASES = ("all", "cases", "directory", "liveness")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario: summary.json, report.md, plots")
    run.add_argument("scenario", help="a TOML file, or the name of one in simulations/scenarios")
    run.add_argument("--seed", type=int, default=None, help="default: the scenario's")
    run.add_argument(
        "--seeds", default=None, help="an ensemble: 1-20 or 1,4,9 (mean and 95%% interval)"
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a sweep: readers.count=1,2,5 sets count in every [[readers]] (links = nodes); "
        "several --set make a grid",
    )
    run.add_argument("--window", default=None, help="figures for the cases sent day20-day30")
    run.add_argument("--cases-csv", type=Path, default=None, help="every case, one row each")
    run.add_argument("--jobs", type=int, default=None, help="worker processes (default: cores)")
    run.add_argument("--out", type=Path, default=None, help="default: sim-out/NAME")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--phase",
        choices=PHASES,
        default="all",
        help="cases (and their links, gossip and liveness bandwidth), directory (a change "
        "spreading), liveness (gossip and liveness bandwidth only), or all (cases and "
        "directory)",
    )
    cmp = sub.add_parser(
        "compare", help="the scenario simulated beside the figures a node measured"
    )
    cmp.add_argument("scenario", help="a TOML file (tsfnode scenario DIR --out FILE)")
    cmp.add_argument("--metrics", type=Path, required=True, help="tsfnode scenario --metrics")
    cmp.add_argument("--seeds", default="1-20", help="default 1-20")
    cmp.add_argument("--jobs", type=int, default=None, help="worker processes (default: cores)")
    cmp.add_argument("--json", action="store_true", help="the rows as JSON, not a table")
    args = parser.parse_args(argv)
    if args.command == "compare":
        return _compare(args)
    path = _scenario_path(args.scenario)
    try:
        if not path.exists():
            raise ScenarioError(f"{path}: no such scenario file")
        data = read_scenario(path)
        scenario = parse_scenario(data, str(path))
        window = Window.parse(args.window) if args.window else None
        if args.seed is not None and args.seeds:
            raise ScenarioError("say --seed or --seeds, not both")
        if args.jobs is not None and args.jobs < 1:
            raise ScenarioError("--jobs must be at least 1")
        seeds = parse_seeds(args.seeds) if args.seeds else None
        sets = [parse_set(s) for s in args.set]
        if (seeds is not None or sets) and args.phase not in ("all", "cases"):
            raise ScenarioError(f"--phase {args.phase} runs for one seed (no --seeds, --set)")
    except ScenarioError as exc:
        print(f"simulations: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("sim-out") / path.stem
    from tqdm import tqdm

    if seeds is not None or sets:
        seeds = seeds or [scenario.seed]
        total = len(seeds) * max(1, _grid_size(sets))
        with tqdm(total=total, unit="run", disable=args.quiet, desc=scenario.name) as bar:
            try:
                ensemble = run_ensemble(
                    data,
                    str(path),
                    seeds,
                    sets,
                    window=window,
                    cases=args.cases_csv is not None,
                    jobs=args.jobs,
                    progress=bar.update,
                )
            except ScenarioError as exc:
                print(f"simulations: {exc}", file=sys.stderr)
                return 2
        print(write_ensemble(ensemble, out, args.cases_csv))
        print(f"written to {out}/ (report.md, summary.json, table.csv)")
        return 0
    world = CaseWorld(scenario, args.seed)
    if args.phase in ("directory", "liveness"):
        directory = None
        if args.phase == "directory":
            directory = spread(scenario, world, publish_day=change_day(scenario))
        facts = write_phase(scenario, world, out, directory)
        print(f"{args.phase}: written to {out}/ (report.md, summary.json)")
        return 0
    with tqdm(total=int(scenario.days), unit="day", disable=args.quiet, desc=scenario.name) as bar:
        outcome = world.run(progress=bar.update)
    directory = None
    if args.phase == "all":
        directory = spread(scenario, world, publish_day=change_day(scenario))
    facts = write(
        scenario, world.seed, outcome, out, directory, window=window, cases_csv=args.cases_csv
    )
    print(
        f"{facts['cases']} cases, {facts['reports_back']} reports back, {facts['late']} late; "
        f"transit median {facts['transit_hours']['median']} h, reading delay median "
        f"{facts['reading_delay_hours']['median']} h; written to {out}/ (report.md, summary.json)"
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    path = _scenario_path(args.scenario)
    try:
        data = read_scenario(path)
        parse_scenario(data, str(path))
        measured = load_metrics(args.metrics)
        seeds = parse_seeds(args.seeds)
        ensemble = run_ensemble(data, str(path), seeds, [], jobs=args.jobs)
    except ScenarioError as exc:
        print(f"simulations: {exc}", file=sys.stderr)
        return 2
    runs = [r["facts"] for r in ensemble.results]
    rows = compare(runs, measured)
    if args.json:
        sys.stdout.write(as_json(rows, len(seeds)))
    else:
        print(text(rows, len(seeds)))
    return 1 if outside(rows) else 0


def _scenario_path(name: str) -> Path:
    path = Path(name)
    if not path.exists() and (SCENARIOS / f"{name}.toml").exists():
        path = SCENARIOS / f"{name}.toml"
    return path


def _grid_size(sets: list[tuple[str, list[object]]]) -> int:
    size = 1
    for _, values in sets:
        size *= len(values)
    return size


if __name__ == "__main__":
    raise SystemExit(main())
