"""The node's side of gossip and liveness: it runs protocol's engines against real time
and real HTTP. Engines decide; this module only reads the clock, sends, and receives.

Transport: every message is an envelope POSTed to ``<peer address>/peer/v1/envelope``; a
reply to it, if any, comes back as the response body. A node meeting another (a seed, or
a neighbour found by mDNS) first exchanges introductions at ``/peer/v1/introduce``: its
certificate and node record, which the other takes into its directory like any record.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections import Counter
from typing import Any

import aiohttp

from protocol.documents import split_documents
from protocol.envelope import Envelope, encode_envelope, open_envelope, peek_envelope
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.gossip import GOSSIP_KINDS, GossipConfig, GossipEngine, Outgoing
from protocol.identity import Identity, PublicIdentity
from protocol.liveness import LIVENESS_KINDS, Liveness, LivenessConfig
from protocol.replay import ReplayWindow
from tsfnode.clock import Clock
from tsfnode.config import NodeConfig
from tsfnode.logs import log
from tsfnode.network.directory import DirectoryService, same_names
from tsfnode.store import Store

MAX_ENVELOPE = 5 * 1024 * 1024
MAX_INTRODUCTION = 256 * 1024
GOSSIP_TIMEOUT_S = 60.0
SEED_RETRY_MS = 30_000
REINTRODUCE_MS = 10_000
PUBLISH_CHECK_MS = 60_000
REPLAY_SAVE_MS = 60_000


class PeerRefused(Exception):
    """An envelope or introduction we do not take: ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Peering:
    def __init__(
        self,
        *,
        identity: Identity,
        config: NodeConfig,
        directory: DirectoryService,
        store: Store,
        seeds: tuple[str, ...],
        clock: Clock,
    ) -> None:
        self.clock = clock
        now = clock.now_ms()
        self.identity = identity
        self.me = identity.public.key
        self.config = config
        self.directory = directory
        self.store = store
        self.seeds = seeds
        self.addresses: list[str] = []
        self.gossip = GossipEngine(
            me=self.me,
            directory=directory.directory,
            rng=secrets.token_bytes,
            now=now,
            config=GossipConfig(
                interval_ms=config.gossip_interval_ms,
                fanout=config.gossip_fanout,
                budget=config.gossip_budget_kib * 1024,
            ),
        )
        self.liveness = Liveness(
            me=self.me,
            rng=secrets.token_bytes,
            now=now,
            config=LivenessConfig(
                probe_interval_ms=config.liveness_probe_interval_ms,
                probe_timeout_ms=min(
                    config.liveness_probe_timeout_ms, config.liveness_probe_interval_ms - 1
                ),
            ),
        )
        self.replay = ReplayWindow()
        self.stats: Counter[str] = Counter()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._last_seed_try = 0
        self._introduced_to: dict[bytes, int] = {}  # peer -> when we last showed ourselves
        self._last_publish_check = 0
        self._last_replay_save = 0
        self._discovery: Any = None

    # --- lifecycle -------------------------------------------------------------------

    async def start(self, addresses: list[str]) -> None:
        self.addresses = addresses
        state = await self.store.load_replay_state()
        if state is not None:
            try:
                self.replay = ReplayWindow.from_state(state)
            except ProtocolError:
                log("replay window state unreadable; starting a new one", level=logging.WARNING)
        local = self.config.http_source_address
        connector = aiohttp.TCPConnector(
            local_addr=(local, 0) if local else None, limit_per_host=4, family=socket.AF_INET
        )
        self._session = aiohttp.ClientSession(connector=connector)
        await self.directory.publish_self(self.config, addresses, self.clock.now_ms())
        self._task = asyncio.create_task(self._run(), name="peering")
        if self.config.discovery_mdns:
            # zeroconf is loaded only by a node that announces itself (not a cycle:
            # discovery.py sees Peering for its types only)
            from tsfnode.network.discovery import Discovery

            self._discovery = Discovery(self, interface=self.config.discovery_mdns_interface)
            await self._discovery.start()

    async def stop(self) -> None:
        if self._discovery is not None:
            await self._discovery.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        await self.directory.persist()
        await self.store.save_replay_state(self.replay.to_state())

    # --- the timer loop --------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._tick(self.clock.now_ms())
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad tick must not stop the node's gossip
                log("peering tick failed", level=logging.ERROR, exc_info=True)
            now = self.clock.now_ms()
            deadline = min(self.gossip.get_timer(), self.liveness.get_timer(), now + 1000)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), max(0, deadline - now) / 1000)
            except TimeoutError:
                pass

    async def _tick(self, now: int) -> None:
        view = self.directory.view(now)
        self.liveness.set_members(set(view.admitted), now)
        for message in self.gossip.handle_timer(now) + self.liveness.handle_timer(now):
            self._spawn(self._send(message))
        if now - self._last_publish_check >= PUBLISH_CHECK_MS:
            self._last_publish_check = now
            await self.directory.publish_self(self.config, self.addresses, now)
        reachable = [n for n in view.nodes if n != self.me and view.nodes[n].body["addresses"]]
        if self.seeds and not reachable and now - self._last_seed_try >= SEED_RETRY_MS:
            self._last_seed_try = now
            for seed in self.seeds:
                self._spawn(self.introduce(seed))
        if now - self._last_replay_save >= REPLAY_SAVE_MS:
            self._last_replay_save = now
            await self.store.save_replay_state(self.replay.to_state())
        await self.directory.persist()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- sending ---------------------------------------------------------------------

    async def _send(self, message: Outgoing) -> None:
        now = self.clock.now_ms()
        address = self.directory.address_of(message.peer, now)
        if address is None or self._session is None:
            self.stats["no_address"] += 1
            return
        data = self._encode(message, PublicIdentity(message.peer), now)
        if data is None:
            return
        timeout = (
            self.config.liveness_probe_timeout_ms / 1000
            if message.kind in LIVENESS_KINDS
            else GOSSIP_TIMEOUT_S
        )
        try:
            async with self._post(f"{address}/peer/v1/envelope", data, timeout) as response:
                self.stats[f"sent_{message.kind}"] += 1
                if response.status == 200:
                    await self._take_reply(message.peer, await response.read())
                elif response.status != 204:
                    self.stats[f"refused_{response.status}"] += 1
                    if response.status == 403:
                        self._introduce_once(message.peer, address, now)
        except (aiohttp.ClientError, TimeoutError, OSError):
            self.stats["unreachable"] += 1

    def _post(self, url: str, data: bytes, timeout_s: float) -> Any:
        """A POST of signed bytes to a peer (``async with`` it for the answer)."""
        assert self._session is not None  # noqa: S101 - the callers checked
        octets = {"Content-Type": "application/octet-stream"}
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        return self._session.post(url, data=data, headers=octets, timeout=timeout)

    def _encode(self, message: Outgoing, recipient: PublicIdentity, now: int) -> bytes | None:
        """The envelope of an engine's message; None (counted, logged) if it cannot be
        encoded, so that no bad value a peer fed the engines ends a task in an error."""
        try:
            return encode_envelope(
                kind=message.kind,
                sender=self.identity,
                recipient=recipient,
                body=message.body,
                now=now,
                rng=secrets.token_bytes,
            )
        except ProtocolError as exc:
            self.stats[f"unencodable_{message.kind}"] += 1
            log("message not sent: cannot encode", kind=message.kind, error=type(exc).__name__)
            return None

    def _introduce_once(self, peer: bytes, address: str, now: int) -> None:
        """A peer that refuses us may not know us yet (it learnt of us through others
        than us, or we of it): show ourselves, at most once per REINTRODUCE_MS."""
        if now - self._introduced_to.get(peer, -REINTRODUCE_MS) >= REINTRODUCE_MS:
            self._introduced_to[peer] = now
            self._spawn(self.introduce(address))

    async def _take_reply(self, peer: bytes, data: bytes) -> None:
        try:
            envelope = self._verify(data, self.clock.now_ms())
        except PeerRefused as exc:
            self.stats[f"bad_reply_{exc.reason}"] += 1
            return
        if envelope.sender.key != peer:
            self.stats["bad_reply_sender"] += 1
            return
        try:
            answers = self._dispatch(envelope, self.clock.now_ms())
        except PeerRefused as exc:
            self.stats[f"bad_reply_{exc.reason}"] += 1
            return
        for message in answers:
            self._spawn(self._send(message))

    # --- receiving -------------------------------------------------------------------

    def _verify(self, data: bytes, now: int) -> Envelope:
        try:
            signed = peek_envelope(data, max_size=MAX_ENVELOPE)
        except RemoteProtocolError as exc:
            raise PeerRefused(400, type(exc).__name__) from None
        if signed.recipient is not None and signed.recipient.key != self.me:
            raise PeerRefused(421, "not addressed to this node")
        if not self.directory.view(now).is_admitted(signed.sender.key):
            raise PeerRefused(403, "sender not admitted to this network")
        try:
            self.replay.check(signed.sender.key, signed.nonce, signed.timestamp, now)
            return open_envelope(signed, recipient=self.identity)
        except RemoteProtocolError as exc:
            raise PeerRefused(400, type(exc).__name__) from None

    def _dispatch(self, envelope: Envelope, now: int) -> list[Outgoing]:
        """The engines' answer to a verified envelope; PeerRefused(400) if what it
        carries is bad beyond its schema (a digest that does not decode...)."""
        peer, kind, body = envelope.sender.key, envelope.kind, envelope.body
        try:
            if kind in GOSSIP_KINDS:
                out = self.gossip.receive(peer, kind, body, now)
                self._wake.set()
                return out
            if kind in LIVENESS_KINDS:
                out = self.liveness.receive(peer, kind, body, now)
                self._wake.set()
                return out
        except RemoteProtocolError as exc:
            self.stats[f"bad_{kind}"] += 1
            raise PeerRefused(400, type(exc).__name__) from None
        self.stats[f"unhandled_{kind}"] += 1
        return []

    async def handle_envelope(self, data: bytes) -> bytes | None:
        """An envelope POSTed by a peer; returns the reply envelope, if any. Raises
        PeerRefused with the HTTP status to answer."""
        now = self.clock.now_ms()
        envelope = self._verify(data, now)
        self.stats[f"received_{envelope.kind}"] += 1
        reply: bytes | None = None
        for message in self._dispatch(envelope, now):
            if reply is None and message.peer == envelope.sender.key:
                reply = self._encode(message, envelope.sender, now)
            else:
                self._spawn(self._send(message))
        return reply

    async def handle_introduction(self, data: bytes) -> bytes:
        """Records shown by a node we meet; answers with this node's own."""
        now = self.clock.now_ms()
        try:
            records = split_documents(data)
        except RemoteProtocolError as exc:
            raise PeerRefused(400, str(exc)) from None
        outcome = await self.directory.add(records, now)
        self.stats["introductions_received"] += 1
        if outcome["added"]:
            self._wake.set()
        return b"".join(self.directory.introduction(now))

    async def introduce(self, url: str) -> bool:
        """Show ourselves to the node at ``url`` and take in what it shows back."""
        if self._session is None:
            return False
        mine = b"".join(self.directory.introduction(self.clock.now_ms()))
        try:
            url = f"{url.rstrip('/')}/peer/v1/introduce"
            async with self._post(url, mine, GOSSIP_TIMEOUT_S) as response:
                if response.status != 200:
                    self.stats[f"introduce_refused_{response.status}"] += 1
                    return False
                theirs = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError):
            self.stats["introduce_unreachable"] += 1
            return False
        try:
            outcome = await self.directory.add(split_documents(theirs), self.clock.now_ms())
        except RemoteProtocolError:
            self.stats["introduce_bad_answer"] += 1
            return False
        self._wake.set()
        log("introduced", added=outcome["added"])
        return True

    # --- what people see -------------------------------------------------------------

    def peers(self, now: int) -> list[dict[str, Any]]:
        view = self.directory.view(now)
        states = self.liveness.status()
        twins = same_names(view)
        out = []
        for node in sorted(view.admitted):
            if node == self.me:
                continue
            record = view.nodes.get(node)
            state = states.get(node)
            status = "unknown" if state is None else state.status
            if status == "alive" and state is not None and state.last_heard is None:
                status = "unknown"  # assumed alive on joining, but never heard from yet
            out.append(
                {
                    "id": PublicIdentity(node).text,
                    "fingerprint": PublicIdentity(node).short,
                    "name": record.body["name"] if record else "",
                    "same_name_as": [PublicIdentity(t).short for t in twins.get(node, [])],
                    "country": record.body["country"] if record else "",
                    "address": record.body["addresses"][0]
                    if record and record.body["addresses"]
                    else "",
                    "status": status,
                    "since_ms": state.since if state else None,
                    "last_heard_ms": state.last_heard if state else None,
                }
            )
        return out
