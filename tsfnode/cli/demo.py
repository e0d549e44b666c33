"""`make demo`: a small local network of real node processes on 127.0.0.1.

Three nodes, as in the network's first years: a reading group at a university hospital
in Brussels, a sender hospital in Cotonou, and a volunteer community in Dakar. Each is an
ordinary `tsfnode run` process with its own directory under ``demo-network/``.

Each demo folder is a network of its own: its trust anchor is made when the folder is
made (``demo-keys/anchor.key``, its network file ``network.toml`` beside the nodes), and
its pair has a random id. Two demos on one host (or a demo and the test suite, which use
the public demo anchor of ``bootstrap/networks/demo.toml``) meet by mDNS on 127.0.0.1 but
admit none of each other's nodes and records.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from bootstrap.network import NetworkFile, demo_anchor, load_network
from bootstrap.tools import admit_node, attest_member, create_group
from protocol.identity import Identity
from tsfnode.auth.accounts import create_account
from tsfnode.cli.mailsink import MailSink
from tsfnode.clock import Clock
from tsfnode.config import NodeConfig, load_config
from tsfnode.errors import NodeError
from tsfnode.keyfile import read_key, write_key
from tsfnode.network.directory import DirectoryService
from tsfnode.node import init_node
from tsfnode.nodedir import NodeDir
from tsfnode.store import Store
from tsfnode.store.accounts import AccountStore
from tsfnode.store.mail import MailStore

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
    timezone: str = "UTC"  # the node's people read times in it (each may choose another)


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
        "Europe/Brussels",
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
        "Africa/Porto-Novo",
    ),
    DemoNode(
        "dakar",
        "Dakar",
        "SN",
        "community / communauté",
        (DemoAccount("benevole.dakar", "Dr Awa Bénévole", "reader", "fr"),),
        "Africa/Dakar",
    ),
)


NETWORK_FILE = "network.toml"  # the demo folder's own network, beside its nodes' folders
ANCHOR_FILE = "anchor.key"  # in demo-keys/


def _anchor_of(base: Path) -> Identity:
    """The demo folder's anchor (the public one for a folder of an older version)."""
    path = base / "demo-keys" / ANCHOR_FILE
    return read_key(path) if path.exists() else demo_anchor()


def _network_of(base: Path) -> NetworkFile:
    path = base / NETWORK_FILE
    return load_network(str(path.resolve()) if path.exists() else "demo")


def _network_setting(base: Path) -> str:
    """What a node's config says of its network, from the node's own folder."""
    return f"../{NETWORK_FILE}" if (base / NETWORK_FILE).exists() else "demo"


def _make_network(base: Path) -> None:
    """This demo folder's own network: a new anchor key and its network file."""
    keys = base / "demo-keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    anchor = Identity.generate(os.urandom)
    write_key(keys / ANCHOR_FILE, anchor)
    network = NetworkFile(
        "demo",
        (anchor.public,),
        description=f"Local demo network of {base.resolve()} (127.0.0.1); never for real patients",
    )
    (base / NETWORK_FILE).write_text(network.to_toml(), encoding="utf-8")


def _create_demo_node(directory: Path, node: DemoNode, port: int) -> None:
    config = NodeConfig(
        name=node.name,
        institution=node.name,
        country=node.country,
        timezone=node.timezone,
        network=_network_setting(directory.parent),
        http_port=port,
        discovery_mdns_interface="127.0.0.1",
    )
    identity = init_node(directory, config)
    asyncio.run(_admit_and_create_accounts(directory, node, identity))


async def _admit_and_create_accounts(directory: Path, node: DemoNode, identity: Identity) -> None:
    """The demo folder's anchor admits the node; then its accounts."""
    base = directory.parent
    network = _network_of(base)
    async with await Store.open(NodeDir(directory).database) as store:
        service = DirectoryService(network, identity, store)
        await service.load(Clock().now_ms())
        cert = admit_node(
            network, _anchor_of(base), identity.public, now=Clock().now_ms(), days=3650
        )
        await service.add([cert], Clock().now_ms())
        for account in node.accounts:
            await create_account(
                store,
                username=account.username,
                display_name=account.display_name,
                role=account.role,
                password=DEMO_PASSWORD,
                language=account.language,
                now=Clock().now_ms(),
                people=NodeDir(directory).people,
            )
            made = await AccountStore(store.db).account(account.username)
            if made is not None and account.role != "admin":  # notices to the demo's sink
                await MailStore(store.db).set_contact(
                    made.id, f"{account.username}@demo.invalid", "immediately"
                )


@dataclass(frozen=True)
class DemoGroup:
    slug: str
    name: str
    kind: str
    subspecialities: tuple[str, ...]
    coordinator: str  # an account, or "" for a coordinator key kept in demo-keys/
    members: tuple[tuple[str, str], ...]  # (account, role)


DEMO_GROUPS = (
    DemoGroup(
        "paediatrics",
        "Radiopédiatrie Erasme",
        "subspeciality",
        ("paediatrics",),
        "coord.erasme",
        (("coord.erasme", "coordinator"), ("lecteur.erasme", "reader")),
    ),
    DemoGroup(
        "cotonou",
        "CHU Cotonou",
        "institutional",
        (),
        "",
        (("emetteur.cotonou", "sender"),),
    ),
    DemoGroup(
        "covid-senegal",
        "Communauté COVID-19 Sénégal",
        "community",
        ("chest",),
        "benevole.dakar",
        (("benevole.dakar", "reader"),),
    ),
)
DEMO_PAIR = ("lecteur.erasme", "emetteur.cotonou", 3, 48)  # reader, sender, a week, hours


def _demo_people(base: Path) -> list[bytes]:
    """The demo's groups, its members' attestations and a pair (with a random id), signed
    with the demo folder's anchor and the demo accounts' own person keys."""
    from protocol.codec import pack
    from protocol.directory import countersign, new_pair_terms, sign_pair

    network = _network_of(base)
    anchor = _anchor_of(base)
    keys = base / "demo-keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    homes: dict[str, tuple[Path, Identity]] = {}
    for node in DEMO_NODES:
        root = base / node.slug
        node_key = read_key(NodeDir(root).key)
        for account in node.accounts:
            person_file = NodeDir(root).people / f"{account.username}.key"
            if person_file.exists():
                homes[account.username] = (person_file, node_key)

    def person(username: str) -> Identity:
        return read_key(homes[username][0])

    now = Clock().now_ms()
    records: list[bytes] = []
    for group in DEMO_GROUPS:
        group_key = keys / f"{group.slug}.key"
        if not group_key.exists():
            write_key(group_key, Identity.generate(os.urandom))
        if group.coordinator:
            coordinator = person(group.coordinator)
        else:
            coordinator_file = keys / f"{group.slug}-coordinator.key"
            if not coordinator_file.exists():
                write_key(coordinator_file, Identity.generate(os.urandom))
            coordinator = read_key(coordinator_file)
        records += create_group(
            network,
            anchor,
            read_key(group_key),
            name=group.name,
            kind=group.kind,
            routing="pool" if group.kind == "community" else "assign",
            may_admit=False,
            coordinators=[coordinator.public],
            subspecialities=group.subspecialities,
            now=now,
            days=3650,
        )
        for username, role in group.members:
            records.append(
                attest_member(
                    network,
                    coordinator,
                    group=read_key(group_key).public,
                    member=person(username).public,
                    role=role,
                    display_name=_display_name(username),
                    registration="DEMO-0000" if role != "sender" else "",
                    diploma="DES radiologie (demo)" if role != "sender" else "",
                    charter_accepted=now,
                    facility="CHU Cotonou" if role == "sender" else "",
                    subspecialities=group.subspecialities,
                    languages=["fr", "en"],
                    home_node=homes[username][1].public,
                    weekly_capacity=3,
                    now=now,
                    days=3650,
                )
            )
    reader, sender, quota, hours = DEMO_PAIR
    terms = new_pair_terms(
        reader=person(reader).public.key,
        sender=person(sender).public.key,
        nonce=os.urandom(16),  # a pair of its own: another demo's never replaces it
        weekly_quota=quota,
        reading_delay_hours=hours,
    )
    terms_bytes = pack(terms)
    records.append(
        sign_pair(
            terms,
            signer=person(reader),
            countersignature=countersign(terms_bytes, person(sender)),
            terms_bytes=terms_bytes,
            network="demo",
            version=now,
            now=now,
            ttl=3650 * 86_400_000,
        )
    )
    return records


def _display_name(username: str) -> str:
    for node in DEMO_NODES:
        for account in node.accounts:
            if account.username == username:
                return account.display_name
    return username


async def _add_records(directory: Path, records: list[bytes]) -> None:
    network = _network_of(directory.parent)
    async with await Store.open(NodeDir(directory).database) as store:
        node_key = NodeDir(directory).key
        service = DirectoryService(network, read_key(node_key), store)
        await service.load(Clock().now_ms())
        await service.add(records, Clock().now_ms())


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


def create_demo_network(base: Path, base_port: int) -> None:
    """The demo's folder, made once: its own network (anchor and network file), then its
    nodes, then its people in every node's directory. A folder made by an older version
    (the public demo anchor, no network file) is kept as it is."""
    base.mkdir(parents=True, exist_ok=True)
    fresh = not any(NodeDir(base / node.slug).exists() for node in DEMO_NODES)
    if fresh and not (base / NETWORK_FILE).exists():
        _make_network(base)
    created = False
    for i, node in enumerate(DEMO_NODES):
        directory = base / node.slug
        if not NodeDir(directory).exists():
            _create_demo_node(directory, node, base_port + i if base_port else 0)
            created = True
    if created:  # the people of the demo network, in every node's directory
        records = _demo_people(base)
        for node in DEMO_NODES:
            asyncio.run(_add_records(base / node.slug, records))


def _use_sink(directory: Path, slug: str, port: int | None) -> None:
    """The node's [smtp]: the demo's sink on ``port`` (None: no e-mail)."""
    path = NodeDir(directory).config
    config = load_config(path)
    if port is None:
        config = config.replace(smtp_host="")
    else:
        config = config.replace(
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            smtp_from_address=f"tsf@{slug}.demo.invalid",
            smtp_timeout_s=5,
        )
    path.write_text(config.to_toml(), encoding="utf-8")


def run_demo(base: Path, base_port: int) -> int:
    base.mkdir(parents=True, exist_ok=True)
    stop_requested = False
    sink = MailSink(base / "mail")

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        create_demo_network(base, base_port)
        sink_port = sink.port if sink.start() else None
        for node in DEMO_NODES:
            directory = base / node.slug
            _use_sink(directory, node.slug, sink_port)
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
        sink.stop()
        print(f"tsfnode demo: {exc}", file=sys.stderr)
        return 2

    print("Demo network running / réseau de démonstration en service:\n")
    for node, url in zip(DEMO_NODES, urls, strict=True):
        print(f"  {node.name:<16} {node.kind:<34} {url}/")
        for account in node.accounts:
            print(f"      {account.role:<12} {account.username:<18} {account.display_name}")
    print("\n  Groups / groupes:")
    for group in DEMO_GROUPS:
        print(f"      {group.name} ({group.kind})")
    reader, sender, quota, hours = DEMO_PAIR
    print(f"  Pair / binôme: {reader} + {sender}, {quota} a week / par semaine, {hours} h")
    print(f"\n  Demo password for every account / mot de passe: {DEMO_PASSWORD}")
    print(f"  Node logs / journaux: {base}/<node>/node.log")
    if sink_port is None:
        print("  E-mail: off (aiosmtpd is not installed: pip install 'tsfnode[dev]')")
    else:
        print(
            f"  E-mail notices / avis par e-mail: SMTP sink 127.0.0.1:{sink_port},"
            f" printed here and kept in {base}/mail/"
        )
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
    sink.stop()
    print("Demo network stopped / réseau arrêté.", flush=True)
    return exit_status
