"""python -m simulations run SCENARIO [--seed N] [--out DIR]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulations.casesim import CaseWorld
from simulations.directorysim import change_day, spread
from simulations.report import write
from simulations.scenario import ScenarioError, load_scenario

SCENARIOS = Path(__file__).parent / "scenarios"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario: summary.json, report.md, plots")
    run.add_argument("scenario", help="a TOML file, or the name of one in simulations/scenarios")
    run.add_argument("--seed", type=int, default=None, help="default: the scenario's")
    run.add_argument("--out", type=Path, default=None, help="default: sim-out/NAME")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    path = Path(args.scenario)
    if not path.exists() and (SCENARIOS / f"{args.scenario}.toml").exists():
        path = SCENARIOS / f"{args.scenario}.toml"
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        print(f"simulations: {exc}", file=sys.stderr)
        return 2
    world = CaseWorld(scenario, args.seed)
    out = args.out or Path("sim-out") / path.stem
    from tqdm import tqdm

    with tqdm(total=int(scenario.days), unit="day", disable=args.quiet, desc=scenario.name) as bar:
        outcome = world.run(progress=bar.update)
    directory = spread(scenario, world, publish_day=change_day(scenario))
    facts = write(scenario, world.seed, outcome, out, directory)
    print(
        f"{facts['cases']} cases, {facts['reports_back']} reports back; transit median "
        f"{facts['transit_hours']['median']} h; written to {out}/ (report.md, summary.json)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
