"""`tsfnode key rotate`: a node or a person moves to a new key
(SPEC.md §8.5).

    tsfnode key rotate /var/lib/tsfnode                      # the node's key (node stopped)
    tsfnode key rotate /var/lib/tsfnode --person dr.diallo   # a person's key

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

from bootstrap.keys import KeyFileError, sealing_key
from bootstrap.network import NetworkFile, NetworkFileError, load_network
from protocol.directory import ROTATION_GRACE_MS, sign_rotation
from protocol.errors import ProtocolError
from protocol.identity import Identity
from tsfnode.clock import Clock
from tsfnode.errors import NodeError
from tsfnode.keyfile import read_key, retired_key_path, write_key
from tsfnode.nodedir import NodeDir, read_run_info

ROTATION_DAYS = 3650  # a rotation outlives every record of the key it retires
DAY_MS = 86_400_000


def node_network(node_dir: NodeDir) -> NetworkFile:
    """The network the node of ``node_dir`` belongs to (its config names it)."""
    from tsfnode.config import load_config

    config = load_config(node_dir.config)
    try:
        return load_network(config.network, base=node_dir.root)
    except NetworkFileError as exc:
        raise NodeError(str(exc)) from None


async def _rotate(node_dir: NodeDir, username: str | None, now: int) -> tuple[str, str]:
    """Sign the rotation, take it into the node's directory, then put the new key in
    place. Returns the old and the new id."""
    from tsfnode.network.directory import DirectoryService
    from tsfnode.store import Store
    from tsfnode.store.accounts import AccountStore

    network = node_network(node_dir)
    node = read_key(node_dir.key)
    async with await Store.open(node_dir.database) as store:
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


async def _replace(node_dir: NodeDir) -> tuple[str, str]:
    """A new node key in place of a lost or stolen one, without a rotation (the old key
    is not trusted to sign one): person keys sealed with the old key are sealed again if
    it is still readable. Returns the old and the new id."""
    from tsfnode.store import Store

    new = Identity.generate(secrets.token_bytes)
    async with await Store.open(node_dir.database) as store:
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
