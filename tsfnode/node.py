"""Creating, inspecting and serving a node directory (what `tsfnode init`, `status` and
`run` do)."""

from __future__ import annotations

import asyncio
import base64
import errno
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from nacl.public import PublicKey

from protocol.identity import Identity
from tsfnode import systemd
from tsfnode.app import TRUSTED_PROXIES, create_app
from tsfnode.appkeys import PEERING
from tsfnode.clock import Clock
from tsfnode.config import NodeConfig, load_config
from tsfnode.errors import NodeError
from tsfnode.heap import keep_freed_buffers
from tsfnode.keyfile import read_key, write_key
from tsfnode.logs import AccessLogger, log, setup_logging
from tsfnode.nodedir import NodeDir, read_run_info
from tsfnode.peraddress import PerAddress, busy_answer, is_trusted
from tsfnode.store import SCHEMA_VERSION, Store

SHUTDOWN_TIMEOUT_S = 10.0  # requests in progress may finish
CLEANUP_TIMEOUT_S = 15.0  # then everything else
# The HTTP server's limits for slow or idle clients (issue 21). The keep-alive timeout
# (``[http] client_timeout_s``, 30 s) closes a connection that has no request in
# progress, counted from its opening or its last answer: an idle one, and one whose
# request head has not come whole by then (a head trickled a byte at a time). Bodies are
# watched by app.py's ``slow_bodies`` over the same time.


def server_settings(config: NodeConfig) -> dict[str, Any]:
    """The aiohttp server's settings for slow or idle clients (see above)."""
    return {"keepalive_timeout": float(config.http_client_timeout_s)}


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
    directory.chmod(0o700)  # a folder the operator made (0755) is the node's alone now
    identity = Identity.generate(secrets.token_bytes)
    node_dir.config.write_text(config.to_toml(), encoding="utf-8")
    write_key(node_dir.key, identity)
    node_dir.blobs.mkdir(mode=0o700, exist_ok=True)
    asyncio.run(_init_database(node_dir, identity))
    for path in (node_dir.config, node_dir.database):
        path.chmod(0o600)
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
    keep_freed_buffers()  # a transfer's buffers reused, not faulted in again (heap.py)
    os.umask(0o077)  # whatever the node writes (database, logs, studies) is its user's alone
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
        **server_settings(config),
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
    limit_connections(runner, PerAddress(config.http_max_connections_per_address))
    tls = _tls_context(node_dir, config)
    try:
        await web.SockSite(runner, sock, ssl_context=tls).start()
        host, port = sock.getsockname()[:2]
        scheme = "https" if tls else "http"
        url = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"
        await app[PEERING].start([config.http_public_url or url])
        node_dir.run_info.write_text(
            json.dumps({"pid": os.getpid(), "url": url, "id": identity.public.text})
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, _reload_tls, tls, node_dir, config)
        log("node started", url=url, node=identity.public.short, name=config.name)
        systemd.notify(f"READY=1\nSTATUS=serving on {url}")
        chores = [
            asyncio.create_task(_watchdog(), name="watchdog"),
            asyncio.create_task(_scheduled_backups(node_dir, config), name="backups"),
        ]
        await stop.wait()
        log("node stopping")
        systemd.notify("STOPPING=1")
        for chore in chores:
            chore.cancel()
        await asyncio.gather(*chores, return_exceptions=True)
    finally:
        node_dir.run_info.unlink(missing_ok=True)
        try:
            await asyncio.wait_for(runner.cleanup(), CLEANUP_TIMEOUT_S)
        except TimeoutError:  # the database stays consistent (WAL); say so and go
            log("node stop took too long; exiting anyway", level=logging.WARNING)
    log("node stopped")


def limit_connections(runner: web.AppRunner, limits: PerAddress) -> None:
    """At most ``limits.cap`` connections at once from one client address: one more is
    answered 503 (with Retry-After) and closed before any request is read. Connections
    from a trusted reverse proxy are not counted here (they carry every client's
    requests): the application counts the requests it forwards per client (app.py)."""
    server = runner.server
    assert server is not None  # noqa: S101 - after setup()
    trusted = runner.app[TRUSTED_PROXIES]
    made, lost = server.connection_made, server.connection_lost
    counted: dict[Any, str] = {}

    def connection_made(handler: Any, transport: Any) -> None:
        made(handler, transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        if not address or is_trusted(address, trusted):
            return
        if limits.take(address):
            counted[handler] = address
            return
        transport.write(busy_answer(limits.cap))
        transport.close()
        if limits.refused % 1000 == 1:  # a flood logs a line now and then, not each time
            log(
                "connections refused: too many from one address",
                level=logging.WARNING,
                address=address,
                refused=limits.refused,
            )

    def connection_lost(handler: Any, exc: BaseException | None) -> None:
        address = counted.pop(handler, None)
        if address is not None:
            limits.give(address)
        lost(handler, exc)

    server.connection_made = connection_made  # type: ignore[method-assign]
    server.connection_lost = connection_lost  # type: ignore[method-assign, assignment]


async def _watchdog() -> None:
    """Tell systemd the event loop still turns, at half its watchdog timeout."""
    interval = systemd.watchdog_interval_s()
    if interval is None:
        return
    while True:
        systemd.notify("WATCHDOG=1")
        await asyncio.sleep(interval)


async def _scheduled_backups(node_dir: NodeDir, config: NodeConfig) -> None:
    """Every ``[backup] every_hours``, an archive sealed to ``[backup] to_key`` in
    ``[backup] folder``, keeping the ``keep`` newest; the first soon after start if the
    newest is older than the period. A failure is logged and tried again next period."""
    if not config.backup_folder or not config.backup_to_key:
        return
    from tsfnode.store import backup

    folder = Path(config.backup_folder)
    if not folder.is_absolute():
        folder = node_dir.root / folder
    period_ms = config.backup_every_hours * 3_600_000
    recipient = PublicKey(base64.b64decode(config.backup_to_key))
    while True:
        now = Clock().now_ms()
        existing = backup.backups_in(folder) if folder.is_dir() else []
        last_ms = int(existing[-1].stat().st_mtime * 1000) if existing else 0
        wait_ms = max(0, last_ms + period_ms - now)
        await asyncio.sleep(wait_ms / 1000)
        now = Clock().now_ms()
        out = folder / backup.scheduled_name(now)
        try:
            count = await asyncio.to_thread(
                backup.write_backup,
                node_dir.root,
                out,
                backup.Sealing(recipient=recipient),
                now_ms=now,
            )
            removed = backup.prune(folder, config.backup_keep)
            log("backup written", files=count, bytes=out.stat().st_size, pruned=len(removed))
        except Exception as exc:  # logged, tried again next period
            log("backup failed", level=logging.WARNING, error=type(exc).__name__)
            await asyncio.sleep(min(period_ms, 3_600_000) / 1000)


def _tls_paths(node_dir: NodeDir, config: NodeConfig) -> tuple[Path, Path]:
    cert, key = Path(config.http_tls_cert), Path(config.http_tls_key)
    return (
        cert if cert.is_absolute() else node_dir.root / cert,
        key if key.is_absolute() else node_dir.root / key,
    )


def _tls_context(node_dir: NodeDir, config: NodeConfig) -> ssl.SSLContext | None:
    """HTTPS from ``[http] tls_cert`` and ``tls_key`` (TLS 1.2 at least), or None."""
    if not config.http_tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, *_tls_paths(node_dir, config))
    return context


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise NodeError(f"[http] TLS file {exc.filename} is missing") from None
    except (ssl.SSLError, OSError) as exc:
        raise NodeError(
            f"[http] tls_cert {cert} and tls_key {key} cannot be used together ({exc})"
        ) from None


def _reload_tls(context: ssl.SSLContext | None, node_dir: NodeDir, config: NodeConfig) -> None:
    """SIGHUP (systemctl reload): the renewed certificate for the connections that come
    next; if it cannot be read, the one in use is kept and the log says why. Without
    TLS there is nothing to reload (and the node keeps running)."""
    if context is None:
        log("reload asked: nothing to reload (no [http] tls_cert)")
        return
    try:
        _load_chain(context, *_tls_paths(node_dir, config))
    except NodeError as exc:
        log("certificate not reloaded", level=logging.WARNING, reason=str(exc))
        return
    log("certificate reloaded")
