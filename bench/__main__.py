"""python -m bench [--quick] [NAME ...]: run benchmarks, one JSON object per line."""

from __future__ import annotations

import argparse
import sys

from bench import (
    bench_bundle,
    bench_delivery,
    bench_envelope,
    bench_exposure,
    bench_gossip,
    bench_intake,
    bench_pipeline,
    bench_simulations,
    bench_smallbox,
    bench_transfer,
    bench_viewer,
)
from bench.result import Result

MODULES = (
    bench_bundle,
    bench_envelope,
    bench_gossip,
    bench_intake,
    bench_transfer,
    bench_delivery,
    bench_exposure,
    bench_viewer,
    bench_pipeline,
    bench_simulations,
    bench_smallbox,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    parser.add_argument("--list", action="store_true", help="list the benchmarks")
    args = parser.parse_args(argv)
    available = {name: fn for module in MODULES for name, fn in module.BENCHMARKS.items()}
    if args.list:
        print("\n".join(available))
        return 0
    unknown = [n for n in args.names if n not in available]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    for name in args.names or list(available):
        produced = available[name](quick=args.quick)
        results: list[Result] = produced if isinstance(produced, list) else [produced]
        for result in results:
            print(result.to_json(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
