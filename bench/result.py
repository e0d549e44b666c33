"""The one-line JSON result every benchmark prints."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


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
        return round(self.value / self.baseline_value, 3) if self.baseline_value else 0.0

    def to_json(self) -> str:
        data = asdict(self)
        data["value"] = round(self.value, 3)
        data["baseline_value"] = round(self.baseline_value, 3)
        data["ratio"] = self.ratio
        if not self.target:
            del data["target"]
        extra = data.pop("extra") or {}
        data.update({k: round(v, 3) for k, v in extra.items()})
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
