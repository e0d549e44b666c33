"""`tsfnode key rotate` and `tsfnode readmit`: a node or a person moves to a new key
(SPEC.md §8.5).

    tsfnode key rotate /var/lib/tsfnode                      # the node's key (node stopped)
    tsfnode key rotate /var/lib/tsfnode --person dr.diallo   # a person's key
    tsfnode readmit NEW_ID --replaces OLD_ID --revoke --network sahel --key anchor.key --out r.tsfd

A rotation is signed by the old key and countersigned by the new one; the node takes it
into its directory, and its peers learn it by gossip. The id of a node or a person *is*
its key, so the id changes: peers read every record that names the old id with the new
one. A node keeps its old key in ``retired-keys/`` to open what was sealed to it before.
``readmit`` is the anchor's answer to a lost or stolen key: a revocation of the old key
(``--revoke``: it was stolen) and a certificate of the new key that replaces it.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from pathlib import Path
from typing import Any

from bootstrap import tools
from bootstrap.keys import KeyFileError, sealing_key
from bootstrap.network import NetworkFile, NetworkFileError, load_network
from protocol.directory import ROTATION_GRACE_MS, sign_rotation
from protocol.errors import ProtocolError
from protocol.identity import Identity, PublicIdentity
from tsfnode.clock import Clock
from tsfnode.errors import NodeError
from tsfnode.keyfile import read_key, retired_key_path, write_key
from tsfnode.nodedir import NodeDir, read_run_info

ROTATION_DAYS = 3650  # a rotation outlives every record of the key it retires
DAY_MS = 86_400_000


async def _rotate(node_dir: NodeDir, username: str | None, now: int) -> tuple[str, str]:
    """Sign the rotation, take it into the node's directory, then put the new key in
    place. Returns the old and the new id."""
    from tsfnode.config import load_config
    from tsfnode.network.directory import DirectoryService
    from tsfnode.store import Store
    from tsfnode.store.accounts import AccountStore

    config = load_config(node_dir.config)
    node = read_key(node_dir.key)
    try:
        network = load_network(config.network, base=node_dir.root)
    except NetworkFileError as exc:
        raise NodeError(str(exc)) from None
    store = await Store.open(node_dir.database)
    try:
        accounts = AccountStore(store.db)
        if username is not None:
            account = await accounts.account(username)
            if account is None or account.person_key is None:
                raise NodeError(f"no account {username!r} with a person key on this node")
            old_path = node_dir.people / f"{username}.key"
            old = read_key(old_path)
            if old.public.key != account.person_key:
                raise NodeError(f"{old_path} is not the key of account {username!r}")
        else:
            old = node
        new = Identity.generate(secrets.token_bytes)
        service = DirectoryService(network, old, store)
        await service.load(now)
        view = service.view(now)
        if not (view.is_admitted(old.public.key) or old.public.key in view.members):
            what = (
                "this node is not admitted" if username is None else "this person is not attested"
            )
            raise NodeError(f"{what} in the directory: there is no standing to hand over")
        record = sign_rotation(
            old,
            new,
            not_before=now,
            network=network.name,
            version=service.next_version(now),
            now=now,
            ttl=ROTATION_DAYS * DAY_MS,
        )
        outcome = await service.add([record], now)
        if outcome["added"] != 1:
            raise NodeError(f"the directory refused the rotation ({', '.join(outcome)})")
        if username is not None:
            write_key(old_path, new, seal_with=sealing_key(node))
            await accounts.set_person_key(username, new.public.key)
        else:
            kept = retired_key_path(node_dir, old.public.key)
            kept.parent.mkdir(mode=0o700, exist_ok=True)
            write_key(kept, old)
            for path in sorted(node_dir.people.glob("*.key")):  # sealed with the node's key
                write_key(path, read_key(path), seal_with=sealing_key(new))
            write_key(node_dir.key, new)
            await store.set_meta("node_id", new.public.text)
        return old.public.text, new.public.text
    finally:
        await store.close()


async def _replace(node_dir: NodeDir) -> tuple[str, str]:
    """A new node key in place of a lost or stolen one, without a rotation (the old key
    is not trusted to sign one): person keys sealed with the old key are sealed again if
    it is still readable. Returns the old and the new id."""
    from tsfnode.store import Store

    new = Identity.generate(secrets.token_bytes)
    store = await Store.open(node_dir.database)
    try:
        old_text = await store.get_meta("node_id") or "?"
        try:
            old: Identity | None = read_key(node_dir.key)
        except NodeError:
            old = None
        people = sorted(node_dir.people.glob("*.key"))
        if old is not None:
            for path in people:
                write_key(path, read_key(path), seal_with=sealing_key(new))
        elif people:
            print(
                "The person keys of this node were sealed with the lost key: their accounts "
                "need new keys, attested again (tsfnode member attest ... --replaces OLD_ID)."
            )
        write_key(node_dir.key, new)
        await store.set_meta("node_id", new.public.text)
        return old_text, new.public.text
    finally:
        await store.close()


def key_rotate(args: argparse.Namespace) -> int:
    node_dir = NodeDir(args.directory)
    if not node_dir.config.exists():
        raise NodeError(f"{args.directory} is not a node directory (no config.toml)")
    if read_run_info(node_dir) is not None:
        raise NodeError("stop the node first (tsfnode service stop, or Ctrl-C), then rotate")
    if args.lost:
        if args.person:
            raise NodeError(
                "--lost is for the node's key; a person's lost key is replaced by "
                "a coordinator (tsfnode member attest ... --replaces OLD_ID)"
            )
        old, new = asyncio.run(_replace(node_dir))
        print("Replaced the node's key (lost or stolen): no rotation was signed with it.")
        print(f"Old id: {old}")
        print(f"New id: {new}")
        print("Ask the network's anchor to admit the new id in place of the old one:")
        print(
            f"  tsfnode readmit {new} --replaces {old} --revoke --network NET --key ANCHOR "
            "--out readmit.tsfd"
        )
        print("then take the records in: tsfnode directory DIR --add readmit.tsfd")
        return 0
    try:
        old, new = asyncio.run(_rotate(node_dir, args.person, Clock().now_ms()))
    except (KeyFileError, ProtocolError) as exc:
        raise NodeError(str(exc)) from None
    who = f"person {args.person!r}" if args.person else "node"
    print(f"Rotated the {who}'s key.")
    print(f"Old id: {old}")
    print(f"New id: {new}")
    hours = ROTATION_GRACE_MS // 3_600_000
    print(f"Peers learn it by gossip; the old key signs nothing valid after {hours} hours.")
    if args.person is None:
        print(f"Back up {node_dir.key} again: it is the node's identity now. Start the node.")
    return 0


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


def readmit(args: argparse.Namespace) -> int:
    network = _network(args.network)
    issuer = read_key(args.key)
    node, old = _id(args.node, "node id"), _id(args.replaces, "replaced node id")
    if node == old:
        raise NodeError("--replaces names the same id: a re-admission is under a new key")
    if args.out.exists():
        raise NodeError(f"{args.out} already exists: choose another --out file")
    now = Clock().now_ms()
    try:
        records = []
        if args.revoke:
            records.append(tools.revoke(network, issuer, old, reason=args.reason, now=now))
        records.append(
            tools.admit_node(network, issuer, node, now=now + 1, days=args.days, replaces=old)
        )
    except ProtocolError as exc:
        raise NodeError(str(exc)) from None
    args.out.write_bytes(b"".join(records))
    print(f"Wrote {len(records)} signed record(s) to {args.out}")
    print(f"Take them into a node with: tsfnode directory NODE_DIR --add {args.out}")
    return 0


def add_rotate_parser(key_sub: Any) -> None:
    """`tsfnode key rotate` (under the `key` command of cli/admin.py)."""
    p = key_sub.add_parser("rotate", help="move a node (stopped) or a person to a new key")
    p.add_argument("directory", type=Path, help="the node directory")
    p.add_argument("--person", metavar="USERNAME", help="rotate this account's person key")
    p.add_argument(
        "--lost",
        action="store_true",
        help="the node's key was lost or stolen: a new key, for the anchor to readmit",
    )
    p.set_defaults(handler=key_rotate)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "readmit", help="admit a node again under a new key, in place of a lost or stolen one"
    )
    p.add_argument("node", help="the node's new id")
    p.add_argument("--replaces", required=True, help="the lost or stolen id")
    p.add_argument("--revoke", action="store_true", help="revoke the old key too (stolen)")
    p.add_argument("--reason", default="key lost or stolen")
    p.add_argument("--network", required=True, help="network name or file")
    p.add_argument("--key", type=Path, required=True, help="anchor key, or the admitting group's")
    p.add_argument("--out", type=Path, required=True, help="records file to write")
    p.add_argument("--days", type=int, default=365)
    p.set_defaults(handler=readmit)
