"""A node's buffers of a transfer are reused, not given back to the kernel and faulted
in again (tsfnode/heap.py): minor page faults counted in a real process."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from tsfnode.heap import ROOMY, memory_room

ROUNDS = """
import resource, sys
if sys.argv[1] == "kept":
    from tsfnode.heap import keep_freed_buffers
    assert keep_freed_buffers()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):  # a few 1 MiB pieces alive at once, as a transfer's, then freed
    pieces = [bytearray(1 << 20) for _ in range(4)]
    del pieces
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_freed_transfer_buffers_are_reused_not_faulted_in_again() -> None:
    given_back = _faults("default")  # each round's 4 MiB trimmed, then faulted in again
    kept = _faults("kept")
    assert given_back > 50 * 256  # at least one fresh MiB per round
    assert kept < given_back / 10


def _cgroups(tmp_path: Path, lines: str, limits: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for folder, text in limits.items():
        (root / folder).parent.mkdir(parents=True, exist_ok=True)
        (root / folder).write_text(text + "\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(lines)
    return proc, root


def test_a_small_box_keeps_the_heaps_defaults(tmp_path: Path) -> None:
    """A node in a cgroup of 256 MiB (v2), or under a parent cgroup of 512 MiB (v1), has
    less room than ROOMY: it keeps glibc's defaults, every MiB kept counting against the
    box; unlimited cgroups leave the machine's memory."""
    box = 256 << 20
    proc, root = _cgroups(tmp_path, "0::/box/node\n", {"box/node/memory.max": str(box)})
    assert memory_room(proc, root) == box
    proc, root = _cgroups(
        tmp_path / "v1",
        "4:memory:/outer/inner\n0::/\n",
        {
            "memory/outer/memory.limit_in_bytes": str(2 * box),
            "memory/outer/inner/memory.limit_in_bytes": "9223372036854771712",
        },
    )
    assert memory_room(proc, root) == 2 * box
    assert memory_room(proc, root) < ROOMY
    proc, root = _cgroups(tmp_path / "none", "0::/\n", {"memory.max": "max"})
    assert memory_room(proc, root) > ROOMY  # the machine's: 24 GB here
