"""The `tsfnode` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tsfnode import __version__
from tsfnode.config import DEFAULT_PORT, NodeConfig
from tsfnode.errors import NodeError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsfnode", description="A node of the tsf humanitarian teleradiology network."
    )
    parser.add_argument("--version", action="version", version=f"tsfnode {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create a node directory (config, key, database)")
    p.add_argument("directory", type=Path)
    p.add_argument("--name", required=True, help='the institution, e.g. "Hôpital Erasme"')
    p.add_argument("--country", default="", help="two-letter country code, e.g. BE")
    p.add_argument("--network", default="demo", help="the network this node joins")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (0: any)")
    p.add_argument("--force", action="store_true", help="replace an existing node (kept aside)")

    p = sub.add_parser("run", help="serve the node until Ctrl-C or SIGTERM")
    p.add_argument("directory", type=Path)

    p = sub.add_parser("status", help="print the node's id, addresses and database state")
    p.add_argument("directory", type=Path)

    p = sub.add_parser(
        "verify",
        help="check a signed document (who signed what, and when), or a printed report's "
        "verification code (or its PDF) against this node's reports",
    )
    p.add_argument("file", help="a signed document, a printed report (PDF) or its code")
    p.add_argument("--node", type=Path, help="the node directory that holds the reports")

    from tsfnode.cli.admin import add_parsers
    from tsfnode.cli.audit import add_parsers as add_audit_parsers
    from tsfnode.cli.backup import add_parsers as add_backup_parsers
    from tsfnode.cli.doctor import add_parser as add_doctor_parser
    from tsfnode.cli.intake import add_parser as add_import_parser
    from tsfnode.cli.scenario import add_parser as add_scenario_parser
    from tsfnode.cli.service import add_parsers as add_service_parsers
    from tsfnode.cli.transfers import add_parsers as add_transfer_parsers

    add_parsers(sub)
    add_import_parser(sub)
    add_transfer_parsers(sub)
    add_audit_parsers(sub)
    add_scenario_parser(sub)
    add_backup_parsers(sub)
    add_service_parsers(sub)
    add_doctor_parser(sub)

    p = sub.add_parser("demo", help="start a small local network on 127.0.0.1")
    p.add_argument("--dir", type=Path, default=Path("demo-network"), help="where the nodes live")
    p.add_argument("--base-port", type=int, default=8471, help="first port (0: any free port)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        handler = getattr(args, "handler", None)
        if handler is not None:
            return int(handler(args))
        if args.command == "init":
            if args.country and (len(args.country) != 2 or not args.country.isalpha()):
                raise NodeError("--country must be a two-letter code such as BE or BJ")
            if not 0 <= args.port <= 65535:
                raise NodeError("--port must be between 0 and 65535")
            from tsfnode.node import init_node

            config = NodeConfig(
                name=args.name.strip(),
                country=args.country.upper(),
                network=args.network,
                http_host=args.host,
                http_port=args.port,
            )
            if not config.name:
                raise NodeError("--name must not be empty")
            identity = init_node(args.directory, config, force=args.force)
            print(f"Created node {config.name!r} in {args.directory}")
            print(f"Id: {identity.public.text}")
            print(f"Start it with: tsfnode run {args.directory}")
            print(f"Back up {args.directory / 'node.key'}: it is this node's identity.")
        elif args.command == "run":
            from tsfnode.node import run_node

            run_node(args.directory)
        elif args.command == "status":
            from tsfnode.node import format_status, node_status

            print(format_status(asyncio.run(node_status(args.directory))))
        elif args.command == "verify":
            from tsfnode.cli.verify import verify

            return verify(args.file, args.node)
        elif args.command == "demo":
            from tsfnode.cli.demo import run_demo

            return run_demo(args.dir, args.base_port)
    except NodeError as exc:
        print(f"tsfnode: {exc}", file=sys.stderr)
        return exc.exit_status
    return 0
