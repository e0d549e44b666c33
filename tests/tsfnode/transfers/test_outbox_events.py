"""Issue 26: the outbox is driven by events. A bundle queued, a delivery that ends, each
start the next delivery at once (the service's tick, every SCAN_MS, only catches what
comes due with time); the recipient's receipt comes back on the answer to the PUT that
completed the bundle, without being asked for.

Two nodes in this process (``start_local_node``: each its own app, ManualClock and test
server on 127.0.0.1), admitted to the demo network and listing each other's address. The
service's tick is put off to an hour, so whatever is delivered was started by an event.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from bootstrap.network import demo_anchor, load_network
from bootstrap.tools import admit_node
from protocol.bundle import BundleSealer, Manifest, choose_chunk_size, encode_plaintext_header
from protocol.directory import make_record
from protocol.identity import Identity
from tests.harness.inprocess import LocalNode, node_log, start_local_node
from tsfnode.appkeys import DIRECTORY, TRANSFERS
from tsfnode.store.blobs import BlobStore
from tsfnode.transfers import service as transfer_service
from tsfnode.transfers.outbox import queue_bundle

DAY_MS = 86_400_000
BOUND_S = 60  # the longest a test waits for deliveries (real time; the tick is an hour)
HOLD_S = 20  # the longest an opening is held back by `_openings_held`


@pytest.fixture
def no_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """The transfer service's periodic tick, every hour: only events start deliveries."""
    monkeypatch.setattr(transfer_service, "SCAN_MS", 3_600_000)


def _node_record(identity: Identity, name: str, address: str, now: int) -> bytes:
    fields = {
        "name": name,
        "institution": "",
        "country": "BJ",
        "addresses": [address],
        "relays": [],
        "capabilities": ["bundles", "gossip"],
        "capacity": 0,
    }
    return make_record(
        "node", fields, signer=identity, network="demo", version=now, now=now, ttl=DAY_MS
    )


async def _two_nodes(tmp_path: Path, aiohttp_client: AiohttpClient) -> tuple[LocalNode, LocalNode]:
    """A sender (Cotonou) and a reader's node (Erasme), each knowing the other."""
    sender = await start_local_node(tmp_path / "cotonou", aiohttp_client)
    reader = await start_local_node(tmp_path / "erasme", aiohttp_client, name="Erasme")
    now = sender.clock.now_ms()
    network, anchor = load_network("demo"), demo_anchor()
    records = []
    for node in (sender, reader):
        address = str(node.client.make_url("")).rstrip("/")
        records += [
            admit_node(network, anchor, node.identity.public, now=now),
            _node_record(node.identity, node.config.name, address, now),
        ]
    for node in (sender, reader):
        await node.app[DIRECTORY].add(records, now)
    return sender, reader


def _seal(sender: LocalNode, reader: LocalNode, size: int, priority: int = 0) -> Manifest:
    """``size`` random bytes sealed by the sender for the reader's node, its chunks in
    the sender's blob store."""
    now = sender.clock.now_ms()
    blobs = BlobStore(sender.node_dir.blobs)
    sealer = BundleSealer(
        sender=sender.identity,
        recipients=[reader.identity.public],
        chunk_size=choose_chunk_size(size),
        rng=os.urandom,
    )
    chunks = sealer.push(encode_plaintext_header({}, [("a.bin", size)]))
    chunks += sealer.push(os.urandom(size))
    rest, raw = sealer.finish(now=now, ttl=DAY_MS, priority=priority)
    for chunk in chunks + rest:
        blobs.put(chunk, sync=False)
    return Manifest.decode(raw, now=now)


async def _queue(sender: LocalNode, manifest: Manifest) -> None:
    await queue_bundle(
        sender.store.db,
        manifest,
        sender=sender.identity.public.key,
        study_uid="",
        now=sender.clock.now_ms(),
    )


async def _delivered(sender: LocalNode, bundles: list[bytes]) -> dict[str, str]:
    """The state of each bundle's delivery, once all are delivered or BOUND_S passed."""
    wanted = {b.hex() for b in bundles}
    states: dict[str, str] = {}
    for _ in range(BOUND_S * 20):
        listed = await sender.app[TRANSFERS].progress()
        states = {p.bundle_id: p.state for p in listed if p.bundle_id in wanted}
        if len(states) == len(wanted) and set(states.values()) == {"delivered"}:
            break
        await asyncio.sleep(0.05)
    return states


async def _deliver_one(sender: LocalNode, reader: LocalNode, size: int) -> Manifest:
    """``size`` bytes sealed, queued and delivered (the outbox woken, as the case
    service does): the bundle's manifest."""
    manifest = _seal(sender, reader, size)
    await _queue(sender, manifest)
    sender.app[TRANSFERS].wake()
    states = await _delivered(sender, [manifest.bundle_id])
    assert states == {manifest.bundle_id.hex(): "delivered"}
    return manifest


@pytest.mark.usefixtures("no_tick")
async def test_a_finished_delivery_starts_the_next_without_a_tick(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    sender, reader = await _two_nodes(tmp_path, aiohttp_client)
    manifests = [_seal(sender, reader, 20_000 + i) for i in range(12)]
    for manifest in manifests:
        await _queue(sender, manifest)
    sender.app[TRANSFERS].wake()  # what the case service does when it queues
    states = await _delivered(sender, [m.bundle_id for m in manifests])
    # 12 bundles, more than the deliveries started at once: those after the first few
    # started when a slot was freed, with no tick in between.
    assert set(states.values()) == {"delivered"}, states
    assert len(states) == 12
    for i, manifest in enumerate(manifests):
        received = reader.node_dir.root / "received" / manifest.bundle_id.hex() / "files"
        assert (received / "a.bin").stat().st_size == 20_000 + i


@pytest.mark.usefixtures("no_tick")
async def test_the_receipt_comes_back_on_the_last_chunks_answer_without_a_poll(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    with node_log() as logged:
        sender, reader = await _two_nodes(tmp_path, aiohttp_client)
        manifest = await _deliver_one(sender, reader, 3_000_000)  # several runs of chunks
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    asked = [x for x in lines if x.get("path", "").endswith("/receipt")]
    assert asked == []  # the reader's node was never asked for it
    assert sender.app[TRANSFERS].outbox.receipt_polls == 0
    puts = [x for x in lines if x.get("method") == "PUT" and "/chunks/" in x.get("path", "")]
    assert puts
    assert {x["status"] for x in puts} <= {200, 204}
    assert [x["status"] for x in puts].count(200) == 1  # the run that completed it
    # The receipt kept is the reader's node's, for this manifest.
    delivered = await reader.app[TRANSFERS].receipt_of(manifest.bundle_id)
    kept = await sender.store.db.execute(
        "SELECT receipt FROM deliveries WHERE bundle_id = ?", (manifest.bundle_id,)
    )
    assert bytes((await kept.fetchone())[0]) == delivered


@pytest.mark.usefixtures("no_tick")
async def test_a_bundle_sealed_by_the_cli_starts_at_once_on_the_running_node(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    """`tsfnode seal` runs in another process than the node: it tells the running node
    (run.json's address, a local-only route) to look at its outbox now."""
    from tsfnode.cli.transfers import wake_running_node
    from tsfnode.nodedir import NodeDir

    sender, reader = await _two_nodes(tmp_path, aiohttp_client)
    address = str(sender.client.make_url("")).rstrip("/")
    node = NodeDir(sender.root)
    node.run_info.write_text(json.dumps({"pid": os.getpid(), "url": address}))
    manifest = _seal(sender, reader, 50_000)
    await _queue(sender, manifest)  # as `tsfnode seal` does, into the node's database
    told: list[bool] = []
    # The CLI's own call (blocking, as in `tsfnode seal`), from another thread.
    thread = threading.Thread(target=lambda: told.append(wake_running_node(node)))
    thread.start()
    await asyncio.to_thread(thread.join, 10)
    assert told == [True]
    states = await _delivered(sender, [manifest.bundle_id])
    assert states == {manifest.bundle_id.hex(): "delivered"}


@pytest.mark.usefixtures("no_tick")
async def test_a_recipient_that_does_not_give_the_receipt_on_the_put_is_asked_for_it(
    tmp_path: Path, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node of an earlier version ignores the Accept header and answers 204: the
    sender asks for the receipt (GET .../receipt), as it always did."""
    from tsfnode.peer import transfers as peer_transfers

    monkeypatch.setattr(peer_transfers, "RECEIPT_TYPE", "application/x-not-asked")
    sender, reader = await _two_nodes(tmp_path, aiohttp_client)
    manifest = _seal(sender, reader, 200_000)
    await _queue(sender, manifest)
    sender.app[TRANSFERS].wake()
    states = await _delivered(sender, [manifest.bundle_id])
    assert states == {manifest.bundle_id.hex(): "delivered"}
    assert sender.app[TRANSFERS].outbox.receipt_polls >= 1


@pytest.mark.usefixtures("no_tick")
async def test_a_bundle_held_whole_but_not_opened_when_the_node_dies_opens_after_it(
    tmp_path: Path, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chunk set of a bundle addressed here is written with its opening, not when its
    last chunk arrives: a node killed in between finds its chunks again by their hashes
    and opens it, none asked for again."""
    sender, reader = await _two_nodes(tmp_path, aiohttp_client)
    inbox = reader.app[TRANSFERS]
    completed: list[bytes] = []

    async def killed_before_opening(manifest: Manifest) -> None:
        completed.append(manifest.bundle_id)  # the process dies here: nothing opens

    monkeypatch.setattr(inbox, "_on_complete", killed_before_opening)
    manifest = _seal(sender, reader, 3_000_000)  # several chunks
    await _queue(sender, manifest)
    sender.app[TRANSFERS].wake()
    for _ in range(BOUND_S * 20):
        if completed:
            break
        await asyncio.sleep(0.05)
    assert completed == [manifest.bundle_id]
    # What the database says it holds at worst: nothing (the set was never saved).
    nothing = transfer_service.ChunkSet(manifest.chunk_count).to_bytes()
    await inbox.rows.update_bundle(manifest.bundle_id, have=nothing)

    restarted = transfer_service.TransferService(inbox.context)  # memory lost
    held = await restarted.have_of(manifest.bundle_id)
    assert held is not None
    assert held.complete  # every chunk found on disk by its hash
    await restarted._start_pulls()  # what its first tick does: open what is whole
    await asyncio.wait_for(asyncio.gather(*restarted._finalising.values()), BOUND_S)
    files = reader.node_dir.root / "received" / manifest.bundle_id.hex() / "files"
    assert (files / "a.bin").stat().st_size == 3_000_000
    assert await restarted.receipt_of(manifest.bundle_id) is not None


@pytest.mark.usefixtures("no_tick")
async def test_the_receipt_is_given_once_what_the_reader_opened_is_on_disk(
    tmp_path: Path, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After its receipt the sender counts a bundle as delivered: the reader's node
    flushes the opened folder (files, directories, the rename into place) and the
    database's log to disk before it gives it, several bundles in one flush."""
    from tsfnode.transfers import durable

    sender, reader = await _two_nodes(tmp_path, aiohttp_client)
    events: list[tuple[str, Any]] = []

    def flushed(paths: list[Path]) -> None:  # what the real flush would make durable
        events.append(("flush", {p for p in paths if p.exists()}))

    async def delivered(bundle_id: bytes, recipient: bytes, now: int) -> None:
        events.append(("receipt", bundle_id))

    monkeypatch.setattr(durable, "flush_to_disk", flushed)
    sender.app[TRANSFERS].on_delivered = delivered
    manifests = [_seal(sender, reader, 40_000 + i) for i in range(6)]
    for manifest in manifests:
        await _queue(sender, manifest)
    sender.app[TRANSFERS].wake()
    states = await _delivered(sender, [m.bundle_id for m in manifests])
    assert set(states.values()) == {"delivered"}, states
    wal = reader.node_dir.database.with_name("node.db-wal")
    for manifest in manifests:
        folder = reader.node_dir.root / "received" / manifest.bundle_id.hex()
        wanted = {*folder.rglob("*"), folder, folder.parent, wal}
        receipt = events.index(("receipt", manifest.bundle_id))
        assert any(kind == "flush" and wanted <= paths for kind, paths in events[:receipt]), (
            f"{manifest.bundle_id.hex()[:8]} not on disk before its receipt"
        )
    flushes = [e for e in events if e[0] == "flush"]
    assert 1 <= len(flushes) <= len(manifests)


def _openings_held(
    reader: LocalNode, monkeypatch: pytest.MonkeyPatch, enough: int
) -> tuple[list[int], threading.Event]:
    """The reader's openings wait (HOLD_S at most) until ``enough`` are under way at
    once, or the event is set: the most seen at once, and that event."""
    inbox = reader.app[TRANSFERS]
    opening = inbox._open_into
    lock, now, most, go = threading.Lock(), [0], [0], threading.Event()

    def held(manifest: Manifest, folder: Path) -> Any:
        with lock:
            now[0] += 1
            if not go.is_set():  # counted until they go
                most[0] = max(most[0], now[0])
            if now[0] >= enough:
                go.set()
        go.wait(HOLD_S)
        with lock:
            now[0] -= 1
        return opening(manifest, folder)

    monkeypatch.setattr(inbox, "_open_into", held)
    return most, go


@pytest.mark.usefixtures("no_tick")
async def test_small_bundles_go_to_one_recipient_side_by_side(
    tmp_path: Path, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small bundles are not held to two deliveries at once per recipient: each waits
    mostly for round trips and the opening, so several are opened at once."""
    sender, reader = await _two_nodes(tmp_path, aiohttp_client)
    most, go = _openings_held(reader, monkeypatch, enough=6)
    manifests = [_seal(sender, reader, 30_000 + i) for i in range(6)]
    for manifest in manifests:
        await _queue(sender, manifest)
    sender.app[TRANSFERS].wake()
    states = await _delivered(sender, [m.bundle_id for m in manifests])
    go.set()
    assert set(states.values()) == {"delivered"}, states
    assert most[0] == 6


@pytest.mark.usefixtures("no_tick")
async def test_larger_bundles_queued_after_small_ones_go_beside_them_two_at_once(
    tmp_path: Path, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four small bundles, then three of 2 MB: two of the larger ones go beside the
    small ones at once, the third only when one of them has ended (before, a bundle over
    1 MiB waited until fewer than two deliveries of any size went to the recipient: the
    larger studies of a burst were sent one after the other, at its end)."""
    sender, reader = await _two_nodes(tmp_path, aiohttp_client)
    most, go = _openings_held(reader, monkeypatch, enough=7)
    small = [_seal(sender, reader, 30_000 + i) for i in range(4)]
    larger = [_seal(sender, reader, 2_000_000 + i) for i in range(3)]
    for manifest in small + larger:
        await _queue(sender, manifest)
    sender.app[TRANSFERS].wake()
    for _ in range(40):  # six openings under way, a seventh would come now if allowed
        await asyncio.sleep(0.05)
    go.set()
    states = await _delivered(sender, [m.bundle_id for m in small + larger])
    assert set(states.values()) == {"delivered"}, states
    assert most[0] == 6


@pytest.mark.usefixtures("no_tick")
async def test_an_urgent_bundle_shares_the_link_with_one_other_delivery_at_most(
    tmp_path: Path, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an urgent bundle due for a recipient, no more than two deliveries go to it
    at once, small or not."""
    sender, reader = await _two_nodes(tmp_path, aiohttp_client)
    most, go = _openings_held(reader, monkeypatch, enough=3)
    urgent = _seal(sender, reader, 2_000_000, priority=1)
    manifests = [urgent] + [_seal(sender, reader, 30_000 + i) for i in range(4)]
    for manifest in manifests:
        await _queue(sender, manifest)
    sender.app[TRANSFERS].wake()
    for _ in range(40):  # two openings under way, a third would come now if allowed
        await asyncio.sleep(0.05)
    go.set()
    states = await _delivered(sender, [m.bundle_id for m in manifests])
    assert set(states.values()) == {"delivered"}, states
    assert most[0] == 2


@pytest.mark.usefixtures("no_tick")
async def test_a_bundle_received_in_many_chunk_requests_is_logged_per_bundle(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    """The receiving node logs a bundle's chunks arriving once and all held once, not
    one access-log line per chunk request (hundreds for a CT); a chunk request it
    refuses still gets its line."""
    with node_log() as logged:
        sender, reader = await _two_nodes(tmp_path, aiohttp_client)
        manifest = await _deliver_one(sender, reader, 3_000_000)  # several runs of chunks
        refused = await reader.client.put(f"/peer/v1/bundles/{'ab' * 16}/chunks/0", data=b"x")
        assert refused.status == 404
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    chunk_puts = [x for x in lines if x.get("method") == "PUT" and "/chunks/" in x["path"]]
    bundle = manifest.bundle_id.hex()
    # Only the answer that carried the receipt (200) and the refusal (404) have lines.
    assert sorted((x["path"].split("/")[4][:8], x["status"]) for x in chunk_puts) == sorted(
        [(bundle[:8], 200), ("abababab", 404)]
    )
    arriving = [x for x in lines if x["event"] == "bundle chunks arriving"]
    held = [x for x in lines if x["event"] == "bundle chunks held"]
    assert [(x["bundle"], x["held"], x["bytes"]) for x in arriving] == [
        (bundle[:8], 0, manifest.ciphertext_size)
    ]
    assert [(x["bundle"], x["chunks"]) for x in held] == [(bundle[:8], manifest.chunk_count)]
