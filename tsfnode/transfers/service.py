"""Transfers: the node's outbox, inbox and relay, driving protocol/transfer.py over HTTP.

Store-and-forward, in the manner of mail (brief, section 5):

* **Outbox** (``outbox.py``). A sealed bundle gets one delivery per recipient node, tried
  directly, then through the recipient's relays, with backoff and jitter, until the
  recipient's signed receipt comes back. This service runs it.
* **Inbox.** Chunks pushed here are written as they arrive and checked against the
  signed manifest; a request is acknowledged only when each of its chunks is whole and
  matches, so an acknowledged chunk is not sent again (unless a power cut took it before
  it reached the disk: it is then found missing by its hash, and asked for again; see
  ``chunkfiles.RunWriter``). Bundles waiting at a relay are found by polling it, and
  pulled from every source that holds them (relays, the sender); a source that serves a
  bad chunk is blamed in the ``blame`` table and the chunk is fetched elsewhere. A
  complete bundle is opened (every chunk's AEAD tag checked) into
  ``DIR/received/BUNDLE/`` and a receipt signed by this node is kept for the sender and
  posted to the relays.
* **Relay.** Ciphertext held for the nodes that list this one as their relay, within a
  quota, deleted on the recipient's receipt or when the bundle expires.

Everything is in the database (tables ``bundles``, ``deliveries``, ``blame``) and on disk
(the chunks sealed here in the blob store by their BLAKE3 name; those received or relayed
in one file per bundle, ``chunkfiles.py``), so a node killed at any point resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from protocol.bundle import (
    BundleHeader,
    BundleOpener,
    BundleReader,
    FileData,
    FileEnd,
    Manifest,
)
from protocol.documents import decode_document, digest, encode_document
from protocol.errors import ProtocolError
from protocol.identity import Identity, PublicIdentity
from protocol.replay import ReplayWindow
from protocol.transfer import (
    CHUNK_FETCH_HEADER,
    CHUNK_FETCH_SKEW_MS,
    MAIL_POLL_SKEW_MS,
    ChunkSet,
    Download,
    decode_chunk_fetch,
    decode_mail_poll,
    encode_chunk_fetch,
    encode_mail_poll,
    mail_poll_time,
)
from tsfnode.logs import log
from tsfnode.store.transfers import Bundle, TransferStore
from tsfnode.transfers.chunkfiles import BodyTooLong, ChunkFiles, DiskFull, RunWriter
from tsfnode.transfers.context import NodeContext, NodeService
from tsfnode.transfers.diskcalls import DiskCalls
from tsfnode.transfers.durable import GroupFlush, opened_paths
from tsfnode.transfers.outbox import (
    AttemptFailed,
    Outbox,
    Uplink,
    discard_when_done,
    receipt_ok,
    short,
)
from tsfnode.transfers.progress import Progress, list_progress
from tsfnode.transfers.refetch import read_listed, write_listed

SCAN_MS = 500
MAX_MAIL_POLLS = 65_536  # polls remembered at once (admitted nodes' only)
# The relay's quota is spent by what it holds (manifests, and chunks on disk), not by
# what offers announce; no sender holds more than a share of it; an offer that brings
# nothing goes soon, a copy that stops growing later, and none is held beyond six weeks.
RELAY_SENDER_SHARE = 4  # a sender may hold a quarter of the relay's quota at most
RELAY_OFFER_MS = 10 * 60_000  # an offer with no chunk yet expires after 10 minutes
RELAY_STALL_MS = 2 * 86_400_000  # a copy that receives nothing for 2 days expires
RELAY_MAX_HOLD_MS = 42 * 86_400_000  # the longest a relay holds a copy (a cable cut: 5 weeks)
MAX_ACTIVE_PULLS = 2
MAX_FETCH_TOKENS = 4096  # chunk-fetch tokens whose signature was checked, kept at once
FETCH_TOKEN_RENEW_MS = 2 * 60_000  # a fetcher signs a new token this often (valid 5 min)
RECEIPT_WAIT_S = 30  # the longest a PUT's answer waits for the bundle to open
MAX_RECEIPTS_KEPT = 256  # receipts of the last bundles opened, kept in memory
MAX_ARRIVING = 1024  # bundles whose arrival time is kept for the log, at once
# Only a bundle this small is opened before the last PUT is answered (a study of
# photos, radiographs, a few slices: opened in well under a second). A larger one is
# acknowledged as soon as its chunks are held, and its receipt asked for after: the
# sender's link is free at once, and its "acknowledged" time means what it says.
RECEIPT_ON_PUT_MAX = 32 * 1024 * 1024
# DICOMweb's part of an opened bundle's listing waits until no bundle has been opened
# for this long: a burst of small bundles is opened first (`_list_later`).
LIST_LATER_MS = 300
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_read=60)
# A file of an opened bundle up to this size is handed to its listing from the bytes
# decrypted (its header parsed from memory); a larger one is read back from disk.
IN_MEMORY_MAX = 8 * 1024 * 1024


class OpenedListing(Protocol):
    """The listing of a bundle being opened (``images/listing.OpeningListing``)."""

    def wants(self, name: str) -> bool:
        """Whether the bundle's file ``name`` is listed (its bytes are handed over)."""
        ...

    def add(self, name: str, path: Path, data: bytes | None) -> None:
        """The file ``name`` (relative to the bundle's folder), written at ``path``: its
        bytes, or None (not held: read them from ``path``)."""
        ...

    def write(self, folder: Path) -> None:
        """The part the reader waits for, into ``folder`` before it is renamed into place."""
        ...

    def complete(self, folder: Path) -> None:
        """The rest, once the bundle is in ``folder`` and its receipt given."""
        ...


class TransferRefused(Exception):
    """What a peer request is refused for: an HTTP status and a reason it can read."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ChunkLost(Exception):
    """A chunk held (by the database) is missing or damaged on disk."""

    def __init__(self, index: int) -> None:
        super().__init__(f"chunk {index} is missing or damaged on disk")
        self.index = index


class TransferService(NodeService):
    def __init__(self, context: NodeContext) -> None:
        super().__init__(context)
        config, clock, directory = context.config, context.clock, context.directory
        self.rows = TransferStore(self.db)
        self.chunks = ChunkFiles(context.node_dir.chunks)  # the inbox's and the relay's
        self.disk = DiskCalls()  # reads and writes of chunk runs
        self._durable = GroupFlush()  # what an opening wrote, on disk before its receipt
        self.uplink = Uplink(config, clock)
        self.outbox = Outbox(
            config=config,
            db=self.db,
            blobs=self.blobs,
            disk=self.disk,
            directory=directory,
            uplink=self.uplink,
            clock=clock,
            manifest_of=self.manifest_of,
            spawn=self._spawn,
            delivered=self._delivered,
            freed=self.wake,
        )
        self._have: dict[bytes, ChunkSet] = {}
        self._dirty: set[bytes] = set()
        self._manifests: dict[bytes, Manifest] = {}
        self._pulls: set[bytes] = set()
        self._finalising: dict[bytes, asyncio.Task[Any]] = {}  # bundles being opened
        # set once such a bundle's receipt is kept (its opening on disk): the PUT's answer
        self._receipt_kept: dict[bytes, asyncio.Event] = {}
        # Bundles addressed here (their role never changes), and the receipts of the
        # last ones opened: the chunks' requests and the answer that carries the
        # receipt need no row read from the database for them.
        self._inbox: set[bytes] = set()
        self._receipts: dict[bytes, bytes] = {}
        self._writing: dict[bytes, set[int]] = {}  # chunks being written, per bundle
        # When this process took the first chunks of a bundle still arriving: its log
        # says so once, then once all are held, not once per chunk request.
        self._arriving: dict[bytes, int] = {}
        self._relay_coming: Counter[bytes] = Counter()  # relay bytes being written, per sender
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()
        self._last_poll = 0
        # Mail polls answered within their 5-minute window, by (node, time): a replay is
        # refused. Only admitted nodes' polls are remembered, in memory: a poll made
        # before this process started is refused instead (`mail_poll`), so that none
        # answered before a restart (or a crash) can be answered again after it.
        self._mail_polls = ReplayWindow(max_skew=MAIL_POLL_SKEW_MS, max_entries=MAX_MAIL_POLLS)
        self._started_ms = clock.now_ms()
        # Chunk-fetch tokens whose signature was checked: token -> fetching node. A token
        # serves every chunk request of one bundle for a few minutes, so one signature
        # is checked per bundle and source, not one per chunk.
        self._fetch_tokens: dict[bytes, bytes] = {}
        self._running = False
        # Bundles a restore left out of its archive, to fetch again (refetch.py): those
        # named already in the log as not fetched yet are not named again.
        self._refetch = read_listed(context.node_dir.root)
        self._refetch_named: set[str] = set()
        # Set by the case service: a bundle addressed here was opened; a bundle sent from
        # here was delivered (its receipt came back).
        self.on_opened: Callable[[Manifest, BundleHeader, Path], Awaitable[None]] | None = None
        self.on_delivered: Callable[[bytes, bytes, int], Awaitable[None]] | None = None
        # Set by the case service: a bundle sealed here for a key that was lost goes to
        # (bundle id, old key, new key, now): sealed again for the new key.
        self.on_readdressed: Callable[[bytes, bytes, bytes, int], Awaitable[None]] | None = None
        # Set by the case service: makes the listing (images/listing.py) of a bundle
        # about to be opened, handed each file as it is written, whose viewer's part is
        # written into the folder before the folder appears (in the opening thread) and
        # DICOMweb's part once the bundle is in place and its receipt given (in a thread,
        # `_list_later`: the reader waits not for it).
        self.index_opened: Callable[[], OpenedListing] | None = None
        self._to_list: list[tuple[Path, OpenedListing]] = []  # waiting for DICOMweb's part
        self._listing: asyncio.Task[None] | None = None
        self._last_opened = 0.0  # when the last bundle was opened here (the loop's time)

    # --- life ------------------------------------------------------------------------

    async def start(self) -> None:
        local = self.config.http_source_address
        connector = aiohttp.TCPConnector(limit=32, local_addr=(local, 0) if local else None)
        self._session = aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT)
        await self.outbox.start(self._session)
        self._running = True
        self._spawn(self._run())

    async def stop(self) -> None:
        self._running = False
        self._wake.set()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._save_have()
        if self._session is not None:
            await self._session.close()
        self.disk.close()

    def wake(self) -> None:
        """Look at the outbox now: a bundle was queued, or a delivery ended."""
        self._wake.set()

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log(
                "transfer task failed",
                level=40,
                task=task.get_coro().__qualname__,  # type: ignore[union-attr]
                error=type(error).__name__,
                detail=str(error)[:300],
            )

    async def _run(self) -> None:
        """A turn at every wake (a bundle queued, a delivery ended), and every SCAN_MS
        for what comes due with time (retries, relays' mail, expiry)."""
        while self._running:
            self._wake.clear()  # before the turn: a wake during it makes another
            try:
                await self._tick(self.clock.now_ms())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not stop the transfers for good
                log("transfer loop error", error=type(exc).__name__, detail=str(exc)[:200])
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SCAN_MS / 1000)

    async def _tick(self, now: int) -> None:
        await self._save_have()
        self.uplink.update()
        await self.outbox.start_due(now)
        if now - self._last_poll >= self.config.transfer_poll_interval_ms:
            self._last_poll = now
            self._spawn(self._poll_relays())
            await self._expire(now)
            for bundle_id, old, new in await self.outbox.readdress(now):
                if new != old and self.on_readdressed is not None:
                    await self.on_readdressed(bundle_id, old, new, now)
            await self._cross_off_refetched()
        await self._start_pulls()

    async def _cross_off_refetched(self) -> None:
        """The bundles a restore listed that are back (opened again here) are crossed off
        ``refetch.json``; those that expired or fail to open are named in the log."""
        if not self._refetch:
            return
        left = []
        for listed in self._refetch:
            row = await self._bundle_row(bytes.fromhex(listed.bundle))
            if row is not None and row.state == "complete":
                log("bundle fetched again after restore", bundle=listed.bundle[:8])
                continue
            left.append(listed)
            if row is None or row.state in ("failed", "expired"):
                self._name_unfetched(listed.bundle, row.state if row else "not in the database")
        if len(left) != len(self._refetch):
            self._refetch = left
            await asyncio.to_thread(write_listed, self.node_dir.root, left)
            if not left:
                log("every bundle left out of the backup is back")

    def _name_unfetched(self, bundle: str, why: str) -> None:
        if bundle in self._refetch_named or bundle not in {e.bundle for e in self._refetch}:
            return
        self._refetch_named.add(bundle)
        log(
            "bundle left out of the backup cannot be fetched yet",
            level=30,
            bundle=bundle[:8],
            why=why,
        )

    # --- bundles held here -------------------------------------------------------------

    async def _bundle_row(self, bundle_id: bytes) -> Bundle | None:
        return await self.rows.bundle(bundle_id)

    async def manifest_of(self, bundle_id: bytes) -> Manifest | None:
        found = self._manifests.get(bundle_id)
        if found is None:
            row = await self._bundle_row(bundle_id)
            if row is None:
                return None
            found = self._manifests[bundle_id] = Manifest.decode(row.manifest)
        return found

    async def have_of(self, bundle_id: bytes) -> ChunkSet | None:
        held = self._have.get(bundle_id)
        if held is None:
            saved = await self.rows.held_chunks(bundle_id)
            if saved is None:
                return None
            held = ChunkSet(saved.chunk_count, saved.have)
            if saved.state in ("receiving", "holding") and not held.complete:
                # Chunks written since the last save of the set (a crash in between)
                # are found on disk by their hashes.
                manifest = Manifest.decode(saved.manifest)
                for i in await asyncio.to_thread(self.chunks.held_on_disk, manifest, held):
                    held.add(i)
            self._have[bundle_id] = held
        return held

    async def _save_have(self) -> None:
        """Write the chunk sets changed since the last save (every tick, and at stop)."""
        dirty, self._dirty = self._dirty, set()
        for bundle_id in dirty:
            held = self._have.get(bundle_id)
            if held is not None:
                await self._set_bundle(bundle_id, have=held.to_bytes(), last_error="")

    # --- receiving: offers and chunks (peer API) ---------------------------------------

    async def offer(self, data: bytes) -> bytes:
        """A node offers a bundle (its manifest): for this node, or to hold as a relay."""
        now = self.clock.now_ms()
        try:
            manifest = Manifest.decode(data, now=now)
            manifest.check_fresh(now)
        except ProtocolError as exc:
            raise TransferRefused(400, f"bad manifest: {exc}") from None
        if not self.directory.sealed_by_admitted(manifest.document, now):
            raise TransferRefused(403, "the sender is not admitted to this network")
        held = await self.have_of(manifest.bundle_id)
        if held is not None:
            row = await self._bundle_row(manifest.bundle_id)
            if row is None or row.role != "relay" or row.state != "expired":
                return held.to_bytes()
        recipients = [r.key for r in manifest.recipients]
        expires: int | None = None
        if self.keys.keys() & set(recipients):  # this node's key, or one it rotated from
            role = "inbox"
        elif listing := [
            r for r in recipients if self.me in self.directory.relays_listed_by(r, now)
        ]:
            self._check_relay_consent(listing)
            role = "relay"
            await self._check_relay_room(
                manifest.sender.key, len(manifest.raw), whole=manifest.ciphertext_size
            )
            expires = min(manifest.expires, now + RELAY_OFFER_MS)
            if held is not None:  # expired here, offered again: held anew
                empty = ChunkSet(manifest.chunk_count)
                await self.rows.revive_relay_copy(manifest.bundle_id, empty.to_bytes(), expires)
                self._have[manifest.bundle_id] = empty
                return empty.to_bytes()
        else:
            raise TransferRefused(403, "this bundle is not addressed to a node this one serves")
        await self._insert_received(manifest, role, now, sources=[], expires_ms=expires)
        log("bundle offered", bundle=manifest.bundle_id.hex()[:8], role=role)
        # Just inserted, holding nothing (or taken in by an offer at the same time).
        held = self._have.setdefault(manifest.bundle_id, ChunkSet(manifest.chunk_count))
        return held.to_bytes()

    def _check_relay_consent(self, listing: list[bytes]) -> None:
        """403 unless this node's operator consents to hold mail for one of ``listing``
        (the recipients that list it as their relay): `[relay] enabled`, and among
        `[relay] nodes` when that is set. A node listed without consent serves nobody."""
        if not self.config.relay_enabled:
            raise TransferRefused(
                403,
                "this node is not a relay: its operator has not enabled [relay]"
                " (the recipient lists it without its consent)",
            )
        allowed = {PublicIdentity.from_text(n).key for n in self.config.relay_nodes}
        if allowed and not allowed.intersection(listing):
            raise TransferRefused(
                403, "this relay does not hold mail for that recipient ([relay] nodes)"
            )

    async def _relay_held(self) -> Counter[bytes]:
        """Bytes this relay holds for others, per sender: each copy's manifest and the
        chunks it has on disk, with the chunks being written now."""
        held: Counter[bytes] = Counter(self._relay_coming)
        for h in await self.rows.relay_holdings():
            have = self._have.get(h.bundle_id) or ChunkSet(h.chunk_count, h.have)
            chunk = -(-h.size // max(1, h.chunk_count))
            held[h.sender] += h.manifest_size + min(h.size, len(have) * chunk)
        return held

    async def _check_relay_room(self, sender: bytes, size: int, *, whole: int = 0) -> None:
        """507 unless ``size`` more bytes from ``sender`` fit in the relay's quota and in
        the sender's share of it; ``whole``: the bundle's size, which must fit alone."""
        quota = self.config.transfer_relay_quota_mb * 1024 * 1024
        share = quota // RELAY_SENDER_SHARE
        if size + whole > quota:
            raise TransferRefused(507, "this relay's quota for others' mail is full")
        if size + whole > share:
            raise TransferRefused(
                507, "this bundle is larger than one sender's share of this relay's quota"
            )
        held = await self._relay_held()
        if held.total() + size > quota:
            raise TransferRefused(507, "this relay's quota for others' mail is full")
        if held[sender] + size > share:
            raise TransferRefused(507, "this sender's share of this relay's quota is full")

    async def _insert_received(self, manifest: Manifest, *held_as: Any, **options: Any) -> None:
        """``TransferStore.insert_received``, the manifest kept in memory too."""
        await self.rows.insert_received(manifest, *held_as, **options)
        self._manifests[manifest.bundle_id] = manifest
        if held_as[0] == "inbox":
            self._inbox.add(manifest.bundle_id)

    async def receive_run(
        self,
        bundle_id: bytes,
        first: int,
        last: int,
        body: AsyncIterable[bytes],
        length: int | None = None,
    ) -> list[int]:
        """Chunks ``first`` to ``last`` of a bundle offered here, their bytes one after
        the other in ``body`` (``length`` bytes if known), written as they arrive and each
        checked against the manifest (chunkfiles.RunWriter), then counted as held. If the
        body stops short (a cut link), the chunks that arrived whole are kept.

        Returns the chunks of the run that another request was writing at the same time,
        not written by this one (the caller may ask for them again)."""
        manifest = await self.manifest_of(bundle_id)
        have = await self.have_of(bundle_id)
        if manifest is None or have is None:
            raise TransferRefused(404, "no such bundle here: offer its manifest first")
        if last >= manifest.chunk_count:
            raise TransferRefused(400, f"the bundle has {manifest.chunk_count} chunks")
        row = None if bundle_id in self._inbox else await self._bundle_row(bundle_id)
        relayed = row is not None and row.role == "relay"
        if relayed and (row is None or row.state != "holding"):
            raise TransferRefused(404, "no such bundle here: offer its manifest first")
        if row is not None and row.role == "inbox":
            self._inbox.add(bundle_id)
        # No await from here to the registration of the chunks this request writes.
        wanted = [i for i in range(first, last + 1) if i not in have]
        busy = self._writing.get(bundle_id, set())
        mine = {i for i in wanted if i not in busy}
        writer = RunWriter(self.chunks, manifest, first, last, mine)
        if length is not None and length != writer.length:
            raise TransferRefused(400, f"the body must be {writer.length} bytes")
        self._writing[bundle_id] = busy | mine  # given back in the finally below
        if mine and bundle_id not in self._arriving:
            self._arrival_started(manifest, len(have))
        coming = 0
        if relayed:  # counted against the quota until written (given back below)
            coming = sum(manifest.ciphertext_chunk_size(i) for i in mine)
            self._relay_coming[manifest.sender.key] += coming
        full = False
        try:
            if relayed:
                await self._check_relay_room(manifest.sender.key, 0)
            async for piece in body:
                await self.disk.run(writer.feed, piece)
        except BodyTooLong as exc:
            raise TransferRefused(400, str(exc)) from None
        except ProtocolError as exc:
            raise TransferRefused(422, str(exc)) from None
        except DiskFull:
            full = True
        finally:
            writer.close()
            left = self._writing.pop(bundle_id) - mine
            if left:
                self._writing[bundle_id] = left
            if relayed:
                self._relay_coming[manifest.sender.key] -= coming
                self._relay_coming += Counter()  # drop senders at zero
            await self._held(manifest, have, writer.verified)
            if relayed and writer.verified:
                # Progress: the copy may wait longer now (six weeks once whole).
                hold = RELAY_MAX_HOLD_MS if have.complete else RELAY_STALL_MS
                expires = min(manifest.expires, self.clock.now_ms() + hold)
                await self._set_bundle(bundle_id, expires_ms=expires)
        if full:
            await self._save_have()
            await self._set_bundle(manifest.bundle_id, last_error="disk full: paused")
            log("disk full: transfer paused", bundle=manifest.bundle_id.hex()[:8])
            raise TransferRefused(507, "disk full on the receiving node")
        if not writer.complete:
            raise TransferRefused(400, f"the body ends inside chunk {writer.index}")
        return sorted(set(wanted) - mine)

    def _arrival_started(self, manifest: Manifest, held: int) -> None:
        """Log the first chunks of a bundle arriving (in this process: again after a
        restart), and remember when, for the line that says all are held."""
        while len(self._arriving) >= MAX_ARRIVING:  # bundles abandoned by their sender
            del self._arriving[next(iter(self._arriving))]
        self._arriving[manifest.bundle_id] = self.clock.now_ms()
        log(
            "bundle chunks arriving",
            bundle=manifest.bundle_id.hex()[:8],
            chunks=manifest.chunk_count,
            held=held,
            bytes=manifest.ciphertext_size,
        )

    async def _held(self, manifest: Manifest, have: ChunkSet, indexes: list[int]) -> None:
        # Acknowledged once the files are written: the set is saved at the next tick,
        # and rebuilt from the blob store after a crash (have_of).
        completed = False
        for index in indexes:
            completed = (have.add(index) and have.complete) or completed
        if indexes:
            self._dirty.add(manifest.bundle_id)
        if completed:  # decided before any await: only one writer completes a bundle
            started = self._arriving.pop(manifest.bundle_id, None)
            log(
                "bundle chunks held",
                bundle=manifest.bundle_id.hex()[:8],
                chunks=manifest.chunk_count,
                bytes=manifest.ciphertext_size,
                ms=None if started is None else self.clock.now_ms() - started,
            )
            if manifest.bundle_id not in self._inbox:
                await self._save_have()  # an inbox bundle's is saved with its opening
            await self._on_complete(manifest)

    async def _set_bundle(self, bundle_id: bytes, **fields: Any) -> None:
        await self.rows.update_bundle(bundle_id, **fields)

    async def _on_complete(self, manifest: Manifest) -> None:
        if manifest.bundle_id in self._inbox:
            role = "inbox"
        else:
            row = await self._bundle_row(manifest.bundle_id)
            if row is None:
                return
            role = row.role
        if role == "inbox" and manifest.bundle_id not in self._finalising:
            self._receipt_kept[manifest.bundle_id] = asyncio.Event()
            task = self._finalising[manifest.bundle_id] = self._spawn(self._finalise(manifest))
            task.add_done_callback(
                functools.partial(_pop_when_done, self._finalising, manifest.bundle_id)
            )
            task.add_done_callback(
                functools.partial(_pop_when_done, self._receipt_kept, manifest.bundle_id)
            )
        elif role == "relay":
            log("relay holds a bundle", bundle=manifest.bundle_id.hex()[:8])

    async def get_chunk(self, bundle_id: bytes, index: int, fetch: str | None, now: int) -> bytes:
        """Chunk ``index`` of a bundle, to a recipient of the bundle or a relay of one of
        them only (``fetch``: the fetching node's signed token, `_fetcher`). A token
        that is missing or does not verify is refused (403) before anything is looked
        up; a node that is neither is answered as for a bundle not held here (404)."""
        fetcher = self._fetcher(fetch, bundle_id, now)
        manifest = await self.manifest_of(bundle_id)
        have = await self.have_of(bundle_id)
        row = await self._bundle_row(bundle_id)
        if (
            manifest is None
            or have is None
            or row is None
            or row.state in ("delivered", "expired")
            or index not in have
            or not self._may_fetch(fetcher, manifest, now)
        ):
            raise TransferRefused(404, "this node does not hold that chunk")
        if row.role == "outbox":
            data = await asyncio.to_thread(self.blobs.get, manifest.chunk_hash(index))
        else:
            (data,) = await self.disk.run(self.chunks.read, manifest, index, index)
            if len(data) != manifest.ciphertext_chunk_size(index):
                raise TransferRefused(404, "this node does not hold that chunk")
        await self.uplink.throttle(len(data))
        return data

    def _fetcher(self, fetch: str | None, bundle_id: bytes, now: int) -> bytes:
        """The node that signed a chunk-fetch token (SPEC.md 7.1) for this node and this
        bundle, within 5 minutes of ``now``. A token already checked costs a lookup."""
        refused = f"chunk fetch refused: a chunk request carries the {CHUNK_FETCH_HEADER}"
        if not fetch:
            raise TransferRefused(403, f"{refused} header, signed by the fetching node")
        try:
            token = bytes.fromhex(fetch)
        except ValueError:
            raise TransferRefused(403, f"{refused} header in hexadecimal") from None
        fetcher = self._fetch_tokens.get(token)
        if fetcher is not None:
            made = int.from_bytes(token[80:88], "big")
            if token[64:80] == bundle_id and abs(now - made) <= CHUNK_FETCH_SKEW_MS:
                return fetcher
        try:
            fetcher = decode_chunk_fetch(token, source=self.me, bundle_id=bundle_id, now=now).key
        except ProtocolError as exc:
            raise TransferRefused(403, f"chunk fetch refused: {exc}") from None
        if len(self._fetch_tokens) >= MAX_FETCH_TOKENS:
            self._fetch_tokens.clear()  # tokens live 5 minutes; fetchers make new ones
        self._fetch_tokens[token] = fetcher
        return fetcher

    def _may_fetch(self, fetcher: bytes, manifest: Manifest, now: int) -> bool:
        """A recipient of the bundle, or a relay that one of its recipients lists (where
        the sender deposits it), and admitted to the network."""
        view = self.directory.view(now)
        recipients = [view.current(r.key) for r in manifest.recipients]
        if fetcher not in recipients and not any(
            fetcher in self.directory.relays_of(r, now) for r in recipients
        ):
            return False
        return self.directory.view(now).is_admitted(fetcher)

    async def receipt_once_opened(self, bundle_id: bytes) -> bytes | None:
        """This node's receipt for a bundle addressed here, once it is opened, if every
        chunk is held (the request that completed it, or one after); None if chunks are
        missing, if the bundle is larger than RECEIPT_ON_PUT_MAX, if it did not open, or
        if opening takes longer than RECEIPT_WAIT_S (the sender then asks for the
        receipt, as it does of older nodes)."""
        have = self._have.get(bundle_id)
        manifest = self._manifests.get(bundle_id)
        if have is None or not have.complete or manifest is None:
            return None
        if manifest.plaintext_size > RECEIPT_ON_PUT_MAX:
            return None
        opening = self._finalising.get(bundle_id)
        if opening is not None:
            # Until its receipt is kept (the opening on disk: what follows, deleting the
            # chunks and telling the case service, is not waited for) or it ends.
            kept = asyncio.ensure_future(self._receipt_kept[bundle_id].wait())
            try:
                await asyncio.wait(
                    {opening, kept}, timeout=RECEIPT_WAIT_S, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                kept.cancel()  # never the opening
            if bundle_id in self._receipts:
                return self._receipts[bundle_id]
            if not opening.done() or opening.cancelled() or opening.exception() is not None:
                return None  # not opened, or not on disk: asked for later
        if bundle_id in self._receipts:
            return self._receipts[bundle_id]
        row = await self._bundle_row(bundle_id)
        if row is None or row.role != "inbox":
            return None
        return row.receipt

    async def receipt_of(self, bundle_id: bytes) -> bytes | None:
        """This node's receipt for a bundle opened here (or a relay's copy delivered),
        None until the opening is on disk (``_finalise``)."""
        if bundle_id in self._finalising and bundle_id not in self._receipts:
            return None  # its row may say complete before the flush: not yet
        row = await self._bundle_row(bundle_id)
        return None if row is None else row.receipt

    async def failure_of(self, bundle_id: bytes) -> str | None:
        """Why a bundle addressed here failed to open (None: it did not fail)."""
        reason = await self.rows.failure_of(bundle_id)
        return None if reason is None else f"the recipient could not open the bundle: {reason}"

    async def take_receipt(self, bundle_id: bytes, data: bytes) -> None:
        """The recipient's receipt for a bundle this relay holds: keep it, drop the chunks."""
        manifest = await self.manifest_of(bundle_id)
        row = await self._bundle_row(bundle_id)
        if manifest is None or row is None or row.role != "relay":
            raise TransferRefused(404, "this relay holds no such bundle")
        recipients = [r.key for r in manifest.recipients]
        try:
            doc = decode_document(data, expect="receipt")
        except ProtocolError as exc:
            raise TransferRefused(400, f"bad receipt: {exc}") from None
        if doc.signer.key not in recipients or not receipt_ok(data, manifest, doc.signer.key):
            raise TransferRefused(403, "the receipt is not from a recipient of this bundle")
        await self._set_bundle(
            bundle_id, state="delivered", receipt=data, completed_ms=self.clock.now_ms()
        )
        await self._drop_chunks(manifest, keep_have=True)  # a re-offer sends nothing
        log("relay copy deleted after receipt", bundle=bundle_id.hex()[:8])

    async def _drop_chunks(self, manifest: Manifest, *, keep_have: bool = False) -> None:
        """Delete the chunks. ``keep_have``: still say they are held (the bundle was
        delivered: whoever offers it again learns there is nothing left to send)."""

        await asyncio.to_thread(self.chunks.delete, manifest.bundle_id)
        if keep_have:
            return
        empty = ChunkSet(manifest.chunk_count)
        self._have[manifest.bundle_id] = empty
        await self._set_bundle(manifest.bundle_id, have=empty.to_bytes())

    async def mail_poll(self, data: bytes, now: int) -> list[bytes]:
        """A signed mail poll: the manifests held here for the admitted node that made it,
        once (a replayed poll is refused within its window: `_mail_polls`, and a poll
        made before this process started, which it cannot remember)."""
        try:
            node = decode_mail_poll(data, now)
        except ProtocolError as exc:
            raise TransferRefused(403, f"mail poll refused: {exc}") from None
        if not self.directory.view(now).is_admitted(node.key):
            raise TransferRefused(403, "mail poll refused: not a node of this network")
        if mail_poll_time(data) < self._started_ms:
            raise TransferRefused(
                403, "mail poll refused: made before this relay started (poll again)"
            )
        try:
            self._mail_polls.check(node.key, data[32:40], mail_poll_time(data), now)
        except ProtocolError as exc:
            raise TransferRefused(403, f"mail poll refused: {exc}") from None
        return await self.mail_for(node.key)

    async def mail_for(self, node: bytes) -> list[bytes]:
        """Manifests this relay holds for ``node``, complete or not."""
        out = []
        view = self.directory.view(self.clock.now_ms())
        for raw in await self.rows.relay_manifests():
            manifest = Manifest.decode(raw)
            if node in [view.current(r.key) for r in manifest.recipients]:
                out.append(bytes(raw))
        return out

    # --- inbox: opening, receipts, pulling from relays ---------------------------------

    def received_folder(self, bundle_id: bytes) -> Path:
        return self.node_dir.root / "received" / bundle_id.hex()

    async def _finalise(self, manifest: Manifest) -> None:
        bundle_id = manifest.bundle_id
        folder = self.received_folder(bundle_id)
        try:
            header, listing = await asyncio.to_thread(self._open_into, manifest, folder)
        except ChunkLost as lost:  # a power cut ate it: fetch it again
            have = await self.have_of(bundle_id)
            if have is not None:
                have.discard(lost.index)
                await self._set_bundle(bundle_id, have=have.to_bytes())
            log("chunk lost on disk, fetched again", bundle=bundle_id.hex()[:8], chunk=lost.index)
            return
        except (ProtocolError, OSError) as exc:
            what = f"{type(exc).__name__}: {exc}"
            await self._set_bundle(bundle_id, state="failed", last_error=what[:300])
            log("bundle does not open", bundle=bundle_id.hex()[:8], error=type(exc).__name__)
            return
        now = self.clock.now_ms()
        receipt = encode_document(
            "receipt",
            {
                "bundle_id": bundle_id,
                "manifest": digest(manifest.raw),
                "received": now,
                "created": now,
            },
            self._key_for(manifest),  # the key it was sealed to, as its sender checks
        )
        held = self._have.get(bundle_id)
        # Opened: the chunk set, the state and the receipt in one write, before the
        # receipt is given (on the PUT's answer, or when asked for).
        await self._set_bundle(
            bundle_id,
            state="complete",
            completed_ms=now,
            receipt=receipt,
            last_error="",
            **({} if held is None else {"have": held.to_bytes()}),
        )
        if held is not None and held.complete:
            self._dirty.discard(bundle_id)  # saved whole just now: not again at the tick
        # The folder and that write on disk before the receipt is given: after it the
        # sender forgets the bundle, so a power cut here must not take it (durable.py).
        # Until then the receipt is not given (`receipt_of`, `receipt_once_opened`).
        await self._durable.flush(opened_paths(folder, self.store.path))
        self._receipts[bundle_id] = receipt
        if bundle_id in self._receipt_kept:
            self._receipt_kept[bundle_id].set()
        while len(self._receipts) > MAX_RECEIPTS_KEPT:
            del self._receipts[next(iter(self._receipts))]
        log("bundle received", bundle=bundle_id.hex()[:8], files=len(header.files))
        await self._drop_chunks(manifest, keep_have=True)  # opened: the ciphertext is done with
        self._spawn(self._post_receipt_to_relays(bundle_id))
        self._last_opened = asyncio.get_running_loop().time()
        if listing is not None:
            self._to_list.append((folder, listing))
            if self._listing is None:
                self._listing = self._spawn(self._list_later())
        if self.on_opened is not None:
            await self.on_opened(manifest, header, folder)

    async def _list_later(self) -> None:
        """DICOMweb's part of each opened bundle's listing, one at a time, once no bundle has been
        opened for LIST_LATER_MS: under a burst of bundles it takes no processor from the
        openings the senders wait for (their receipts); DICOMweb reads the headers
        meanwhile."""
        try:
            while self._to_list:
                while self._finalising or _since(self._last_opened) < LIST_LATER_MS / 1000:
                    if self._finalising:
                        await asyncio.wait(set(self._finalising.values()))
                    else:
                        await asyncio.sleep(LIST_LATER_MS / 1000)
                folder, listing = self._to_list.pop(0)
                try:
                    await asyncio.to_thread(listing.complete, folder)
                except Exception as exc:  # DICOMweb reads that folder's headers instead
                    log(
                        "opened bundle not listed whole",
                        bundle=folder.name[:8],
                        error=type(exc).__name__,
                    )
        finally:
            self._listing = None

    def _key_for(self, manifest: Manifest) -> Identity:
        """The key of this node a bundle was sealed to: the current one, or an earlier
        one for a bundle sealed before a peer learnt of a rotation."""
        for recipient in manifest.recipients:
            if recipient.key in self.keys:
                return self.keys[recipient.key]
        return self.identity

    def _open_into(
        self, manifest: Manifest, folder: Path
    ) -> tuple[BundleHeader, OpenedListing | None]:
        """Decrypt every chunk (each tag checked) into ``folder``, atomically; its files
        listed as they are written (``index_opened``): the bundle's header, and its
        listing (None: not listed), whose DICOMweb part is still to make."""
        opener = BundleOpener.for_recipient(manifest, self._key_for(manifest))
        reader = BundleReader()
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        handle = None
        made: set[Path] = set()  # folders made for the files (one mkdir each, not per file)
        listing = self.index_opened() if self.index_opened is not None else None
        # the bytes of the file being written, for its listing (None: not listed, or larger
        # than IN_MEMORY_MAX: its header is read back from disk)
        held: list[bytes] | None = None
        size = 0
        try:
            for i, ciphertext in enumerate(self.chunks.chunks(manifest)):
                try:
                    # Every chunk file was checked by its hash as it was written
                    # (RunWriter) or found again (held_on_disk): the tag suffices now.
                    plaintext = opener.open_chunk(i, ciphertext, checked=True)
                except ProtocolError:
                    if digest(ciphertext) != manifest.chunk_hash(i):
                        raise ChunkLost(i) from None  # damaged here, not by the sender
                    raise
                for event in reader.feed(plaintext):
                    if isinstance(event, FileData):
                        if handle is None:
                            path = _made(tmp / "files" / event.name, made)
                            handle = open(path, "wb")
                            held = [] if listing is not None and listing.wants(event.name) else None
                            size = 0
                        handle.write(event.data)
                        if held is not None:
                            size += len(event.data)
                            if size <= IN_MEMORY_MAX:
                                held.append(event.data)
                            else:
                                held = None
                    elif isinstance(event, FileEnd):
                        if handle is None:  # an empty file
                            path = _made(tmp / "files" / event.name, made)
                            path.touch()
                            held = []
                        else:
                            handle.close()
                            handle = None
                        if listing is not None:
                            data = None if held is None else b"".join(held)
                            try:
                                listing.add(f"files/{event.name}", path, data)
                            except Exception as exc:  # not listed: its headers are read
                                log(
                                    "opened bundle not listed",
                                    bundle=folder.name[:8],
                                    error=type(exc).__name__,
                                )
                                listing = None
                        held = None
            header = reader.close()
        finally:
            if handle is not None:
                handle.close()
        if listing is not None:
            try:
                listing.write(tmp)  # the viewer's part, what the reader waits for
            except Exception as exc:  # listed later from the headers instead
                log("opened bundle not listed", bundle=folder.name[:8], error=type(exc).__name__)
                listing = None
        (tmp / "case.json").write_text(
            json.dumps(_jsonable(header.case), ensure_ascii=False, sort_keys=True), "utf-8"
        )
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        return header, listing

    async def _post_receipt_to_relays(self, bundle_id: bytes) -> None:
        row = await self._bundle_row(bundle_id)
        if row is None or row.receipt is None or self._session is None:
            return
        for source in row.sources:
            address = self.directory.address_of(bytes.fromhex(source), self.clock.now_ms())
            if address is None:
                continue
            url = f"{address}/peer/v1/bundles/{bundle_id.hex()}/receipt"
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
                async with self._session.post(url, data=bytes(row.receipt)) as response:
                    if response.status in (200, 204, 404):
                        continue

    async def _poll_relays(self) -> None:
        """Ask the relays this node lists for mail; register what they hold for us."""
        if self._session is None:
            return
        now = self.clock.now_ms()
        for text in self.config.transfer_relays:
            relay = PublicIdentity.from_text(text).key
            address = self.directory.address_of(relay, now)
            if address is None:
                continue
            try:
                async with self._session.post(
                    f"{address}/peer/v1/mail", data=encode_mail_poll(self.identity, now)
                ) as response:
                    if response.status != 200:
                        continue
                    body = await response.read()
            except (TimeoutError, aiohttp.ClientError, OSError):
                continue
            await self._take_mail(relay, body, now)
        # receipts not yet posted to relays (the relay was down): again
        for bundle_id in await self.rows.receipts_to_post(now - 7 * 86_400_000):
            if bundle_id not in self._finalising:  # else not on disk yet: it posts it
                await self._post_receipt_to_relays(bundle_id)

    async def _take_mail(self, relay: bytes, body: bytes, now: int) -> None:
        from protocol.codec import unpack

        try:
            manifests = unpack(body, max_size=64 * 1024 * 1024)
        except ProtocolError:
            return
        if not isinstance(manifests, list):
            return
        for raw in manifests:
            if not isinstance(raw, bytes):
                continue
            try:
                manifest = Manifest.decode(raw, now=now)
            except ProtocolError:
                continue
            if not self.keys.keys() & {r.key for r in manifest.recipients}:
                continue
            if not self.directory.sealed_by_admitted(manifest.document, now):
                continue
            sources = [relay.hex()]
            if self.directory.address_of(manifest.sender.key, now) is not None:
                sources.append(manifest.sender.key.hex())  # fetched from both
            row = await self._bundle_row(manifest.bundle_id)
            if row is None:
                await self._insert_received(manifest, "inbox", now, sources=sources)
            elif row.role == "inbox":
                merged = sorted(set(row.sources) | set(sources))
                await self._set_bundle(manifest.bundle_id, sources=json.dumps(merged))
                if row.state == "complete" and manifest.bundle_id not in self._finalising:
                    self._spawn(self._post_receipt_to_relays(manifest.bundle_id))

    async def _start_pulls(self) -> None:
        for key, has_source in await self.rows.receiving():
            have = await self.have_of(key)
            if have is not None and have.complete and key not in self._finalising:
                manifest = await self.manifest_of(key)  # complete, not opened: a crash
                if manifest is not None:
                    await self._on_complete(manifest)
                continue
            if not has_source or key in self._pulls or len(self._pulls) >= MAX_ACTIVE_PULLS:
                continue
            self._pulls.add(key)
            task = self._spawn(self._pull(key))
            task.add_done_callback(functools.partial(discard_when_done, self._pulls, key))

    async def _pull(self, bundle_id: bytes) -> None:
        """Fetch the missing chunks from every source; give up (for now) when none answers."""
        manifest = await self.manifest_of(bundle_id)
        have = await self.have_of(bundle_id)
        row = await self._bundle_row(bundle_id)
        if manifest is None or have is None or row is None or have.complete:
            if manifest is not None and have is not None and have.complete:
                await self._on_complete(manifest)
            return
        download = Download(manifest, ChunkSet(have.count, have.to_bytes()), rng=os.urandom)
        now = self.clock.now_ms()
        addresses: dict[str, str] = {}
        for source in row.sources:
            address = self.directory.address_of(bytes.fromhex(source), now)
            if address is not None:
                addresses[source] = address
                download.add_source(source, window=self.config.transfer_window)
        if not addresses:
            self._name_unfetched(bundle_id.hex(), "no source's address is known")
            return
        in_flight: dict[asyncio.Task[bytes], tuple[str, int]] = {}
        tokens: dict[str, tuple[int, str]] = {}  # source -> (made at, its chunk-fetch token)
        blamed = 0
        try:
            while not download.complete:
                now = self.clock.now_ms()
                for fetch in download.next_fetches(now):
                    token = self._fetch_token(tokens, fetch.source, bundle_id, now)
                    url = (
                        f"{addresses[fetch.source]}/peer/v1/bundles/{bundle_id.hex()}"
                        f"/chunks/{fetch.index}"
                    )
                    task = asyncio.create_task(self._get(url, {CHUNK_FETCH_HEADER: token}))
                    in_flight[task] = (fetch.source, fetch.index)
                if not in_flight:
                    timer = download.get_timer()
                    if timer is None or timer - now > 30_000:
                        self._name_unfetched(bundle_id.hex(), "no source holds it or answers")
                        return  # nobody answers now: the inbox loop comes back later
                    await asyncio.sleep(max(0, timer - now) / 1000)
                    continue
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    source, index = in_flight.pop(task)
                    exc = task.exception()
                    if exc is not None:
                        download.on_failure(source, index, self.clock.now_ms(), str(exc)[:200])
                        continue
                    data = task.result()
                    if download.on_chunk(source, index, data, self.clock.now_ms()):
                        await self.receive_run(bundle_id, index, index, _once(data))
                for blame in download.blamed[blamed:]:
                    await self._blame(bytes.fromhex(blame.source), bundle_id, blame)
                blamed = len(download.blamed)
        finally:
            for task in in_flight:
                task.cancel()

    def _fetch_token(
        self, tokens: dict[str, tuple[int, str]], source: str, bundle_id: bytes, now: int
    ) -> str:
        """The chunk-fetch token (SPEC.md 7.1) for ``source``: one per bundle and source,
        signed again every 2 minutes (the source accepts it for 5)."""
        made, token = tokens.get(source, (0, ""))
        if not token or now - made >= FETCH_TOKEN_RENEW_MS:
            signed = encode_chunk_fetch(self.identity, bytes.fromhex(source), bundle_id, now)
            made, token = now, signed.hex()
            tokens[source] = (made, token)
        return token

    async def _get(self, url: str, headers: dict[str, str]) -> bytes:
        assert self._session is not None  # noqa: S101 - started
        async with self._session.get(url, headers=headers) as response:
            if response.status != 200:
                raise AttemptFailed(f"HTTP {response.status}")
            return await response.read()

    async def _blame(self, source: bytes, bundle_id: bytes, blame: Any) -> None:
        await self.rows.blame(source, bundle_id, blame.index, blame.reason, self.clock.now_ms())
        log(
            "bad chunk from a source",
            level=30,
            source=short(source),
            bundle=bundle_id.hex()[:8],
            chunk=blame.index,
        )

    async def _expire(self, now: int) -> None:
        """Relay copies and unfinished inbox bundles past their expiry are deleted, and
        relay copies from a sender no longer admitted (revoked): what it held is free."""
        for bundle_id, raw in await self.rows.expired(now):
            await self._drop_chunks(Manifest.decode(raw))
            await self._set_bundle(bundle_id, state="expired")
            log("bundle expired", bundle=bundle_id.hex()[:8])
        view = self.directory.view(now)
        for held in await self.rows.relay_holdings():
            if view.is_admitted(held.sender):
                continue
            manifest = await self.manifest_of(held.bundle_id)
            if manifest is not None and self.directory.sealed_by_admitted(manifest.document, now):
                continue  # sealed before its sender rotated its key
            if manifest is not None:
                await self._drop_chunks(manifest)
            await self._set_bundle(held.bundle_id, state="expired")
            log("relay copy dropped: its sender is not admitted", bundle=held.bundle_id.hex()[:8])

    # --- what the CLI and the local API show -------------------------------------------

    async def progress(self) -> list[Progress]:
        return await list_progress(self.db)

    async def _delivered(self, bundle_id: bytes, recipient: bytes, now: int) -> None:
        if self.on_delivered is not None:
            await self.on_delivered(bundle_id, recipient, now)


def _pop_when_done(held: dict[Any, Any], key: Any, _task: asyncio.Task[Any]) -> None:
    """A task's done-callback (with ``functools.partial``): ``key`` leaves ``held``."""
    held.pop(key, None)


def _since(when: float) -> float:
    """Seconds since ``when`` by the event loop's clock (a pause, not a date)."""
    return asyncio.get_running_loop().time() - when


def _made(path: Path, made: set[Path]) -> Path:
    """``path``, its folder made unless ``made`` says it was."""
    if path.parent not in made:
        path.parent.mkdir(parents=True, exist_ok=True)
        made.add(path.parent)
    return path


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
