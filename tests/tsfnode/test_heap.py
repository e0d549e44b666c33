"""A node's buffers of a transfer are reused, not given back to the kernel and faulted
in again (tsfnode/heap.py): minor page faults counted in a real process."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

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
