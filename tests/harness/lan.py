"""One mDNS test at a time on this machine.

A node that announces itself by mDNS on 127.0.0.1 is seen by every other node browsing
there: by another worker of this run (pytest-xdist), or by another run of the suite on the
same machine. Tests that count what they find on the LAN hold this lock, a file lock in
the system's temporary folder, for as long as their nodes announce."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "tsfnode-tests-mdns.lock"
WAIT_S = 100.0  # longer than any one mDNS test takes
PAUSE_S = 0.1


@contextlib.contextmanager
def alone_on_the_lan() -> Iterator[None]:
    """Hold the machine's mDNS test lock (AssertionError if it stays taken ``WAIT_S``)."""
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        for _ in range(int(WAIT_S / PAUSE_S)):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(PAUSE_S)
        else:
            raise AssertionError(f"another mDNS test held {LOCK} for {WAIT_S:g} s")
        yield
    finally:
        os.close(fd)  # closing the file releases the lock
