"""Creating, inspecting and serving a node directory (what `tsfnode init`, `status` and
`run` do)."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from protocol.identity import Identity
from tsfnode.app import create_app
from tsfnode.appkeys import PEERING
from tsfnode.clock import Clock
from tsfnode.config import NodeConfig, load_config
from tsfnode.errors import NodeError
from tsfnode.keyfile import read_key, write_key
from tsfnode.logs import AccessLogger, log, setup_logging
from tsfnode.nodedir import NodeDir
from tsfnode.store import SCHEMA_VERSION, Store

SHUTDOWN_TIMEOUT_S = 10.0  # requests in progress may finish
CLEANUP_TIMEOUT_S = 15.0  # then everything else
# The HTTP server's limits for slow or idle clients (issue 21). The keep-alive timeout
# closes a connection that has no request in progress, counted from its opening or its
# last answer: an idle one, and one whose request head has not come whole by then (a
# head trickled a byte at a time). Bodies are watched by app.py's ``slow_bodies``.
KEEPALIVE_S = 30.0
SERVER_SETTINGS: dict[str, Any] = {"keepalive_timeout": KEEPALIVE_S}


def init_node(directory: Path, config: NodeConfig, *, force: bool = False) -> Identity:
    """Create a node directory. An existing node is refused, or with ``force`` moved
    aside into ``DIR/replaced-<time>/`` (never deleted)."""
    node_dir = NodeDir(directory)
    if node_dir.exists():
        if not force:
            raise NodeError(
                f"{directory} already holds a node: use another directory, or --force to "
                "replace it (the old files are kept in a replaced-* folder)"
            )
        aside = directory / time.strftime("replaced-%Y%m%dT%H%M%S")
        aside.mkdir(mode=0o700)
        for path in (node_dir.config, node_dir.key, node_dir.database, node_dir.blobs):
            if path.exists():
                shutil.move(path, aside / path.name)
        for suffix in ("-wal", "-shm"):
            side = Path(f"{node_dir.database}{suffix}")
            if side.exists():
                shutil.move(side, aside / side.name)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    identity = Identity.generate(secrets.token_bytes)
    node_dir.config.write_text(config.to_toml(), encoding="utf-8")
    write_key(node_dir.key, identity)
    node_dir.blobs.mkdir(mode=0o700, exist_ok=True)
    asyncio.run(_init_database(node_dir, identity))
    return identity


async def _init_database(node_dir: NodeDir, identity: Identity) -> None:
    store = await Store.open(node_dir.database, create=True)
    try:
        await store.set_meta("node_id", identity.public.text)
        await store.set_meta("created_ms", str(Clock().now_ms()))
    finally:
        await store.close()


@dataclass(frozen=True)
class NodeStatus:
    directory: Path
    config: NodeConfig
    identity: Identity
    schema_version: int
    counts: dict[str, int]
    running: dict[str, Any] | None


def read_run_info(node_dir: NodeDir) -> dict[str, Any] | None:
    """What a running node wrote in run.json, if its process is still alive."""
    try:
        info = json.loads(node_dir.run_info.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if isinstance(info, dict) else None


async def node_status(directory: Path) -> NodeStatus:
    node_dir = NodeDir(directory)
    config = load_config(node_dir.config)
    identity = read_key(node_dir.key)
    store = await Store.open(node_dir.database, readonly=True)
    try:
        version = await store.schema_version()
        counts = await store.table_counts()
    finally:
        await store.close()
    return NodeStatus(directory, config, identity, version, counts, read_run_info(node_dir))


def format_status(status: NodeStatus) -> str:
    config = status.config
    listen = f"http://{config.http_host}:{config.http_port}"
    lines = [
        f"Node:      {config.name}" + (f" ({config.country})" if config.country else ""),
        f"Id:        {status.identity.public.text}",
        f"Network:   {config.network}",
        f"Listens:   {listen} (configured)",
    ]
    if config.http_public_url:
        lines.append(f"Public:    {config.http_public_url}")
    if status.running:
        lines.append(f"Running:   yes, pid {status.running['pid']}, at {status.running['url']}")
    else:
        lines.append("Running:   no")
    pending = SCHEMA_VERSION - status.schema_version
    state = "up to date" if pending <= 0 else f"{pending} migration(s) to apply at next run"
    lines.append(f"Database:  schema {status.schema_version} ({state})")
    for table, count in sorted(status.counts.items()):
        lines.append(f"           {table}: {count}")
    return "\n".join(lines)


class _Lock:
    """An exclusive flock on DIR/node.lock, so one directory is served once."""

    def __init__(self, node_dir: NodeDir) -> None:
        self.fd = os.open(node_dir.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            info = read_run_info(node_dir)
            pid = f" (pid {info['pid']})" if info else ""
            raise NodeError(
                f"{node_dir.root} is already being served{pid}: stop it first"
            ) from None

    def release(self) -> None:
        os.close(self.fd)


def run_node(directory: Path) -> None:
    """Serve the node until SIGINT or SIGTERM; NodeError for anything the operator fixes."""
    node_dir = NodeDir(directory)
    config = load_config(node_dir.config)
    identity = read_key(node_dir.key)
    if not node_dir.database.exists():
        raise NodeError(f"{node_dir.database} is missing: restore it from a backup")
    setup_logging(config.log_level)
    lock = _Lock(node_dir)
    try:
        asyncio.run(_serve(node_dir, config, identity))
    finally:
        lock.release()


def _listen(node_dir: NodeDir, config: NodeConfig) -> socket.socket:
    """Bind the listening socket first, so that a port in use is reported before any
    resource is opened."""
    host, port = config.http_host, config.http_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise NodeError(
                f"port {port} on {host} is already in use (another node?): "
                f"stop that program or change [http] port in {node_dir.config}"
            ) from None
        raise NodeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def _check_dicom_port(node_dir: NodeDir, config: NodeConfig) -> None:
    """Report a DICOM port in use before anything opens (pynetdicom binds it later)."""
    if not config.dicom_port:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((config.http_host, config.dicom_port))
        except OSError as exc:
            raise NodeError(
                f"DICOM port {config.dicom_port} on {config.http_host} is not available "
                f"({exc.strerror}): stop that program or change [dicom] port in "
                f"{node_dir.config}"
            ) from None


async def _serve(node_dir: NodeDir, config: NodeConfig, identity: Identity) -> None:
    _check_dicom_port(node_dir, config)
    sock = _listen(node_dir, config)
    app = create_app(node_dir, config, identity)
    runner = web.AppRunner(
        app,
        **SERVER_SETTINGS,
        handle_signals=False,
        access_log_class=AccessLogger,
        access_log=logging.getLogger("tsfnode.http"),
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    try:
        await runner.setup()
    except BaseException:
        sock.close()
        await runner.cleanup()  # close what the contexts opened before the failure
        raise
    try:
        await web.SockSite(runner, sock).start()
        host, port = sock.getsockname()[:2]
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        await app[PEERING].start([config.http_public_url or url])
        node_dir.run_info.write_text(
            json.dumps({"pid": os.getpid(), "url": url, "id": identity.public.text})
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        log("node started", url=url, node=identity.public.short, name=config.name)
        await stop.wait()
        log("node stopping")
    finally:
        node_dir.run_info.unlink(missing_ok=True)
        try:
            await asyncio.wait_for(runner.cleanup(), CLEANUP_TIMEOUT_S)
        except TimeoutError:  # the database stays consistent (WAL); say so and go
            log("node stop took too long; exiting anyway", level=logging.WARNING)
    log("node stopped")
