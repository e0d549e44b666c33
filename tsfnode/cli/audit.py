"""`tsfnode audit verify | export`: the audit log of cases, from the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from protocol.audit import AuditEntry
from protocol.errors import IntegrityError
from tsfnode.cases.audit_log import json_lines, read_entries, verify_log
from tsfnode.errors import NodeError
from tsfnode.nodedir import NodeDir
from tsfnode.store import Store


async def open_store(directory: Path, *, readonly: bool = True) -> Store:
    """The database of the node in ``directory`` (NodeError if there is none)."""
    node_dir = NodeDir(directory)
    if not node_dir.exists():
        raise NodeError(f"{directory} is not a node directory (tsfnode init)")
    return await Store.open(node_dir.database, readonly=readonly)


def audit_verify(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with await open_store(args.directory) as store:
            return await verify_log(store)

    try:
        count = asyncio.run(run())
    except IntegrityError as exc:
        print(f"Audit log BROKEN / journal d'audit ALTÉRÉ: {exc}", file=sys.stderr)
        return 1
    print(f"Audit log intact / journal d'audit intact: {count} entries, chain and head verified")
    return 0


def audit_export(args: argparse.Namespace) -> int:
    async def run() -> list[AuditEntry]:
        async with await open_store(args.directory) as store:
            return await read_entries(store)

    entries = asyncio.run(run())
    out = sys.stdout if args.out is None else open(args.out, "w", encoding="utf-8")
    try:
        out.writelines(json_lines(entries))
    finally:
        if out is not sys.stdout:
            out.close()
    if args.out is not None:
        print(f"{len(entries)} entries written to {args.out}", file=sys.stderr)
    return 0


def add_parsers(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the audit log of cases: verify its chain, export it")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    p = audit_sub.add_parser("verify", help="check the hash chain and its head")
    p.add_argument("directory", type=Path)
    p.set_defaults(handler=audit_verify)
    p = audit_sub.add_parser("export", help="write the log as JSON lines")
    p.add_argument("directory", type=Path)
    p.add_argument("--out", type=Path, default=None, help="a file (default: standard output)")
    p.set_defaults(handler=audit_export)
