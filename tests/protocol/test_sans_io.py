"""protocol/ does no I/O: importing all of it in a fresh interpreter loads no event loop,
socket or HTTP library (the import-linter contract checks the same statically)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import protocol

FORBIDDEN = ("asyncio", "aiohttp", "aiosqlite", "socket", "tsfnode", "simulations", "zeroconf")


def test_importing_protocol_loads_nothing_that_does_io() -> None:
    modules = [f"protocol.{m.name}" for m in pkgutil.iter_modules(protocol.__path__)]
    assert len(modules) >= 6
    root = str(Path(protocol.__path__[0]).parent)  # this tree's, not an installed copy
    code = (
        f"import sys\nsys.path.insert(0, {root!r})\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(sorted(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    assert result.stdout.strip() == "[]"
