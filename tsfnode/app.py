"""The node's aiohttp application: ``create_app`` wires the sub-apps, one per trust
boundary, and opens resources through ``cleanup_ctx``.

    /healthz   liveness for operators and the demo
    /peer/     the peer API: other nodes (peer_api.py)
    /api/      the local JSON API: this node's own people and tools (local_api.py)
    /web/      the web application: pages for people (web.py; ``/`` redirects here)
    /metrics   the node's figures for Prometheus (counts and durations only)

Resources, opened in order and closed in reverse: the database (Store), then the
directory and peering (gossip, liveness, discovery), then transfers (outbox, inbox,
relay), then cases (deadlines, retention, figures), then the DICOM listener. Peering is
started by node.py once the node listens, since it announces the address it listens on.

Slow clients: a request body must keep coming at ``BODY_MIN_RATE`` bytes/s at least,
judged over ``[http] client_timeout_s`` (30 s) while the node is reading it
(``slow_bodies``), else the connection is closed; idle connections and request heads
are bounded by the server's keep-alive timeout, the same setting (node.py
``server_settings``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from bootstrap.network import NetworkFileError, load_network
from protocol.identity import Identity
from tsfnode.api.app import create_api_app
from tsfnode.api.cases import prometheus
from tsfnode.appkeys import (
    BLOBS,
    CASES,
    CONFIG,
    DIRECTORY,
    IDENTITY,
    MAIL,
    NODE_DIR,
    PEERING,
    RENDERER,
    STARTED_MS,
    STORE,
    TRANSCODINGS,
    TRANSFERS,
)
from tsfnode.auth.gate import Gate
from tsfnode.cases.service import CaseService
from tsfnode.clock import CLOCK, Clock
from tsfnode.config import NodeConfig
from tsfnode.dicomweb.service import TRANSCODING_AT_ONCE, create_dicomweb_app
from tsfnode.dicomweb.stow import clear_incoming
from tsfnode.errors import NodeError
from tsfnode.images.render import Renderer
from tsfnode.info import FORWARDED
from tsfnode.keyfile import retired_node_keys
from tsfnode.logs import log
from tsfnode.mail.service import MailService
from tsfnode.mail.smtp import SmtpSettings
from tsfnode.network.directory import DirectoryService
from tsfnode.network.peering import Peering
from tsfnode.nodedir import NodeDir
from tsfnode.peer.app import create_peer_app
from tsfnode.peraddress import BUSY_TEXT, PerAddress
from tsfnode.store import Store
from tsfnode.store.blobs import BlobStore
from tsfnode.store.mail import MailStore
from tsfnode.tasks import Turns
from tsfnode.transfers.context import NodeContext
from tsfnode.transfers.service import TransferService
from tsfnode.web.app import create_web_app
from tsfnode.web.refusals import refusal_pages
from tsfnode.web.report_out import install_auto_send

MAX_REQUEST = 17 * 1024 * 1024  # the largest body an endpoint takes (speed test upload)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = await Store.open(app[NODE_DIR].database)
    try:
        known = await store.get_meta("node_id")
        node_id = app[IDENTITY].public.text
        if known is None:
            await store.set_meta("node_id", node_id)
        elif known != node_id:
            raise NodeError(
                f"{app[NODE_DIR].key} does not belong to this node's database "
                f"(database of {known[:7]}, key of {node_id[:7]}): restore the right key"
            )
    except BaseException:
        await store.close()
        raise
    app[STORE] = store
    try:
        yield
    finally:
        await store.close()


async def _peering_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    try:
        network = load_network(config.network, base=app[NODE_DIR].root)
    except NetworkFileError as exc:
        raise NodeError(f"[node] network in {app[NODE_DIR].config}: {exc}") from None
    directory = DirectoryService(network, app[IDENTITY], app[STORE])
    await directory.load(app[CLOCK].now_ms())
    app[DIRECTORY] = directory
    peering = Peering(
        identity=app[IDENTITY],
        config=config,
        directory=directory,
        store=app[STORE],
        seeds=network.seeds,
        clock=app[CLOCK],
    )
    app[PEERING] = peering
    try:
        yield
    finally:
        await peering.stop()
        log("peering stopped")


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    """Transfers (outbox, inbox, relay), the e-mail queue's sender, then cases on top of
    them (deadlines, retention, figures, notices), sharing one ``NodeContext``; stopped
    in the reverse order."""
    context = NodeContext(
        identity=app[IDENTITY],
        config=app[CONFIG],
        node_dir=app[NODE_DIR],
        store=app[STORE],
        blobs=app[BLOBS],
        directory=app[DIRECTORY],
        clock=app[CLOCK],
        retired=retired_node_keys(app[NODE_DIR]),
    )
    transfers = app[TRANSFERS] = TransferService(context)
    settings = SmtpSettings.from_config(app[CONFIG], app[NODE_DIR].root)
    mail = app[MAIL] = MailService(MailStore(app[STORE].db), app[CONFIG], settings, app[CLOCK])
    await transfers.start()
    try:
        await mail.start()
        cases = app[CASES] = CaseService(context, transfers, mail)
        await cases.start()
        try:
            yield
        finally:
            await cases.stop()
            await mail.stop()
    finally:
        await transfers.stop()
        log("transfers stopped")


async def _dicom_ctx(app: web.Application) -> AsyncIterator[None]:
    """The DICOM listener (C-STORE, C-ECHO) and the Query/Retrieve SCP on its AE
    (dicomweb/qr.py), when [dicom] port is set."""
    config = app[CONFIG]
    if not config.dicom_port:
        yield
        return
    from tsfnode.dicomweb.qr import QueryRetrieve
    from tsfnode.intake.listener import start_listener

    qr = QueryRetrieve(app, asyncio.get_running_loop())
    try:
        listener = await asyncio.to_thread(start_listener, app[NODE_DIR].root, config, qr)
    except OSError as exc:
        raise NodeError(
            f"cannot listen for DICOM on {config.http_host}:{config.dicom_port} "
            f"({exc.strerror}): change [dicom] port in {app[NODE_DIR].config}"
        ) from None
    try:
        yield
    finally:
        await asyncio.to_thread(listener.stop)


BODY_CHECKS = 6  # looks per window: every 5 s of the default 30
BODY_MIN_RATE = 512  # bytes/s: a 56 kbit/s line gives 7,000; a trickle, a few


async def _watch_body(request: web.Request) -> None:
    """Close the connection of a request whose body comes slower than BODY_MIN_RATE over
    ``[http] client_timeout_s`` (30 s). Time while the node is not reading (its buffer is
    full: the handler is busy) is not counted against the client."""
    content, transport = request.content, request.transport
    window = request.config_dict[CONFIG].http_client_timeout_s
    looks, since = 0, content.total_bytes
    while not content.is_eof():
        await asyncio.sleep(window / BODY_CHECKS)
        if transport is None or transport.is_closing():
            return
        if not transport.is_reading():
            looks, since = 0, content.total_bytes
            continue
        looks += 1
        if looks >= BODY_CHECKS:
            if content.total_bytes - since < BODY_MIN_RATE * window:
                log("request body too slow: connection closed", method=request.method)
                transport.close()
                return
            looks, since = 0, content.total_bytes


@web.middleware
async def slow_bodies(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every request with a body, on every sub-application, is watched by _watch_body."""
    if not request.can_read_body:
        return await handler(request)  # type: ignore[no-any-return]
    watchdog = asyncio.create_task(_watch_body(request))
    try:
        return await handler(request)  # type: ignore[no-any-return]
    finally:
        watchdog.cancel()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "id": request.app[IDENTITY].public.text})


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/web/")


HSTS = "max-age=31536000"
HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_HTTPS = web.RequestKey("tsfnode.forwarded_https", bool)  # reached the proxy by TLS
TRUSTED_PROXIES = web.AppKey("trusted_proxies", list[IPNetwork])
PROXIED_CLIENTS = web.AppKey("proxied_clients", PerAddress)  # requests per forwarded client


def _client_behind(request: web.Request, trusted: list[IPNetwork]) -> str | None:
    """The client's address that trusted proxies report (X-Forwarded-For read from the
    right, skipping the proxies themselves), or None."""
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    for hop in reversed([h for h in hops if h]):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return None
        if not any(address in net for net in trusted):
            return str(address)
    return None


@web.middleware
async def _behind_proxy(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Behind a reverse proxy named in ``[http] trusted_proxies``, the request as the
    client made it: its scheme (X-Forwarded-Proto), host (X-Forwarded-Host) and address
    (X-Forwarded-For). From anyone else these headers mean nothing: a client cannot make
    itself look secure, local or elsewhere."""
    trusted = request.app[TRUSTED_PROXIES]
    if not trusted or request.remote is None:
        return await handler(request)
    try:
        peer = ipaddress.ip_address(request.remote)
    except ValueError:
        return await handler(request)
    if not any(peer in net for net in trusted):
        return await handler(request)
    changes: dict[str, str] = {}
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    if proto in ("http", "https"):
        changes["scheme"] = proto
    host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
    if host and HOST.fullmatch(host):
        changes["host"] = host
    client = _client_behind(request, trusted)
    if client is not None:
        changes["remote"] = client
    if not changes:
        return await handler(request)
    forwarded = request.clone(
        scheme=changes.get("scheme", request.scheme),
        host=changes.get("host", request.host),
        remote=changes.get("remote", request.remote),
    )
    forwarded[FORWARDED] = True
    request[FORWARDED_HTTPS] = forwarded[FORWARDED_HTTPS] = forwarded.secure
    if client is None:
        return await handler(forwarded)
    # The proxy's connections carry every client's requests: the cap on one address's
    # connections (node.py) applies here to the requests each client has in progress.
    places = request.app[PROXIED_CLIENTS]
    if not places.take(client):
        raise web.HTTPServiceUnavailable(
            text=BUSY_TEXT.format(cap=places.cap), headers={"Retry-After": "10"}
        )
    try:
        return await handler(forwarded)
    finally:
        places.give(client)


async def _strict_transport(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """HSTS on every answer given over TLS (the node's own, or a trusted proxy's)."""
    if request.secure or request.get(FORWARDED_HTTPS):
        response.headers.setdefault("Strict-Transport-Security", HSTS)


FAVICON = Path(__file__).parent / "web" / "static" / "favicon.svg"


async def favicon(request: web.Request) -> web.FileResponse:
    """The node's icon where browsers look for it first (the pages also name it)."""
    return web.FileResponse(FAVICON, headers={"Content-Type": "image/svg+xml"})


def create_app(
    node_dir: NodeDir, config: NodeConfig, identity: Identity, clock: Clock | None = None
) -> web.Application:
    """The node's application; ``clock`` is the system's unless a test gives its own."""
    app = web.Application(client_max_size=MAX_REQUEST, middlewares=[slow_bodies])
    app[NODE_DIR] = node_dir
    app[CONFIG] = config
    app[TRUSTED_PROXIES] = [
        ipaddress.ip_network(n, strict=False) for n in config.http_trusted_proxies
    ]
    app[PROXIED_CLIENTS] = PerAddress(config.http_max_connections_per_address)
    app[IDENTITY] = identity
    app[BLOBS] = BlobStore(node_dir.blobs)
    app[CLOCK] = Clock() if clock is None else clock
    app[STARTED_MS] = app[CLOCK].now_ms()
    app[RENDERER] = Renderer()
    app[TRANSCODINGS] = Turns(TRANSCODING_AT_ONCE)
    app.middlewares.append(_behind_proxy)
    app.on_response_prepare.append(_strict_transport)
    app.on_startup.append(clear_incoming)  # STOW-RS parts left by a node stopped
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_peering_ctx)
    app.cleanup_ctx.append(_services_ctx)
    app.cleanup_ctx.append(_dicom_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", root)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/favicon.ico", favicon)
    Gate.of(public=[healthz, root, prometheus, favicon]).install(app)  # sub-apps: their own
    app.middlewares.append(refusal_pages)  # 403 and 404 pages, here and in every sub-app
    web_app = create_web_app()
    for prefix, sub in (
        ("/peer/", create_peer_app()),
        ("/api/", create_api_app()),
        ("/web/", web_app),
        ("/dicomweb/", create_dicomweb_app()),
    ):
        app.add_subapp(prefix, sub)
    install_auto_send(app, web_app)  # every report back to the PACS its sender chose
    return app
