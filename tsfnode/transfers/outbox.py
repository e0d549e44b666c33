"""The outbox: delivering the bundles sealed here, and the node's uplink cap.

A sealed bundle gets one delivery per recipient node (``queue_bundle``). A delivery is
tried directly, then through each relay the recipient lists in its directory record, with
exponential backoff and jitter between attempts. An attempt offers the manifest (the
target answers with the chunks it holds), then pushes the missing chunks, ``window``
requests in flight, under the node's uplink cap. The signed receipt of the recipient ends
the delivery; its time is the transit time. ``TransferService`` (transfers.py) runs it
beside the inbox and the relay.

Driven by events, not by the service's tick: a bundle queued (``TransferService.wake``),
a delivery that ends and so frees its slot, each start the next due delivery at once
(``start_due``: up to eight deliveries at once to one recipient, two of them at most
of bundles over 1 MiB; two in all while an urgent one is sent or due for it); the tick
only catches what comes due with time (a retry after its backoff). The recipient's
receipt comes back on the answer to the PUT that completed the bundle (``RECEIPT_TYPE``,
SPEC.md 7.1); a node of an earlier version answers 204 and the receipt is then asked for
(``_check_receipt``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from protocol.bundle import Manifest
from protocol.documents import decode_document, digest
from protocol.errors import ProtocolError
from protocol.identity import PublicIdentity
from protocol.transfer import Backoff, ChunkSet, RateLimit, Route, Upload, next_route
from tsfnode.clock import Clock
from tsfnode.config import NodeConfig
from tsfnode.logs import log
from tsfnode.network.directory import DirectoryService
from tsfnode.store.blobs import BlobStore
from tsfnode.store.transfers import Delivery, TransferStore
from tsfnode.transfers.diskcalls import DiskCalls

MAX_ACTIVE_DELIVERIES = 8
# Deliveries to one recipient at once: two, as before issue 26, so that an urgent bundle
# shares the hospital's uplink with one other delivery at most, never with many.
MAX_ACTIVE_PER_TARGET = 2
# A small bundle (a few radiographs, photographs of films, a report) crosses in a moment
# and waits mostly for round trips and the recipient's opening, not for the uplink: up
# to MAX_ACTIVE_DELIVERIES of them go to one recipient side by side, unless an urgent
# bundle for it is sent or due (it then shares the uplink with one other at most).
# Larger bundles share the uplink two at once (MAX_ACTIVE_PER_TARGET), whatever small
# ones go beside them: a study of a few MB queued after a burst of small ones does not
# wait for them all to end.
SMALL_BUNDLE = 1024 * 1024  # bytes sealed
# Asked for on a PUT of chunks: the recipient answers the PUT that completed the bundle
# with its signed receipt (200, this type) instead of 204 (SPEC.md 7.1).
RECEIPT_TYPE = "application/vnd.tsf.receipt"
PROGRESS_SAVE_MS = 500
RESUME_AFTER_CUT_MS = 500
MAX_RUN = 32  # chunks in one PUT, on fast links
BUSY_WAIT_S = 0.2  # before sending again chunks the destination was receiving
MAX_RECEIPT = 4096  # bytes of a receipt read from an answer


class AttemptFailed(Exception):
    """One delivery attempt failed; the delivery is tried again later."""


class ChunksBusy(Exception):
    """The destination was receiving some chunks of a run from another request (one cut
    a moment ago): the run is sent again, the attempt goes on."""


def short(node: bytes) -> str:
    """A node's short id, for logs."""
    return PublicIdentity(node).short


class Uplink:
    """The node's uplink cap: ``[transfer] upload_kbit_s``, or ``day_upload_kbit_s``
    within ``day_hours`` (local time). Chunks pushed and chunks served to a node pulling
    them both wait for it."""

    def __init__(self, config: NodeConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.rate = RateLimit(0)

    def update(self) -> None:
        """Take the rate of the hour (called every tick)."""
        start, end = (int(h) for h in self.config.transfer_day_hours.split("-"))
        day = start <= time.localtime(self.clock.now_ms() / 1000).tm_hour < end
        kbit = self.config.transfer_upload_kbit_s
        if day and self.config.transfer_day_upload_kbit_s:
            kbit = self.config.transfer_day_upload_kbit_s
        self.rate.set_rate(kbit * 1000 // 8)

    async def throttle(self, nbytes: int) -> None:
        delay = self.rate.delay(nbytes, self.clock.now_ms())
        if delay:
            await asyncio.sleep(delay / 1000)


class Outbox:
    """The deliveries of bundles sealed here (table ``deliveries``), driving
    ``protocol.transfer.Upload`` over HTTP."""

    def __init__(
        self,
        *,
        config: NodeConfig,
        db: Any,
        blobs: BlobStore,
        disk: DiskCalls,
        directory: DirectoryService,
        uplink: Uplink,
        clock: Clock,
        manifest_of: Callable[[bytes], Awaitable[Manifest | None]],
        spawn: Callable[[Any], asyncio.Task[Any]],
        delivered: Callable[[bytes, bytes, int], Awaitable[None]],
        freed: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.db = db
        self.blobs = blobs  # the chunks sealed here
        self.disk = disk
        self.directory = directory
        self.uplink = uplink
        self.clock = clock
        self.rows = TransferStore(db)
        self._manifest_of = manifest_of
        self._spawn = spawn
        self._delivered = delivered  # a receipt came back
        self._freed = freed  # a delivery ended: its slot is free (the service looks again)
        self.backoff = Backoff(
            base_ms=config.transfer_retry_base_ms, cap_ms=config.transfer_retry_cap_ms
        )
        self.session: aiohttp.ClientSession | None = None  # the service's, from start()
        self._deliveries: set[tuple[bytes, bytes]] = set()
        self._sending: dict[tuple[bytes, bytes], Manifest] = {}  # those deliveries' bundles
        # the first window of a delivery's next attempt, when not the configured one
        self._windows: dict[tuple[bytes, bytes], int] = {}
        # receipts asked for after a push (GET .../receipt), for the benchmarks and tests
        self.receipt_polls = 0

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Send through ``session``; a delivery cut by a stop or a crash is tried again."""
        self.session = session
        await self.rows.reset_sending()

    async def start_due(self, now: int) -> None:
        """Start the deliveries that are due, most urgent first, up to
        MAX_ACTIVE_DELIVERIES at a time (MAX_ACTIVE_PER_TARGET to one recipient). Called
        at every wake of the service: a bundle queued, a delivery ended, the tick."""
        free = MAX_ACTIVE_DELIVERIES - len(self._deliveries)
        if free <= 0:
            return
        per_recipient: dict[bytes, int] = {}
        large: dict[bytes, int] = {}  # of those, bundles over SMALL_BUNDLE
        urgent: set[bytes] = set()  # recipients with an urgent bundle sent or due
        for (_, recipient), manifest in self._sending.items():
            per_recipient[recipient] = per_recipient.get(recipient, 0) + 1
            if manifest.ciphertext_size > SMALL_BUNDLE:
                large[recipient] = large.get(recipient, 0) + 1
            if manifest.priority > 0:
                urgent.add(recipient)
        # Enough rows to fill the free slots past those already running and those
        # waiting for a busy recipient.
        limit = MAX_ACTIVE_DELIVERIES * (MAX_ACTIVE_PER_TARGET + 1)
        for key in await self.rows.due_deliveries(now, limit):
            if len(self._deliveries) >= MAX_ACTIVE_DELIVERIES:
                break
            recipient = key[1]
            if key in self._deliveries:
                continue
            due = await self._manifest_of(key[0])
            if due is None:
                continue
            if due.priority > 0:
                urgent.add(recipient)  # due first (most urgent first): no small one beside
            sending = per_recipient.get(recipient, 0)
            big = due.ciphertext_size > SMALL_BUNDLE
            if recipient in urgent:  # the urgent one shares the uplink with one other
                if sending >= MAX_ACTIVE_PER_TARGET:
                    continue
            elif sending >= MAX_ACTIVE_DELIVERIES:
                continue
            elif big and large.get(recipient, 0) >= MAX_ACTIVE_PER_TARGET:
                continue
            per_recipient[recipient] = sending + 1
            if big:
                large[recipient] = large.get(recipient, 0) + 1
            self._deliveries.add(key)
            self._sending[key] = due
            task = self._spawn(self._deliver(*key))
            task.add_done_callback(functools.partial(self._ended, key))

    def _ended(self, key: tuple[bytes, bytes], _task: object = None) -> None:
        """A delivery ended (or its receipt is written): its slot is free, the service
        looks for the next one at once."""
        if key in self._deliveries:
            self._deliveries.discard(key)
            self._sending.pop(key, None)
            self._freed()

    async def readdress(self, now: int) -> list[tuple[bytes, bytes, bytes]]:
        """Stop the deliveries to a key that was lost or revoked (SPEC.md §8.5): what was
        sealed to it is never sent to it. Returns (bundle id, old key, the key that holds
        its standing now, or the old key when none does), for the bundle to be sealed
        again by whoever sealed it."""
        view = self.directory.view(now)
        stopped = []
        for bundle_id, recipient in await self.rows.undelivered():
            if recipient not in view.revoked and recipient not in view.replaced:
                continue
            if (bundle_id, recipient) in self._deliveries:
                continue  # sending now: looked at again when the attempt ends
            new = view.current(recipient)
            why = (
                f"the recipient's key was replaced by {short(new)}: sealed again for it"
                if new != recipient
                else "the recipient's key was revoked"
            )
            await self._set_delivery(bundle_id, recipient, state="failed", last_error=why)
            log("delivery stopped: key lost", bundle=bundle_id.hex()[:8], to=short(recipient))
            stopped.append((bundle_id, recipient, new))
        return stopped

    async def _delivery(self, bundle_id: bytes, recipient: bytes) -> Delivery:
        found = await self.rows.delivery(bundle_id, recipient)
        assert found is not None  # noqa: S101 - chosen from the table a moment ago
        return found

    async def _deliver(self, bundle_id: bytes, recipient: bytes) -> None:
        manifest = await self._manifest_of(bundle_id)
        assert manifest is not None  # noqa: S101 - the delivery refers to it
        delivery = await self._delivery(bundle_id, recipient)
        now = self.clock.now_ms()
        if now >= manifest.expires:
            await self._set_delivery(
                bundle_id, recipient, state="failed", last_error="the bundle expired undelivered"
            )
            return
        if delivery.state == "deposited":
            await self._check_receipt(manifest, recipient, delivery)
            return
        attempt = next_route(
            delivery.failures,
            [r.hex() for r in self.directory.relays_of(recipient, now)],
            recipient.hex(),
        )
        target = bytes.fromhex(attempt.target)
        await self._set_delivery(
            bundle_id,
            recipient,
            state="sending",
            route=attempt.route.value,
            target=target,
            started_ms=now,
        )
        attempts = delivery.attempts + 1
        window = self._windows.get((bundle_id, recipient), self.config.transfer_window)
        started: list[Upload] = []
        receipts: list[bytes] = []
        try:
            address = self.directory.address_of(target, now)
            if address is None:
                raise AttemptFailed(f"no address known for {short(target)}")
            upload = await self._push(
                manifest, address, recipient, window, started, receipts, direct=target == recipient
            )
        except (TimeoutError, AttemptFailed, aiohttp.ClientError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            if started and started[0].progressed:
                # The link works but broke: go on at once, same way, no backoff.
                failures, wait = 0, RESUME_AFTER_CUT_MS
            else:
                failures = delivery.failures + 1
                wait = self.backoff.delay(failures - 1, os.urandom)
                # Nothing crossed: perhaps not even one window can cross between two
                # cuts of this link (chunks side by side share it). Fewer next time.
                self._windows[(bundle_id, recipient)] = max(1, window // 2)
            await self._set_delivery(
                bundle_id,
                recipient,
                state="pending",
                attempts=attempts,
                failures=failures,
                next_attempt_ms=self.clock.now_ms() + wait,
                last_error=reason[:300],
            )
            log(
                "delivery attempt failed",
                bundle=bundle_id.hex()[:8],
                to=short(recipient),
                route=attempt.route.value,
                attempts=attempts,
                retry_in_ms=wait,
                error=reason[:200],
            )
            return
        self._windows.pop((bundle_id, recipient), None)
        deposited = self.clock.now_ms()
        receipt = next((r for r in receipts if receipt_ok(r, manifest, recipient)), None)
        if receipt is not None:  # on the answer to the last run: no need to ask for it
            # One write ends the delivery: what was pushed and the receipt together.
            await self._receipt_came(
                manifest,
                recipient,
                attempt.route.value,
                receipt,
                attempts=attempts,
                failures=0,
                deposited_ms=deposited,
                acked=upload.acked.to_bytes(),
                bytes_done=upload.bytes_done,
                rate=upload.goodput.bytes_per_s or 0.0,
            )
            return
        await self._set_delivery(
            bundle_id,
            recipient,
            state="deposited",
            attempts=attempts,
            failures=0,
            next_attempt_ms=deposited,
            deposited_ms=deposited,
            acked=upload.acked.to_bytes(),
            bytes_done=upload.bytes_done,
            rate=upload.goodput.bytes_per_s or 0.0,
            last_error="",
        )
        await self._check_receipt(
            manifest, recipient, await self._delivery(bundle_id, recipient), wait=True
        )

    async def _post(self, url: str, data: bytes) -> tuple[int, bytes]:
        assert self.session is not None  # noqa: S101 - started
        async with self.session.post(url, data=data) as response:
            return response.status, await response.read()

    async def _push(
        self,
        manifest: Manifest,
        address: str,
        recipient: bytes,
        window: int,
        started: list[Upload],
        receipts: list[bytes],
        *,
        direct: bool,
    ) -> Upload:
        """Offer the bundle to ``address`` and send it the chunks it lacks (the upload is
        put in ``started`` as soon as it exists, for the caller to see its progress; a
        receipt that comes back on a PUT's answer in ``receipts``, not yet checked)."""
        bundle_hex = manifest.bundle_id.hex()
        status, body = await self._post(f"{address}/peer/v1/bundles", manifest.raw)
        if status != 200:
            raise AttemptFailed(f"the bundle was refused (HTTP {status}: {body[:200]!r})")
        try:
            have = ChunkSet(manifest.chunk_count, body)
        except ProtocolError as exc:
            raise AttemptFailed(f"the offer's answer is not a chunk set: {exc}") from None
        upload = Upload(manifest, window=window)
        upload.set_have(have)
        started.append(upload)
        in_flight: dict[asyncio.Task[bytes | None], list[int]] = {}
        # Progress is saved every PROGRESS_SAVE_MS of a push, not on its first answer: a
        # small bundle's push ends with one write (what was pushed, with the receipt).
        last_save = self.clock.now_ms()
        try:
            while not upload.done:
                batch = max(1, min(MAX_RUN, upload.window // 4))
                for run in _runs(upload.next_sends(self.clock.now_ms()), batch):
                    task = asyncio.create_task(self._put_run(address, manifest, run, direct=direct))
                    in_flight[task] = run
                if not in_flight:
                    break
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                failure: BaseException | None = None
                for task in done:
                    run = in_flight.pop(task)
                    error = task.exception()
                    if error is None and (receipt := task.result()) is not None:
                        receipts.append(receipt)
                    for index in run:
                        if error is None:
                            upload.on_ack(index, self.clock.now_ms())
                        else:
                            upload.on_failure(index, str(error))
                    if not isinstance(error, ChunksBusy):
                        failure = failure or error
                if failure is not None:
                    raise failure
                now = self.clock.now_ms()
                if now - last_save >= PROGRESS_SAVE_MS:
                    last_save = now
                    await self._save_progress(manifest.bundle_id, recipient, upload)
        finally:
            for task in in_flight:
                task.cancel()
            if not upload.done:  # done: the caller writes it with the outcome, at once
                await self._save_progress(manifest.bundle_id, recipient, upload)
        log("bundle pushed", bundle=bundle_hex[:8], to=address, chunks=manifest.chunk_count)
        return upload

    async def _save_progress(self, bundle_id: bytes, recipient: bytes, upload: Upload) -> None:
        await self._set_delivery(
            bundle_id,
            recipient,
            acked=upload.acked.to_bytes(),
            bytes_done=upload.bytes_done,
            rate=upload.goodput.bytes_per_s or 0.0,
        )

    async def _put_run(
        self, address: str, manifest: Manifest, run: list[int], *, direct: bool
    ) -> bytes | None:
        """PUT consecutive chunks in one request (one chunk on slow links), each read from
        its file as the request goes: never gathered into one buffer first (a copy of
        every byte sent, and a cold one; bench transfer_loopback_throughput). To the
        recipient itself (``direct``) the receipt is asked for: the answer to the run
        that completes the bundle carries it (returned, not yet checked)."""
        assert self.session is not None  # noqa: S101 - started
        sizes = [manifest.ciphertext_chunk_size(i) for i in run]

        async def body() -> AsyncIterator[bytes]:
            for index, size in zip(run, sizes, strict=True):
                data = await self.disk.run(self.blobs.get_sized, manifest.chunk_hash(index), size)
                await self.uplink.throttle(size)
                yield data

        where = str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"
        url = f"{address}/peer/v1/bundles/{manifest.bundle_id.hex()}/chunks/{where}"
        headers = {"Content-Length": str(sum(sizes)), "Content-Type": "application/octet-stream"}
        if direct:
            headers["Accept"] = RECEIPT_TYPE
        async with self.session.put(url, data=body(), headers=headers) as response:
            if response.status == 204:
                return None
            if direct and response.status == 200 and response.content_type == RECEIPT_TYPE:
                receipt = b""
                async for piece in response.content.iter_chunked(MAX_RECEIPT):
                    receipt += piece
                    if len(receipt) > MAX_RECEIPT:
                        return None  # not a receipt: asked for after the push
                return receipt
            text = (await response.text())[:200]
            if response.status == 507:
                raise AttemptFailed(f"the recipient's disk is full ({text})")
            if response.status == 409:
                await asyncio.sleep(BUSY_WAIT_S)
                raise ChunksBusy(text)
            raise AttemptFailed(f"chunks {where} refused (HTTP {response.status}: {text})")

    async def _check_receipt(
        self, manifest: Manifest, recipient: bytes, delivery: Delivery, wait: bool = False
    ) -> None:
        """Ask the target of a completed push for the recipient's receipt."""
        assert self.session is not None  # noqa: S101 - started
        assert delivery.target is not None  # noqa: S101 - set when the attempt began
        target = delivery.target
        address = self.directory.address_of(target, self.clock.now_ms())
        receipt = None
        tries = 20 if wait and delivery.route == Route.DIRECT.value else 1
        for n in range(tries):
            if address is None:
                break
            url = f"{address}/peer/v1/bundles/{manifest.bundle_id.hex()}/receipt"
            self.receipt_polls += 1
            try:
                async with self.session.get(url) as response:
                    if response.status == 200:
                        receipt = await response.read()
                        break
                    if response.status == 410:  # it will never open: say why, stop
                        reason = (await response.text())[:300]
                        await self._set_delivery(
                            manifest.bundle_id, recipient, state="failed", last_error=reason
                        )
                        log("delivery failed", bundle=manifest.bundle_id.hex()[:8], why=reason)
                        return
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            if n + 1 < tries:
                await asyncio.sleep(min(2.0, 0.1 * 2**n))
        if receipt is not None and receipt_ok(receipt, manifest, recipient):
            await self._receipt_came(manifest, recipient, delivery.route, receipt)
            return
        direct = delivery.route == Route.DIRECT.value
        if direct and address is not None and not await self._target_holds_all(address, manifest):
            # The recipient lost chunks it had acknowledged (a power cut): send them.
            await self._set_delivery(
                manifest.bundle_id, recipient, state="pending", next_attempt_ms=self.clock.now_ms()
            )
            return
        await self._set_delivery(
            manifest.bundle_id,
            recipient,
            next_attempt_ms=self.clock.now_ms()
            + (2_000 if direct else self.config.transfer_poll_interval_ms),
        )

    async def _receipt_came(
        self,
        manifest: Manifest,
        recipient: bytes,
        route: str | None,
        receipt: bytes,
        **pushed: Any,
    ) -> None:
        """``recipient``'s receipt (checked): the delivery is done (``pushed``: what the
        attempt that brought it did, written with it)."""
        now = self.clock.now_ms()
        await self._set_delivery(
            manifest.bundle_id,
            recipient,
            state="delivered",
            delivered_ms=now,
            receipt=receipt,
            last_error="",
            **pushed,
        )
        self._ended((manifest.bundle_id, recipient))  # the next starts while the hook runs
        log(
            "bundle delivered",
            bundle=manifest.bundle_id.hex()[:8],
            to=short(recipient),
            route=route,
            transit_ms=now - manifest.document.body["created"],
        )
        await self._delivered(manifest.bundle_id, recipient, now)

    async def _target_holds_all(self, address: str, manifest: Manifest) -> bool:
        assert self.session is not None  # noqa: S101 - started
        url = f"{address}/peer/v1/bundles/{manifest.bundle_id.hex()}/have"
        try:
            async with self.session.get(url) as response:
                if response.status != 200:
                    return response.status != 404
                return ChunkSet(manifest.chunk_count, await response.read()).complete
        except (TimeoutError, aiohttp.ClientError, OSError, ProtocolError):
            return True  # unreachable now: ask again later

    async def _set_delivery(self, bundle_id: bytes, recipient: bytes, **fields: Any) -> None:
        await self.rows.update_delivery(bundle_id, recipient, **fields)


def receipt_ok(data: bytes, manifest: Manifest, recipient: bytes) -> bool:
    """``data`` is ``recipient``'s signed receipt for exactly this manifest."""
    try:
        doc = decode_document(data, expect="receipt")
    except ProtocolError:
        return False
    return (
        doc.signer.key == recipient
        and bytes(doc.body["bundle_id"]) == manifest.bundle_id
        and bytes(doc.body["manifest"]) == digest(manifest.raw)
    )


async def queue_bundle(
    db: Any, manifest: Manifest, *, sender: bytes, study_uid: str, now: int, commit: bool = True
) -> None:
    """Put a bundle sealed here (its chunks in the blob store) in the outbox: one
    delivery per recipient, due now (committed unless ``commit`` is False: the caller's
    decision commits it). The running node picks it up within a second."""
    await TransferStore(db).insert_sealed(
        manifest, sender=sender, study_uid=study_uid, now=now, commit=commit
    )
    log(
        "bundle queued",
        bundle=manifest.bundle_id.hex()[:8],
        recipients=len(manifest.recipients),
    )


def _runs(indexes: list[int], longest: int) -> list[list[int]]:
    """Consecutive indexes grouped into runs of at most ``longest``."""
    runs: list[list[int]] = []
    for i in indexes:
        if runs and runs[-1][-1] == i - 1 and len(runs[-1]) < longest:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def discard_when_done(held: set[Any], key: Any, _task: asyncio.Task[Any]) -> None:
    """A task's done-callback (with ``functools.partial``): ``key`` leaves ``held``."""
    held.discard(key)
