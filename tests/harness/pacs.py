"""A hospital's DICOM side for tests: free loopback ports and dcmtk's storescp."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.waiting import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[Callable[..., tuple[int, Path]]]:
    """dcmtk's storescp as the PACS "HOROS" on a free loopback port, its files in its own
    folder (``extra`` are its options): call it to start one, get (port, folder)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> tuple[int, Path]:
        port = free_port()
        out = tmp_path / f"storescp-{port}"
        out.mkdir()
        command = ["storescp", "--aetitle", "HOROS", "-uf", "-od", str(out), *extra, str(port)]
        started.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        wait_for("storescp listening", lambda: listening(port), timeout=20)
        return port, out

    yield start
    for process in started:
        process.terminate()
        process.wait(10)
