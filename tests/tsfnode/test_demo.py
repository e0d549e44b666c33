"""`make demo` runs `tsfnode demo`: three real nodes on 127.0.0.1, stopped by Ctrl-C."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness.nodes import get_json
from tests.harness.waiting import wait_for

DEMO_NAMES = ("Hôpital Erasme", "CHU Cotonou", "Dakar")


def read_until(process: subprocess.Popen[bytes], marker: str, timeout: float) -> str:
    """Read the unbuffered stdout of ``process`` until ``marker`` shows, bounded in time."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    out = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in out and time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            data = os.read(fd, 65536)
            if not data:
                break
            out += data
    selector.close()
    return out.decode()


@pytest.mark.slow
@pytest.mark.usefixtures("lan")  # its nodes find each other by mDNS on 127.0.0.1
def test_demo_serves_every_node_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tsfnode", "demo", "--dir", str(tmp_path), "--base-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        start_new_session=True,  # on failure, its nodes are killed with it
    )
    try:
        out = read_until(process, "Ctrl-C", timeout=60)
        assert "Ctrl-C" in out, out
        urls = dict(re.findall(r"^  (\S.*?)\s{2,}.*?(http://127\.0\.0\.1:\d+)/$", out, re.M))
        assert set(urls) == set(DEMO_NAMES), out
        pids = set()
        for name, url in urls.items():
            health = get_json(url + "/healthz")
            assert health["status"] == "ok"
            assert get_json(url + "/api/v1/node")["name"] == name
            pids.add(get_json(url + "/api/v1/node")["id"])
        assert len(pids) == 3  # three distinct identities
        for login in ("coord.erasme", "lecteur.erasme", "emetteur.cotonou", "benevole.dakar"):
            assert login in out
        # Its people are in every node's directory: three groups, four members, a pair.
        for url in urls.values():
            groups = {g["name"] for g in get_json(url + "/api/v1/directory?kind=group")}
            assert groups == {"Radiopédiatrie Erasme", "CHU Cotonou", "Communauté COVID-19 Sénégal"}
            members = get_json(url + "/api/v1/directory?kind=member")
            assert sorted(m["details"]["role"] for m in members) == [
                "coordinator", "reader", "reader", "sender"
            ]  # fmt: skip
        assert "Pair / binôme: lecteur.erasme + emetteur.cotonou" in out

        # The demo network's nodes are admitted and find each other (mDNS on 127.0.0.1),
        # then see each other alive.
        def sees_the_others_alive(url: str) -> bool:
            alive = {
                p["id"] for p in get_json(url + "/api/v1/peers")["peers"] if p["status"] == "alive"
            }
            return pids - {get_json(url + "/api/v1/node")["id"]} <= alive

        wait_for(
            "each node sees the two others alive",
            lambda: all(sees_the_others_alive(url) for url in urls.values()),
        )
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "stopped" in read_until(process, "stopped", timeout=5)
        for slug in ("erasme", "cotonou", "dakar"):
            assert not (tmp_path / slug / "run.json").exists()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe:
                pipe.close()
