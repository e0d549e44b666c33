"""Helpers to run `tsfnode` in tests: its commands as a person types them, and real
node processes (bounded in time, always stopped)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tsfnode.cli.main import main

START_TIMEOUT_S = 20.0
IN_A_PROCESS = ("run", "demo")
"""Commands that serve until stopped: always a child process."""


def tsfnode(
    *args: str | Path, timeout: float = 60, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tsfnode command as a person would and take what it prints and its exit
    status. The offline commands (init, account, key, admit, import, review, audit...)
    run in this process: the CLI's ``main`` with these arguments, standard input given,
    standard output and error taken as text, ``SystemExit`` taken as the exit status;
    the warning filters are a fresh interpreter's. ``run`` and
    ``demo`` go to a child process (``tsfnode_process``)."""
    argv = [str(a) for a in args]
    if argv and argv[0] in IN_A_PROCESS:
        return tsfnode_process(*args, timeout=timeout, input_text=input_text)
    return tsfnode_here(*argv, input_text=input_text)


def sender_token(node_dir: Path, username: str = "emetteur.cotonou") -> str:
    """A sender account on the node, made with the CLI, and its upload token."""
    add = tsfnode(
        "account", "add", node_dir, username, "--role", "sender", "--name", f"Dr {username}",
        "--password-stdin", input_text="un mot de passe assez long\n",
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    token = tsfnode("account", "token", node_dir, username)
    assert token.returncode == 0, token.stderr
    return token.stdout.strip()


def tsfnode_process(
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


def tsfnode_here(*argv: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI's ``main(argv)`` in this process, with its own standard streams; what a
    command changes of the process (logging, warning filters) is put back afterwards."""
    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO(input_text or "")
    with _process_state(), warnings.catch_warnings():
        _python_default_warning_filters()
        saved_stdin, sys.stdin = sys.stdin, stdin
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = _main_off_the_loop(argv)
        finally:
            sys.stdin = saved_stdin
    if code is None:
        returncode = 0
    elif isinstance(code, int):
        returncode = code
    else:  # SystemExit("message"): printed, status 1
        err.write(f"{code}\n")
        returncode = 1
    return subprocess.CompletedProcess(
        ["tsfnode", *argv], returncode, out.getvalue(), err.getvalue()
    )


def _main_off_the_loop(argv: Sequence[str]) -> Any:
    """``main(argv)``'s exit status; in a thread of its own when this thread runs an
    event loop (an async test), since commands run their own (``asyncio.run``)."""

    def run() -> Any:
        try:
            return main(list(argv))
        except SystemExit as exc:  # argparse: --help, --version, a usage error
            return exc.code

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def _python_default_warning_filters() -> None:
    """The filters of a fresh interpreter run with no -W option (the Python docs'
    "Default Warning Filter"); pytest's own (every warning an error) are put back after."""
    warnings.resetwarnings()
    for category in (PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")


@contextlib.contextmanager
def _process_state() -> Iterator[None]:
    """Keep the root and pydicom loggers as they were (``setup_logging`` changes them)."""
    saved = []
    for name in (None, "pydicom"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.level, logger.propagate))
    try:
        yield
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, dict(response.headers), response.read().decode()


class RunningNode:
    """`tsfnode run DIR` in a child process; ``url`` once it answers /healthz.

    ``wait=False`` returns as soon as the process is started, so that several nodes
    start side by side; ``wait_ready()`` then waits for each (``starting`` is how many
    start at once: each gets START_TIMEOUT_S more, as they share the machine)."""

    def __init__(self, directory: Path, *, wait: bool = True) -> None:
        self.directory = directory
        self.log_path = directory.parent / f"{directory.name}.log"
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tsfnode", "run", str(directory)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.url = ""
        if wait:
            self.wait_ready()

    def wait_ready(self, starting: int = 1) -> str:
        try:
            self.url = self._wait_ready(START_TIMEOUT_S * max(1, starting))
        except BaseException:
            self.stop(signal.SIGKILL)
            raise
        return self.url

    def _wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
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
        raise AssertionError(f"node did not answer within {timeout:g} s:\n{self.logs()}")

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
