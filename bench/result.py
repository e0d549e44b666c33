"""The one-line JSON result every benchmark prints."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


def significant(value: float, digits: int = 4) -> float:
    """``value`` kept to ``digits`` significant figures: a time of 0.0123 s keeps its
    precision, which rounding to three decimals would lose."""
    return float(f"{value:.{digits}g}")


@dataclass(frozen=True, kw_only=True)
class Result:
    name: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    higher_is_better: bool
    target: str = ""
    extra: dict[str, float] | None = None

    @property
    def ratio(self) -> float:
        return significant(self.value / self.baseline_value) if self.baseline_value else 0.0

    def to_json(self) -> str:
        data = asdict(self)
        data["value"] = significant(self.value)
        data["baseline_value"] = significant(self.baseline_value)
        data["ratio"] = self.ratio
        if not self.target:
            del data["target"]
        extra = data.pop("extra") or {}
        data.update({k: significant(v) for k, v in extra.items()})
        return json.dumps(data, ensure_ascii=False)


def best_of(repeats: int, run: Callable[[], object]) -> float:
    """The shortest wall time of ``repeats`` runs, in seconds (the least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def interleaved(
    repeats: int, first: Callable[[], object], second: Callable[[], object]
) -> tuple[float, float]:
    """Best times of two workloads run alternately, so both see the same machine load."""
    a = b = float("inf")
    for _ in range(repeats):
        a = min(a, best_of(1, first))
        b = min(b, best_of(1, second))
    return a, b
