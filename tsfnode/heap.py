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

glibc only (``mallopt``); elsewhere nothing changes. Nor in a small box: where the
memory the node may use (its cgroup's limit, or the machine's) is under ``ROOMY`` (1 GiB),
the heap keeps its defaults, as every MiB kept there counts against the box (the 256 MiB
box of ``bench_smallbox`` was killed with them).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from pathlib import Path

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 * 1024 * 1024  # above a 1 MiB read and a run of chunks in flight
TRIM_THRESHOLD = 32 * 1024 * 1024  # two transfers' bytes in flight (16 MiB each)
ROOMY = 1 << 30
CGROUPS = Path("/sys/fs/cgroup")


def memory_room(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUPS) -> int:
    """The memory this process may use: the smallest limit of its memory cgroup and the
    cgroups above it (v2 ``memory.max``, v1 ``memory.limit_in_bytes``), and the machine's."""
    room = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return room
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            folder, name = root / path.lstrip("/"), "memory.max"
        elif "memory" in controllers.split(","):
            folder, name = root / "memory" / path.lstrip("/"), "memory.limit_in_bytes"
        else:
            continue
        for level in (folder, *folder.parents):
            try:
                value = (level / name).read_text().strip()
            except OSError:
                value = "max"
            if value.isdigit():
                room = min(room, int(value))
            if level == root:
                break
    return room


def keep_freed_buffers() -> bool:
    """Set the thresholds for this process; whether they were (glibc, room enough)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if memory_room() < ROOMY:
        return False
    try:  # glibc's name first: find_library runs ldconfig, a process (in each worker)
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            return False
    try:
        mallopt = libc.mallopt
    except AttributeError:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
