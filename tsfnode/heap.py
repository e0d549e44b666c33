"""The node's C heap: buffers of a transfer reused, not given back to the kernel and
faulted in again for every piece.

Every piece a socket read returns (up to 1 MiB on a connection that carries chunks,
``peer/transfers.py``) is a new buffer. glibc serves such sizes with ``mmap`` at first,
and gives a free block at the top of its heap back to the kernel beyond its trim
threshold (twice the largest block freed so far): the next buffer then takes its pages
again, one minor fault (a zeroed page) per 4 KiB. The receiving node of bench
transfer_loopback_throughput took 39,255 minor faults for 512 MiB (153 MiB of pages
zeroed only to be overwritten); with the thresholds below, 2,709 and 4,943 (two runs). Blocks up to
``MMAP_THRESHOLD`` come from the heap, and up to ``TRIM_THRESHOLD`` of free heap is kept
for the next ones: a node at rest keeps at most that much more than it uses.

glibc only (``mallopt``); elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 * 1024 * 1024  # above a 1 MiB read and a run of chunks in flight
TRIM_THRESHOLD = 32 * 1024 * 1024  # two transfers' bytes in flight (16 MiB each)


def keep_freed_buffers() -> bool:
    """Set the thresholds for this process; whether they were (glibc)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
