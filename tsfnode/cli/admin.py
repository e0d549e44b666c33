"""The operators' commands: keys, networks, admission, groups, members, the directory,
peers and the nearest node. Offline tools write signed records to a ``.tsfd`` file;
`tsfnode directory add` takes such a file into a node."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bootstrap import tools
from bootstrap.keys import KeyFileError, write_key
from bootstrap.network import NetworkFile, NetworkFileError, load_network
from protocol.documents import split_documents
from protocol.errors import ProtocolError
from protocol.identity import Identity, PublicIdentity
from tsfnode.cli.key import add_rotate_parser, node_network
from tsfnode.clock import Clock
from tsfnode.errors import NodeError
from tsfnode.keyfile import read_key
from tsfnode.nodedir import NodeDir, read_run_info


def _now() -> int:
    return Clock().now_ms()


def _network(name: str) -> NetworkFile:
    try:
        return load_network(name)
    except NetworkFileError as exc:
        raise NodeError(str(exc)) from None


def _id(text: str, what: str) -> PublicIdentity:
    try:
        return PublicIdentity.from_text(text)
    except ProtocolError as exc:
        raise NodeError(f"{what} {text!r}: {exc}") from None


def _write_records(path: Path, records: list[bytes]) -> None:
    if path.exists():
        raise NodeError(f"{path} already exists: choose another --out file")
    path.write_bytes(b"".join(records))
    print(f"Wrote {len(records)} signed record(s) to {path}")
    print(f"Take them into a node with: tsfnode directory NODE_DIR --add {path}")


def _date_ms(text: str) -> int:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise NodeError(f"date {text!r}: use YYYY-MM-DD") from None
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def _signed(make: Any) -> list[bytes]:
    try:
        out = make()
    except ProtocolError as exc:  # LocalProtocolError: a value the tools refuse
        raise NodeError(str(exc)) from None
    return out if isinstance(out, list) else [out]


# --- keys and networks ---------------------------------------------------------------


def _new_key(path: Path) -> Identity:
    """A new identity written to ``path`` (mode 0600); an existing file is never touched."""
    identity = Identity.generate(secrets.token_bytes)
    try:
        write_key(path, identity)
    except KeyFileError as exc:
        raise NodeError(str(exc)) from None
    return identity


def key_new(args: argparse.Namespace) -> int:
    identity = _new_key(args.file)
    print(f"Created key {args.file} (mode 0600). Id: {identity.public.text}")
    print("Keep it offline and backed up; whoever holds it signs in its name.")
    return 0


def key_show(args: argparse.Namespace) -> int:
    print(read_key(args.file).public.text)
    return 0


def network_create(args: argparse.Namespace) -> int:
    if args.out.exists():
        raise NodeError(f"{args.out} already exists: choose another --out file")
    anchor = _new_key(args.anchor_key)
    network = NetworkFile(args.name, (anchor.public,), tuple(args.seed), args.description)
    try:
        from bootstrap.network import parse_network

        parse_network(network.to_toml(), str(args.out))
    except NetworkFileError as exc:
        raise NodeError(str(exc)) from None
    args.out.write_text(network.to_toml(), encoding="utf-8")
    print(f"Created network {args.name!r}: {args.out}")
    print(f"Anchor key: {args.anchor_key} (id {anchor.public.text}); keep it offline.")
    return 0


def network_show(args: argparse.Namespace) -> int:
    network = _network(args.network)
    print(f"Network:  {network.name}")
    if network.description:
        print(f"About:    {network.description}")
    for anchor in network.anchors:
        print(f"Anchor:   {anchor.text}")
    for seed in network.seeds or ("(none)",):
        print(f"Seed:     {seed}")
    return 0


# --- records -------------------------------------------------------------------------


def admit(args: argparse.Namespace) -> int:
    network = _network(args.network)
    issuer = read_key(args.key)
    node = _id(args.node, "node id")
    records = _signed(lambda: tools.admit_node(network, issuer, node, now=_now(), days=args.days))
    _write_records(args.out, records)
    return 0


def readmit(args: argparse.Namespace) -> int:
    """The anchor's answer to a lost or stolen node key (SPEC.md §8.5): the old key
    revoked (``--revoke``: it was stolen) and the new key admitted in its place."""
    network = _network(args.network)
    issuer = read_key(args.key)
    node, old = _id(args.node, "node id"), _id(args.replaces, "replaced node id")
    if node == old:
        raise NodeError("--replaces names the same id: a re-admission is under a new key")
    now = _now()
    records = []
    if args.revoke:
        records += _signed(lambda: tools.revoke(network, issuer, old, reason=args.reason, now=now))
    records += _signed(
        lambda: tools.admit_node(network, issuer, node, now=now + 1, days=args.days, replaces=old)
    )
    _write_records(args.out, records)
    return 0


def group_create(args: argparse.Namespace) -> int:
    network = _network(args.network)
    anchor = read_key(args.anchor_key)
    if args.group_key.exists():
        group = read_key(args.group_key)
    else:
        group = _new_key(args.group_key)
        print(f"Created group key {args.group_key} (id {group.public.text})")
    coordinators = [_id(c, "coordinator id") for c in args.coordinator]
    records = _signed(
        lambda: tools.create_group(
            network,
            anchor,
            group,
            name=args.name,
            kind=args.kind,
            routing=args.routing,
            may_admit=args.may_admit,
            coordinators=coordinators,
            subspecialities=args.subspeciality,
            now=_now(),
            days=args.days,
        )
    )
    _write_records(args.out, records)
    return 0


def member_attest(args: argparse.Namespace) -> int:
    network = _network(args.network)
    coordinator = read_key(args.key)
    records = _signed(
        lambda: tools.attest_member(
            network,
            coordinator,
            group=_id(args.group, "group id"),
            member=_id(args.member, "member id"),
            role=args.role,
            display_name=args.name,
            registration=args.registration,
            diploma=args.diploma,
            charter_accepted=_date_ms(args.charter_date),
            facility=args.facility,
            subspecialities=args.subspeciality,
            languages=args.language or ["fr"],
            home_node=_id(args.home_node, "home node id"),
            weekly_capacity=args.weekly_capacity,
            now=_now(),
            days=args.days,
            replaces=None if args.replaces is None else _id(args.replaces, "replaced id"),
        )
    )
    _write_records(args.out, records)
    return 0


def revoke(args: argparse.Namespace) -> int:
    network = _network(args.network)
    signer = read_key(args.key)
    target = _id(args.target, "target id")
    records = _signed(lambda: tools.revoke(network, signer, target, reason=args.reason, now=_now()))
    _write_records(args.out, records)
    return 0


# --- a node's directory and peers ----------------------------------------------------


def _running_url(directory: Path) -> str | None:
    info = read_run_info(NodeDir(directory))
    return None if info is None else str(info["url"])


def _api(url: str, path: str, data: bytes | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - the node's own local address
        f"{url}{path}", data=data, headers={"Content-Type": "application/octet-stream"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise NodeError(f"the node refused: {exc.read().decode(errors='replace')}") from None
    except OSError as exc:
        raise NodeError(f"cannot reach the node at {url}: {exc}") from None


def directory_add(args: argparse.Namespace) -> int:
    records: list[bytes] = []
    for path in args.files:
        try:
            records += split_documents(path.read_bytes())
        except OSError as exc:
            raise NodeError(f"cannot read {path}: {exc.strerror}") from None
        except ProtocolError as exc:
            raise NodeError(f"{path} is not a records file: {exc}") from None
    url = _running_url(args.directory)
    if url is not None:
        outcome = _api(url, "/api/v1/directory/records", b"".join(records))
    else:
        outcome = asyncio.run(_add_offline(args.directory, records))
    print(", ".join(f"{k}: {v}" for k, v in sorted(outcome.items())) or "nothing to add")
    ignored = sum(v for k, v in outcome.items() if k.startswith("ignored"))
    return 1 if ignored else 0


async def _add_offline(directory: Path, records: list[bytes]) -> dict[str, int]:
    from tsfnode.network.directory import DirectoryService
    from tsfnode.store import Store

    node_dir = NodeDir(directory)
    network = node_network(node_dir)
    identity = read_key(node_dir.key)
    async with await Store.open(node_dir.database) as store:
        service = DirectoryService(network, identity, store)
        await service.load(_now())
        return dict(await service.add(records, _now()))


def directory_search(args: argparse.Namespace) -> int:
    url = _running_url(args.directory)
    if url is None:
        raise NodeError(f"{args.directory} is not running: start it with 'tsfnode run'")
    query = urllib.parse.urlencode(
        {
            k: v
            for k, v in {
                "kind": args.kind,
                "role": args.role,
                "subspeciality": args.subspeciality,
                "language": args.language,
                "country": args.country,
            }.items()
            if v
        }
    )
    entries = _api(url, f"/api/v1/directory?{query}")
    if not entries:
        print("No match / aucun résultat.")
    for e in entries:
        d = e["details"]
        extra = ", ".join(
            f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in d.items() if v
        )
        print(f"{e['kind']:<7} {e['name']:<32} {e['id'][:15]}  {extra}")
    return 0


def peers(args: argparse.Namespace) -> int:
    url = _running_url(args.directory)
    if url is None:
        raise NodeError(f"{args.directory} is not running: start it with 'tsfnode run'")
    answer = _api(url, "/api/v1/peers")
    counts = answer["counts"]
    print(
        f"Peers: {counts.get('alive', 0)} alive, {counts.get('suspect', 0)} suspect, "
        f"{counts.get('down', 0)} down"
    )
    for p in answer["peers"]:
        twins = p.get("same_name_as") or []
        same = f"  SAME NAME AS / MÊME NOM QUE {', '.join(twins)}" if twins else ""
        print(
            f"  {p['status']:<8} {p['name']:<28} {p['country']:<3} {p['id'][:15]}"
            f"  {p['address']}{same}"
        )
    return 0


def nearest(args: argparse.Namespace) -> int:
    from tsfnode.network.nearest import probe_bytes_of, run_rank, study_bytes_of

    urls = list(args.urls)
    if args.lan:
        from tsfnode.network.discovery import browse

        found = asyncio.run(browse(args.lan_seconds, interface=args.mdns_interface))
        print(f"Found on the LAN / trouvés sur le réseau local: {len(found)}")
        urls += found
    if args.via:
        try:
            with urllib.request.urlopen(f"{args.via.rstrip('/')}/peer/v1/nodes", timeout=30) as r:  # noqa: S310
                urls += [n["addresses"][0] for n in json.loads(r.read()) if n["addresses"]]
        except OSError as exc:
            raise NodeError(f"cannot reach {args.via}: {exc}") from None
    if not urls:
        raise NodeError(
            "no candidate: give node URLs, --via URL of a node of the network, or --lan"
        )
    try:
        size = study_bytes_of(str(args.size_mb))
        probe = probe_bytes_of(str(args.probe_kib))
    except ValueError as exc:
        raise NodeError(f"--{str(exc).replace('_', '-')}") from None
    ranked = run_rank(urls, size=size, probe_bytes=probe)
    print(f"Sending {args.size_mb:g} MB / envoi de {args.size_mb:g} Mo:")
    for m in ranked:
        seconds = m.send_seconds(size)
        if seconds is None:
            print(f"  unreachable  {m.url}  ({m.error})")
        else:
            print(
                f"  {seconds:8.1f} s  {m.url}  RTT {m.rtt_ms:.0f} ms, "
                f"up {m.up_bps / 1000:.0f} kbit/s, down {m.down_bps / 1000:.0f} kbit/s"  # type: ignore[operator]
            )
    return 0


def account_add(args: argparse.Namespace) -> int:
    from tsfnode.auth.accounts import create_account

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else ""
    if not password:
        raise NodeError("give the password on standard input with --password-stdin")

    async def add() -> PublicIdentity | None:
        from tsfnode.store import Store

        node_dir = NodeDir(args.directory)
        async with await Store.open(node_dir.database) as store:
            return await create_account(
                store,
                username=args.username,
                display_name=args.name,
                role=args.role,
                password=password,
                language=args.language,
                now=_now(),
                people=node_dir.people,
            )

    person = asyncio.run(add())
    print(f"Account {args.username} ({args.role}) created")
    if person is not None:
        print(f"Person id: {person.text}")
        print("(a coordinator attests this id: tsfnode member attest --member ID ...)")
    return 0


def account_token(args: argparse.Namespace) -> int:
    from tsfnode.auth.accounts import create_token

    async def make() -> str:
        from tsfnode.store import Store

        async with await Store.open(NodeDir(args.directory).database) as store:
            return await create_token(
                store,
                username=args.username,
                purpose=args.purpose,
                days=args.days,
                now=_now(),
                label=args.label,
            )

    token = asyncio.run(make())
    print(token)
    use = "tsfnode send --token" if args.purpose == "send" else "a DICOMweb viewer"
    print(f"(for {use}; valid {args.days} days; shown once)", file=sys.stderr)
    return 0


def add_parsers(sub: Any) -> None:
    """The operators' sub-commands of `tsfnode`."""
    account = sub.add_parser("account", help="local accounts and their tokens")
    account_sub = account.add_subparsers(dest="account_command", required=True)
    p = account_sub.add_parser("add", help="create a local account")
    p.add_argument("directory", type=Path)
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=("sender", "reader", "coordinator", "admin"))
    p.add_argument("--name", required=True, help="display name")
    p.add_argument("--language", default="fr", choices=("fr", "en"))
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(handler=account_add)
    p = account_sub.add_parser(
        "token", help="a token for a sender's light client, or for a reader's DICOMweb viewer"
    )
    p.add_argument("directory", type=Path)
    p.add_argument("username")
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--purpose", choices=("send", "dicomweb"), default="send")
    p.add_argument("--label", default="", help="what the token is for (shown in lists)")
    p.set_defaults(handler=account_token)

    key = sub.add_parser("key", help="create or show a key (anchor, group, person)")
    key_sub = key.add_subparsers(dest="key_command", required=True)
    p = key_sub.add_parser("new", help="create a key file (mode 0600)")
    p.add_argument("file", type=Path)
    p.set_defaults(handler=key_new)
    p = key_sub.add_parser("show", help="print a key's id")
    p.add_argument("file", type=Path)
    p.set_defaults(handler=key_show)
    add_rotate_parser(key_sub)

    net = sub.add_parser("network", help="create or show a network")
    net_sub = net.add_subparsers(dest="network_command", required=True)
    p = net_sub.add_parser("create", help="a new network and its anchor key")
    p.add_argument("name")
    p.add_argument("--anchor-key", type=Path, required=True, help="where to write the key")
    p.add_argument("--out", type=Path, required=True, help="the network file to write")
    p.add_argument("--seed", action="append", default=[], help="a seed node URL")
    p.add_argument("--description", default="")
    p.set_defaults(handler=network_create)
    p = net_sub.add_parser("show", help="a network's anchors and seeds")
    p.add_argument("network", help="a name (bootstrap/networks) or a file")
    p.set_defaults(handler=network_show)

    def signer_args(p: Any, key_help: str) -> None:
        p.add_argument("--network", required=True, help="network name or file")
        p.add_argument("--key", type=Path, required=True, help=key_help)
        p.add_argument("--out", type=Path, required=True, help="records file to write")

    p = sub.add_parser("admit", help="admit a node (certificate signed by an anchor or group)")
    p.add_argument("node", help="the node's id")
    signer_args(p, "anchor key, or key of a group allowed to admit")
    p.add_argument("--days", type=int, default=365)
    p.set_defaults(handler=admit)
    p = sub.add_parser(
        "readmit", help="admit a node again under a new key, in place of a lost or stolen one"
    )
    p.add_argument("node", help="the node's new id")
    p.add_argument("--replaces", required=True, help="the lost or stolen id")
    p.add_argument("--revoke", action="store_true", help="revoke the old key too (stolen)")
    p.add_argument("--reason", default="key lost or stolen")
    signer_args(p, "anchor key, or key of the group that admitted the node")
    p.add_argument("--days", type=int, default=365)
    p.set_defaults(handler=readmit)

    group = sub.add_parser("group", help="reading groups")
    group_sub = group.add_subparsers(dest="group_command", required=True)
    p = group_sub.add_parser("create", help="certify a group and sign its record")
    p.add_argument("--network", required=True)
    p.add_argument("--anchor-key", type=Path, required=True)
    p.add_argument("--group-key", type=Path, required=True, help="created if missing")
    p.add_argument("--name", required=True)
    p.add_argument("--kind", required=True, choices=("institutional", "subspeciality", "community"))
    p.add_argument("--routing", default="assign", choices=("pair", "assign", "pool"))
    p.add_argument("--coordinator", action="append", required=True, help="coordinator id")
    p.add_argument("--subspeciality", action="append", default=[])
    p.add_argument("--may-admit", action="store_true", help="the group may admit nodes")
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(handler=group_create)

    member = sub.add_parser("member", help="attest or revoke members")
    member_sub = member.add_subparsers(dest="member_command", required=True)
    p = member_sub.add_parser("attest", help="a coordinator attests a member")
    signer_args(p, "the coordinator's key")
    p.add_argument("--group", required=True, help="group id")
    p.add_argument("--member", required=True, help="the member's id")
    p.add_argument("--role", required=True, choices=("reader", "sender", "coordinator"))
    p.add_argument("--name", required=True, help="display name")
    p.add_argument("--registration", default="", help="medical council registration")
    p.add_argument("--diploma", default="", help="speciality diploma")
    p.add_argument("--charter-date", required=True, help="date the charter was accepted")
    p.add_argument("--facility", default="", help="senders: their hospital")
    p.add_argument("--subspeciality", action="append", default=[])
    p.add_argument("--language", action="append", default=[])
    p.add_argument("--home-node", required=True, help="id of the member's home node")
    p.add_argument("--weekly-capacity", type=int, default=3)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--replaces", help="the member's lost key: this key takes its place")
    p.set_defaults(handler=member_attest)
    for parent in (member_sub, sub):
        p = parent.add_parser("revoke", help="revoke a key (member, node, group)")
        signer_args(p, "anchor, group, coordinator, or the key itself")
        p.add_argument("--target", required=True, help="id to revoke")
        p.add_argument("--reason", default="")
        p.set_defaults(handler=revoke)

    d = sub.add_parser("directory", help="search a node's directory, or add records to it")
    d.add_argument("directory", type=Path, help="the node directory")
    d.add_argument("--kind", choices=("node", "member", "group"))
    d.add_argument("--role", choices=("reader", "sender", "coordinator"))
    d.add_argument("--subspeciality")
    d.add_argument("--language")
    d.add_argument("--country")
    d.add_argument(
        "--add",
        dest="files",
        type=Path,
        nargs="+",
        default=None,
        help="records files (.tsfd) to take in",
    )
    d.set_defaults(handler=lambda a: directory_add(a) if a.files else directory_search(a))

    p = sub.add_parser("peers", help="the peers a running node sees: alive, suspect, down")
    p.add_argument("directory", type=Path)
    p.set_defaults(handler=peers)

    p = sub.add_parser("nearest", help="rank nodes by measured time to send a study")
    p.add_argument("urls", nargs="*", help="candidate node URLs")
    p.add_argument("--via", help="take the candidates from this node's list of nodes")
    p.add_argument("--lan", action="store_true", help="look for nodes on the LAN (mDNS)")
    p.add_argument("--lan-seconds", type=float, default=3.0, help="how long to look")
    p.add_argument("--mdns-interface", default="", help="address of the interface to use")
    p.add_argument("--size-mb", type=float, default=15.0, help="study size (default 15 MB)")
    p.add_argument("--probe-kib", type=int, default=256, help="bytes to measure with")
    p.set_defaults(handler=nearest)
