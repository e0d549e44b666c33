"""The benchmark runner runs and prints its JSON lines. No timing is asserted here:
benchmarks are read by people, side by side with their baselines."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench import baselines

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
    # Every benchmark, in two runs side by side (each benchmark makes its own folders and
    # takes free ports, and no quick figure is asserted here): a third of a run's time is
    # spent waiting on its node processes and baselines, which the other run fills.
    halves = [names[0::2], names[1::2]]
    with ThreadPoolExecutor(len(halves)) as pool:
        results = list(pool.map(lambda half: run("--quick", *half), halves))
    for result in results:
        assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for result in results for line in result.stdout.splitlines()]
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


@pytest.mark.skipif(not Path(baselines.ORTHANC).exists(), reason="Debian's orthanc (.ci/run)")
def test_orthanc_given_a_port_taken_meanwhile_starts_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port found free may be taken by another program before Orthanc binds it (the
    machine is shared): the baseline starts again on another port rather than failing."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1], baselines.free_port()])
        monkeypatch.setattr(baselines, "free_port", lambda: next(ports))
        orthanc = baselines.Orthanc(tmp_path / "o", "o")
        try:
            assert orthanc.port != taken.getsockname()[1]
            assert orthanc.get("/system")[0] == 200
        finally:
            orthanc.close()
