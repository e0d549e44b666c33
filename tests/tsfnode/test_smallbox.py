"""A small box (issue 24): the reader's node, in a cgroup of 256 MB and one CPU that
the test makes (tests/harness/smallbox.py), receives a 200 MB CT from another node and
its viewer renders every one of its 400 frames at full size: the node is alive at the
end, never OOM-killed, the case arrived, every page rendered. `python -m bench
smallbox_reader` does the same with 1 GiB and prints the peak beside today's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.smallbox import SMALL_BOX, receive_and_view, unavailable

SLICES = 400  # 512x512 CT slices of 512 KiB: 200 MB


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_reader_node_in_256_mb_and_one_cpu_receives_a_ct_and_renders_every_frame(
    tmp_path: Path,
) -> None:
    why = unavailable()
    if why:
        pytest.skip(why)
    run = receive_and_view(
        tmp_path, slices=SLICES, frames=SLICES, limit_bytes=SMALL_BOX, timeout_s=900
    )
    assert run.study_bytes > 200 * 1024 * 1024
    assert run.arrived, run
    assert run.alive, run
    assert run.oom_kills == 0, run
    assert run.frames_rendered == SLICES, run
