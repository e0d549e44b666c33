"""`make demo`: a small local network of real node processes on 127.0.0.1.

Three nodes, as in the network's first years: a reading group at a university hospital
in Brussels, a sender hospital in Cotonou, and a volunteer community in Dakar. Each is an
ordinary `tsfnode run` process with its own directory under ``demo-network/``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from bootstrap.network import demo_anchor, load_network
from bootstrap.tools import admit_node
from protocol.identity import Identity
from tsfnode.accounts import create_account
from tsfnode.config import NodeConfig
from tsfnode.directory_service import DirectoryService
from tsfnode.errors import NodeError
from tsfnode.node import init_node
from tsfnode.nodedir import NodeDir
from tsfnode.peering import now_ms
from tsfnode.store import Store

DEMO_PASSWORD = "tsf-demo-2026"  # noqa: S105 - printed for the demo, on loopback only
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class DemoAccount:
    username: str
    display_name: str
    role: str
    language: str


@dataclass(frozen=True)
class DemoNode:
    slug: str
    name: str
    country: str
    kind: str
    accounts: tuple[DemoAccount, ...]


DEMO_NODES = (
    DemoNode(
        "erasme",
        "Hôpital Erasme",
        "BE",
        "reading group / groupe de lecture",
        (
            DemoAccount("coord.erasme", "Dr Anne Coordinatrice", "coordinator", "fr"),
            DemoAccount("lecteur.erasme", "Dr Marie Lectrice (pédiatrie)", "reader", "fr"),
            DemoAccount("admin.erasme", "IT Erasme", "admin", "en"),
        ),
    ),
    DemoNode(
        "cotonou",
        "CHU Cotonou",
        "BJ",
        "sender / émetteur",
        (
            DemoAccount("emetteur.cotonou", "Dr Koffi Émetteur", "sender", "fr"),
            DemoAccount("admin.cotonou", "Informatique CHU", "admin", "fr"),
        ),
    ),
    DemoNode(
        "dakar",
        "Dakar",
        "SN",
        "community / communauté",
        (DemoAccount("benevole.dakar", "Dr Awa Bénévole", "reader", "fr"),),
    ),
)


def _create_demo_node(directory: Path, node: DemoNode, port: int) -> None:
    config = NodeConfig(
        name=node.name,
        institution=node.name,
        country=node.country,
        network="demo",
        http_port=port,
        discovery_mdns_interface="127.0.0.1",
    )
    identity = init_node(directory, config)
    asyncio.run(_admit_and_create_accounts(directory, node, identity))


async def _admit_and_create_accounts(directory: Path, node: DemoNode, identity: Identity) -> None:
    """The demo network's anchor (public, demo only) admits the node; then its accounts."""
    network = load_network("demo")
    store = await Store.open(NodeDir(directory).database)
    try:
        service = DirectoryService(network, identity, store)
        await service.load(now_ms())
        cert = admit_node(network, demo_anchor(), identity.public, now=now_ms(), days=3650)
        await service.add([cert], now_ms())
        for account in node.accounts:
            await create_account(
                store,
                username=account.username,
                display_name=account.display_name,
                role=account.role,
                password=DEMO_PASSWORD,
                language=account.language,
                now=now_ms(),
                people=NodeDir(directory).people,
            )
    finally:
        await store.close()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def _wait_ready(node_dir: NodeDir, process: subprocess.Popen[bytes], deadline: float) -> str:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NodeError(f"the node in {node_dir.root} stopped at start: see its node.log")
        try:
            info = json.loads(node_dir.run_info.read_text())
            if info.get("pid") == process.pid and _healthy(info["url"]):
                return str(info["url"])
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise NodeError(f"the node in {node_dir.root} did not start within {START_TIMEOUT_S:.0f} s")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_demo(base: Path, base_port: int) -> int:
    base.mkdir(parents=True, exist_ok=True)
    stop_requested = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for i, node in enumerate(DEMO_NODES):
            directory = base / node.slug
            if not NodeDir(directory).exists():
                _create_demo_node(directory, node, base_port + i if base_port else 0)
            log_file = open(directory / "node.log", "ab")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tsfnode", "run", str(directory)],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
            log_file.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        for node, process in zip(DEMO_NODES, processes, strict=True):
            urls.append(_wait_ready(NodeDir(base / node.slug), process, deadline))
    except NodeError as exc:
        _stop(processes)
        print(f"tsfnode demo: {exc}", file=sys.stderr)
        return 2

    print("Demo network running / réseau de démonstration en service:\n")
    for node, url in zip(DEMO_NODES, urls, strict=True):
        print(f"  {node.name:<16} {node.kind:<34} {url}/")
        for account in node.accounts:
            print(f"      {account.role:<12} {account.username:<18} {account.display_name}")
    print(f"\n  Demo password for every account / mot de passe: {DEMO_PASSWORD}")
    print(f"  Node logs / journaux: {base}/<node>/node.log")
    print("\nCtrl-C stops the network / Ctrl-C arrête le réseau.", flush=True)

    exit_status = 0
    while not stop_requested:
        for node, process in zip(DEMO_NODES, processes, strict=True):
            if process.poll() is not None:
                print(
                    f"tsfnode demo: node {node.name} stopped unexpectedly: see its node.log",
                    file=sys.stderr,
                )
                stop_requested = True
                exit_status = 1
        time.sleep(0.2)
    print("\nStopping / arrêt...", flush=True)
    _stop(processes)
    print("Demo network stopped / réseau arrêté.", flush=True)
    return exit_status
