"""The benchmark runner runs and prints its JSON lines. No timing is asserted here:
benchmarks are read by people, side by side with their baselines."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

KEYS = {"name", "value", "unit", "baseline", "baseline_value", "ratio", "higher_is_better"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
@pytest.mark.timeout(1000)  # the transfer and delivery benchmarks start real processes
def test_every_benchmark_prints_one_json_line_with_its_baseline() -> None:
    names = run("--list").stdout.split()
    assert "bundle_seal_open_throughput" in names
    result = run("--quick")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {line["name"].split("_vs_")[0] for line in lines} >= {
        n for n in names if not n.startswith(("anonymise", "transport"))
    }
    assert len(lines) >= len(names)
    for line in lines:
        assert KEYS <= line.keys()
        assert line["value"] > 0
        assert line["baseline_value"] > 0
        # The ratio is of the measured values; the printed ones keep 4 significant figures.
        expected = line["value"] / line["baseline_value"]
        assert line["ratio"] == pytest.approx(expected, rel=0.002)


@pytest.mark.slow
def test_unknown_benchmark_is_named() -> None:
    result = run("no_such_bench")
    assert result.returncode == 2
    assert "no_such_bench" in result.stderr
