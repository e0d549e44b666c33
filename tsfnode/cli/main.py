"""The `tsfnode` command."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from tsfnode import __version__
from tsfnode.errors import NodeError

# The modules that add sub-commands, each with the function that adds them, in the
# order of `tsfnode --help`; and the module of each of their commands.
PARSER_MODULES = {
    "admin": "add_parsers",
    "intake": "add_parser",
    "transfers": "add_parsers",
    "audit": "add_parsers",
    "scenario": "add_parser",
    "backup": "add_parsers",
    "service": "add_parsers",
    "doctor": "add_parser",
    "dicom": "add_parsers",
}
COMMAND_MODULES = {
    **dict.fromkeys(
        ["account", "key", "network", "admit", "readmit", "group", "member", "revoke"],
        "admin",
    ),
    **dict.fromkeys(["directory", "peers", "nearest"], "admin"),
    **dict.fromkeys(["import", "studies", "review", "send"], "intake"),
    **dict.fromkeys(["seal", "transfers"], "transfers"),
    "audit": "audit",
    "scenario": "scenario",
    **dict.fromkeys(["backup", "restore", "backup-key"], "backup"),
    "service": "service",
    "doctor": "doctor",
    "dicom": "dicom",
}


def _command(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (its first word that is not an option)."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def _parser(command: str | None = None) -> argparse.ArgumentParser:
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
    p.add_argument("--port", type=int, help="port to listen on (0: any; 8470 if not given)")
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

    # Only the module of the command asked for is imported (all of them for --help or
    # a command not in the table, so that argparse lists every command): `tsfnode
    # studies` does not pay for the web application, aiohttp or pydicom.
    wanted = {COMMAND_MODULES[command]} if command in COMMAND_MODULES else set(PARSER_MODULES)
    for name in PARSER_MODULES:
        if name in wanted:
            module = importlib.import_module(f"tsfnode.cli.{name}")
            getattr(module, PARSER_MODULES[name])(sub)

    p = sub.add_parser("demo", help="start a small local network on 127.0.0.1")
    p.add_argument("--dir", type=Path, default=Path("demo-network"), help="where the nodes live")
    p.add_argument("--base-port", type=int, default=8471, help="first port (0: any free port)")
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = _parser(_command(words)).parse_args(words)
    try:
        handler = getattr(args, "handler", None)
        if handler is not None:
            return int(handler(args))
        if args.command == "init":
            if args.country and (len(args.country) != 2 or not args.country.isalpha()):
                raise NodeError("--country must be a two-letter code such as BE or BJ")
            from tsfnode.config import DEFAULT_PORT, NodeConfig

            port = DEFAULT_PORT if args.port is None else args.port
            if not 0 <= port <= 65535:
                raise NodeError("--port must be between 0 and 65535")
            from tsfnode.node import init_node

            config = NodeConfig(
                name=args.name.strip(),
                country=args.country.upper(),
                network=args.network,
                http_host=args.host,
                http_port=port,
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
            import asyncio

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
