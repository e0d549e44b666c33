"""A small box (issue 24): the reader's node in a cgroup of 256 MB and one CPU
(tests/harness/smallbox.py) receives a 1 GiB CT, 2,048 real 512x512 slices
(pydicom-data's 693_UNCI repeated with new UIDs, as the other benchmarks make it), then
its viewer renders 500 of them at full size, one request per frame; its peak memory
(anonymous, sampled: the page cache the box is also charged for fills any limit and
is given back) beside the same run with no limit, the box's own peak, whether it was
never OOM-killed and is alive. Skipped, with the reason, where no cgroup can be made."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.result import Result
from tests.harness.smallbox import SMALL_BOX, BoxRun, MiB, receive_and_view, unavailable

SLICES, FRAMES = 2048, 500
# quick: checks that the box is made and the run goes through (tests/test_bench.py); the
# figures of 20 slices are not read, and 100 cost 21 s of CPU in the two runs
QUICK_SLICES, QUICK_FRAMES = 20, 20
TIMEOUT_S = 1800


def _run(limit: int | None, slices: int, frames: int) -> BoxRun:
    with tempfile.TemporaryDirectory(prefix="tsf-bench-smallbox-") as tmp:
        return receive_and_view(
            Path(tmp), slices=slices, frames=frames, limit_bytes=limit, timeout_s=TIMEOUT_S
        )


def small_box(*, quick: bool = False) -> list[Result]:
    why = unavailable()
    if why:
        print(f"smallbox skipped: {why}", file=sys.stderr)
        return []
    slices, frames = (QUICK_SLICES, QUICK_FRAMES) if quick else (SLICES, FRAMES)
    boxed = _run(SMALL_BOX, slices, frames)
    free = _run(None, slices, frames)
    return [
        Result(
            name="smallbox_reader_vs_unlimited",
            value=boxed.peak_anon_bytes / MiB,
            unit=f"MiB peak anonymous memory (heaps, the frame cache: what the page cache "
            f"cannot give back) of the reader's node in a {SMALL_BOX // MiB} MiB, one-CPU box "
            f"({boxed.study_bytes / 1e6:.0f} MB CT received, {boxed.frames_rendered} of "
            f"{frames} frames rendered)",
            baseline="the same run with no limit (today's peak)",
            baseline_value=free.peak_anon_bytes / MiB,
            higher_is_better=False,
            target=f"under {SMALL_BOX // MiB} MiB, alive, never OOM-killed",
            extra={
                "box_peak_mib": boxed.peak_bytes / MiB,  # with the page cache it filled
                "unlimited_box_peak_mib": free.peak_bytes / MiB,
                "vmhwm_mib": boxed.peak_rss_bytes / MiB,  # shared and file pages too
                "unlimited_vmhwm_mib": free.peak_rss_bytes / MiB,
                "oom_kills": float(boxed.oom_kills),
                "times_at_limit": float(boxed.times_at_limit),
                "alive": float(boxed.alive),
                "arrived": float(boxed.arrived),
                "frames_rendered": float(boxed.frames_rendered),
                "boxed_s": boxed.seconds,
                "unlimited_s": free.seconds,
            },
        )
    ]


BENCHMARKS = {"smallbox_reader": small_box}
