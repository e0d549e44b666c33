"""`tsfnode dicom bind | unbind | bindings`: the workstations bound to accounts, which
query and retrieve through the node's Query/Retrieve SCP (dicomweb/qr.py)."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from tsfnode.cli.audit import open_store
from tsfnode.errors import NodeError
from tsfnode.store import Store


async def _account_id(store: Store, username: str) -> int:
    from tsfnode.store.accounts import AccountStore

    account = await AccountStore(store.db).account(username)
    if account is None:
        raise NodeError(f"no account named {username!r} on this node")
    return account.id


def dicom_bind(args: argparse.Namespace) -> int:
    from tsfnode.auth.accounts import bind_workstation

    async def run() -> str:
        store = await open_store(args.directory, readonly=False)
        try:
            return await bind_workstation(
                store,
                account_id=await _account_id(store, args.account),
                ae_title=args.ae,
                host=args.host,
                port=str(args.port),
                now=int(time.time() * 1000),
            )
        finally:
            await store.close()

    title = asyncio.run(run())
    print(f"{title} ({args.host}:{args.port}) bound to {args.account}")
    return 0


def dicom_unbind(args: argparse.Namespace) -> int:
    from tsfnode.store.bindings import BindingStore

    async def run() -> bool:
        store = await open_store(args.directory, readonly=False)
        try:
            account_id = await _account_id(store, args.account)
            return await BindingStore(store.db).unbind(args.ae.strip(), account_id=account_id)
        finally:
            await store.close()

    if not asyncio.run(run()):
        raise NodeError(f"{args.ae} is not bound to {args.account}")
    print(f"{args.ae} no longer bound to {args.account}")
    return 0


def dicom_bindings(args: argparse.Namespace) -> int:
    from tsfnode.store.bindings import BindingStore

    async def run() -> list[str]:
        store = await open_store(args.directory, readonly=False)
        try:
            found = await BindingStore(store.db).bindings_of(await _account_id(store, args.account))
            return [f"{b.ae_title}\t{b.host}:{b.port}" for b in found]
        finally:
            await store.close()

    for line in asyncio.run(run()):
        print(line)
    return 0


def add_parsers(sub: Any) -> None:
    dicom = sub.add_parser(
        "dicom", help="workstations bound to accounts, for DICOM query/retrieve (C-FIND, C-MOVE)"
    )
    dicom_sub = dicom.add_subparsers(dest="dicom_command", required=True)
    p = dicom_sub.add_parser(
        "bind", help="bind a workstation's AE title to an account (its C-MOVE destination)"
    )
    p.add_argument("directory", type=Path)
    p.add_argument("--account", required=True, help="the reader's user name")
    p.add_argument("--ae", required=True, help="the workstation's AE title")
    p.add_argument("--host", required=True, help="where the workstation listens")
    p.add_argument("--port", required=True, type=int, help="the workstation's DICOM port")
    p.set_defaults(handler=dicom_bind)
    p = dicom_sub.add_parser("unbind", help="remove a workstation's binding")
    p.add_argument("directory", type=Path)
    p.add_argument("--account", required=True)
    p.add_argument("--ae", required=True)
    p.set_defaults(handler=dicom_unbind)
    p = dicom_sub.add_parser("bindings", help="list an account's workstations")
    p.add_argument("directory", type=Path)
    p.add_argument("--account", required=True)
    p.set_defaults(handler=dicom_bindings)
