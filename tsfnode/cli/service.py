"""`tsfnode service unit | install`: the node as a systemd service, run by a user of its
own, able to write only its directory, restarted when it fails, watched by systemd's
watchdog; its logs (one JSON object per line on stderr) go to the journal.

    tsfnode service install /var/lib/tsfnode          # as root: user, unit, permissions
    systemctl daemon-reload && systemctl enable --now tsfnode
    journalctl -u tsfnode -o cat | jq .               # the node's log
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from tsfnode.config import load_config
from tsfnode.errors import NodeError
from tsfnode.nodedir import NodeDir

WATCHDOG_S = 60


def unit_text(directory: Path, *, user: str, executable: str, name: str = "") -> str:
    """The unit file for the node in ``directory``."""
    directory = directory.resolve()
    under_home = directory.is_relative_to("/home") or directory.is_relative_to("/root")
    port = load_config(NodeDir(directory).config).http_port if NodeDir(directory).exists() else 0
    privileged = 0 < port < 1024
    lines = [
        "# Written by `tsfnode service install`; regenerate it rather than edit it.",
        "[Unit]",
        f"Description=tsfnode teleradiology node{f' ({name})' if name else ''}",
        "Documentation=https://github.com/tsfnode/tsfnode/blob/main/README.md",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={executable} run {directory}",
        "ExecReload=/bin/kill -HUP $MAINPID",
        f"User={user}",
        f"Group={user}",
        "UMask=0077",
        "Restart=on-failure",
        "RestartSec=5s",
        f"WatchdogSec={WATCHDOG_S}s",
        "TimeoutStartSec=120s",
        "TimeoutStopSec=60s",
        "LimitNOFILE=65536",
        "# Logs: one JSON object per line on stderr, kept by the journal.",
        "StandardOutput=journal",
        "StandardError=journal",
        "SyslogIdentifier=tsfnode",
        "# The node writes its own directory and nothing else.",
        "ProtectSystem=strict",
        f"ReadWritePaths={directory}",
        f"ProtectHome={'read-only' if under_home else 'true'}",
        "PrivateTmp=true",
        "PrivateDevices=true",
        "NoNewPrivileges=true",
        "ProtectKernelTunables=true",
        "ProtectKernelModules=true",
        "ProtectKernelLogs=true",
        "ProtectControlGroups=true",
        "ProtectClock=true",
        "ProtectHostname=true",
        "RestrictSUIDSGID=true",
        "RestrictRealtime=true",
        "RestrictNamespaces=true",
        "LockPersonality=true",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "SystemCallArchitectures=native",
        f"CapabilityBoundingSet={'CAP_NET_BIND_SERVICE' if privileged else ''}",
        f"AmbientCapabilities={'CAP_NET_BIND_SERVICE' if privileged else ''}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def _executable() -> str:
    found = shutil.which("tsfnode")
    if found:
        return str(Path(found).resolve())
    return f"{Path(sys.executable).resolve()} -m tsfnode"


def _ensure_user(user: str, home: Path) -> None:
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise NodeError(f"there is no user {user!r}: run as root to create it, or give --user")
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    subprocess.run(  # noqa: S603 - fixed arguments; the user name is the operator's
        [
            useradd,
            "--system",
            "--home-dir",
            str(home),
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            user,
        ],
        check=True,
    )


def _own(directory: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(directory):
        for name in [*dirs, *files]:
            os.chown(Path(root) / name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    os.chown(directory, entry.pw_uid, entry.pw_gid)
    os.chmod(directory, 0o700)


def service_unit(args: argparse.Namespace) -> int:
    print(
        unit_text(args.directory, user=args.user, executable=args.executable or _executable()),
        end="",
    )
    return 0


def service_install(args: argparse.Namespace) -> int:
    directory: Path = args.directory.resolve()
    if not NodeDir(directory).exists():
        raise NodeError(f"{directory} is not a node directory: run `tsfnode init` first")
    name = load_config(NodeDir(directory).config).name
    if args.create_user:
        _ensure_user(args.user, directory)
    if os.geteuid() == 0:
        _own(directory, args.user)
    unit = args.unit_dir / f"{args.name}.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(
        unit_text(directory, user=args.user, executable=args.executable or _executable(), name=name)
    )
    print(f"Wrote {unit}")
    print(f"Then: systemctl daemon-reload && systemctl enable --now {args.name}")
    print(f"Logs: journalctl -u {args.name} -o cat")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    service = sub.add_parser("service", help="run the node as a systemd service")
    inner = service.add_subparsers(dest="service_command", required=True, metavar="ACTION")
    for action, handler, help_text in (
        ("unit", service_unit, "print the unit file"),
        ("install", service_install, "create the user, write the unit, own the directory"),
    ):
        p = inner.add_parser(action, help=help_text)
        p.add_argument("directory", type=Path)
        p.add_argument("--user", default="tsfnode", help="the user the node runs as")
        p.add_argument("--executable", help="the tsfnode command (default: this one)")
        if action == "install":
            p.add_argument("--unit-dir", type=Path, default=Path("/etc/systemd/system"))
            p.add_argument("--name", default="tsfnode", help="the unit's name")
            p.add_argument("--no-create-user", dest="create_user", action="store_false")
        p.set_defaults(handler=handler)
