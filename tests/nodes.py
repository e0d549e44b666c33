"""Helpers to run real `tsfnode` processes in tests (bounded in time, always stopped)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 20.0


def tsfnode(
    *args: str | Path, timeout: float = 60, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the tsfnode CLI as a separate process, as a person would."""
    return subprocess.run(
        [sys.executable, "-m", "tsfnode", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=input_text,
    )


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, dict(response.headers), response.read().decode()


class RunningNode:
    """`tsfnode run DIR` in a child process; ``url`` once it answers /healthz."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log_path = directory.parent / f"{directory.name}.log"
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tsfnode", "run", str(directory)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.url = self._wait_ready()

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"node exited at start:\n{self.logs()}")
            try:
                info = json.loads((self.directory / "run.json").read_text())
                if info["pid"] == self.process.pid:
                    get_json(info["url"] + "/healthz")
                    return str(info["url"])
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        self.process.kill()
        raise AssertionError(f"node did not answer within {START_TIMEOUT_S} s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            os.kill(self.process.pid, signum)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._log.close()

    def __enter__(self) -> RunningNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
