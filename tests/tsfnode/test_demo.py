"""`make demo` runs `tsfnode demo`: three real nodes on 127.0.0.1, stopped by Ctrl-C."""

from __future__ import annotations

import asyncio
import http.cookiejar
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from bootstrap.network import demo_anchor, load_network
from tests.harness.cluster import FAST, configure
from tests.harness.nodes import get_json
from tests.harness.people import application
from tests.harness.waiting import wait_for
from tsfnode.cli.demo import create_demo_network
from tsfnode.clock import Clock
from tsfnode.config import load_config
from tsfnode.keyfile import read_key
from tsfnode.network.directory import DirectoryService
from tsfnode.nodedir import NodeDir
from tsfnode.store import Store

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


def apply_to_join(url: str) -> None:
    """The public joining form of the node at ``url``, sent as a browser would."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(url + "/web/join", timeout=30) as answer:
        page = answer.read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    group = re.search(r'<option value="([^"]+)" >Radiopédiatrie Erasme', page)
    assert csrf is not None
    assert group is not None, page
    fields = application(group.group(1), csrf=csrf.group(1))
    data = urllib.parse.urlencode(fields).encode()
    with opener.open(url + "/web/join", data=data, timeout=30) as answer:
        assert answer.status == 200


@pytest.mark.slow
@pytest.mark.usefixtures("lan")  # its nodes find each other by mDNS on 127.0.0.1
def test_demo_serves_every_node_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    # The demo's folder made first, as `tsfnode demo` makes it (and keeps it when it is
    # there), so that its nodes probe each other every 400 ms rather than every 10 s (the
    # default, which the demo keeps): seeing the two others alive took about 10 s of it.
    create_demo_network(tmp_path, 0)
    for slug in ("erasme", "cotonou", "dakar"):
        configure(tmp_path / slug, liveness=FAST["liveness"])
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
        assert "E-mail notices / avis par e-mail: SMTP sink 127.0.0.1:" in out

        # A notification arrives at the demo's mail sink: someone applies to join the
        # paediatric group on Erasme's node; its coordinator is told by e-mail.
        apply_to_join(urls["Hôpital Erasme"])
        told = read_until(process, "coord.erasme@demo.invalid", timeout=30)
        assert "✉ coord.erasme@demo.invalid: [tsf · Hôpital Erasme] Une candidature" in told
        assert list((tmp_path / "mail").glob("*.eml"))

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


async def directory_of(base: Path, slug: str) -> tuple[DirectoryService, Store]:
    node = NodeDir(base / slug)
    config = load_config(node.config)
    network = load_network(config.network, base=node.root)
    store = await Store.open(node.database)
    service = DirectoryService(network, read_key(node.key), store)
    await service.load(Clock().now_ms())
    return service, store


def ids(base: Path, *slugs: str) -> set[bytes]:
    return {read_key(NodeDir(base / slug).key).public.key for slug in slugs}


async def test_two_demo_networks_on_one_host_stay_apart(tmp_path: Path) -> None:
    """Two demo folders on one machine (their nodes meet by mDNS on 127.0.0.1): each has
    its own anchor and pair; the records of the other, all taken in as gossip would bring
    them, admit none of its nodes and replace nothing."""
    first, second = tmp_path / "first", tmp_path / "second"
    for base in (first, second):
        await asyncio.to_thread(create_demo_network, base, 0)
    anchors = [load_network(str(b / "network.toml")).anchors for b in (first, second)]
    assert anchors[0] != anchors[1]
    assert demo_anchor().public not in anchors[0] + anchors[1]  # not the public anchor
    now = Clock().now_ms()
    for mine, theirs in ((first, second), (second, first)):
        service, store = await directory_of(mine, "erasme")
        sibling, sibling_store = await directory_of(mine, "cotonou")
        other, other_store = await directory_of(theirs, "cotonou")
        try:
            (pair_id,) = service.view(now).pairs
            pair = service.view(now).pairs[pair_id].raw
            # Its own demo's node, met on the LAN, is admitted...
            await service.add([d.raw for d in sibling.directory], now)
            assert set(service.view(now).admitted) == ids(mine, "erasme", "cotonou")
            # ... the other demo's, with everything it holds, is not.
            outcome = await service.add([d.raw for d in other.directory], now)
            assert "added" not in outcome, outcome  # every record of the other refused
            after = service.view(now)
            assert set(after.admitted) == ids(mine, "erasme", "cotonou")
            assert not set(after.admitted) & ids(theirs, "erasme", "cotonou", "dakar")
            assert set(after.pairs) == {pair_id}  # its own pair, unchanged
            assert after.pairs[pair_id].raw == pair
            assert len(after.members) == 4
        finally:
            for opened in (store, sibling_store, other_store):
                await opened.close()
