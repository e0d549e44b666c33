"""Issue 21: with a bundle id (listed by `/api/v1/transfers`, seen in a log or on the
wire), anyone fetched a bundle's ciphertext chunks from its sender or a relay, and spent
the sender's uplink doing it: ``GET .../chunks/{i}`` needed only the 128-bit id.

A chunk is now served only to a recipient of the bundle, or a relay one of them lists,
that proves it with a signed token (``X-TSF-Fetch``, SPEC.md 7.1) naming the serving node
and the bundle. A request without a valid token is refused before anything is looked up;
an admitted node that is not a party, or a key of no node, gets exactly the answer given
for a bundle not held there. Three real nodes: the sender, the reader it seals for (down,
so the bundle waits in the sender's outbox), and an admitted node that is neither."""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.bundle import Manifest
from protocol.identity import Identity, PublicIdentity
from protocol.transfer import CHUNK_FETCH_HEADER, encode_chunk_fetch
from tests.harness.cluster import Cluster
from tests.harness.waiting import wait_for
from tests.tsfnode.transfers.conftest import CT, QUICK, import_study, met, seal, transfers
from tsfnode.keyfile import read_key
from tsfnode.store.blobs import BlobStore

pytestmark = pytest.mark.slow


@pytest.fixture
def three(tmp_path: Path, anchor_key: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path, anchor_key, 3, **QUICK) as c:
        yield c


def _fetch(url: str, token: bytes | None) -> tuple[int, bytes]:
    headers = {CHUNK_FETCH_HEADER: token.hex()} if token is not None else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _now() -> int:
    return int(time.time() * 1000)


def _first_chunk(directory: Path, bundle: str) -> bytes:
    with sqlite3.connect(directory / "node.db") as db:
        ((raw,),) = db.execute(
            "SELECT manifest FROM bundles WHERE bundle_id = ?", (bytes.fromhex(bundle),)
        )
    return BlobStore(directory / "blobs").get(Manifest.decode(bytes(raw)).chunk_hash(0))


def test_chunks_are_served_only_to_the_bundles_recipients(three: Cluster) -> None:
    sender, reader, stranger = three.dirs
    study = import_study(sender, CT)
    three.start()
    met(three)
    three.stop_node(1)  # the reader is away: the bundle waits at the sender
    bundle = seal(sender, study, three.ids[1])
    wait_for(
        "the bundle is in the sender's outbox",
        lambda: any(t["bundle_id"] == bundle for t in transfers(three.url(0))),
    )
    at = f"{three.url(0)}/peer/v1/bundles/{bundle}/chunks/0"
    me = PublicIdentity.from_text(three.ids[0]).key
    bundle_id = bytes.fromhex(bundle)

    # The attack as it was made: the id alone.
    status, body = _fetch(at, None)
    assert status == 403
    assert CHUNK_FETCH_HEADER.encode() in body

    # An admitted node that is neither a recipient nor a relay, and a key of no node,
    # are answered as for a bundle that is not there.
    unknown = os.urandom(16)
    elsewhere = f"{three.url(0)}/peer/v1/bundles/{unknown.hex()}/chunks/0"
    for who in (read_key(stranger / "node.key"), Identity.generate(os.urandom)):
        refused = _fetch(at, encode_chunk_fetch(who, me, bundle_id, _now()))
        absent = _fetch(elsewhere, encode_chunk_fetch(who, me, unknown, _now()))
        assert refused == absent
        assert refused[0] == 404

    # The recipient gets the chunk; its token names this node and this bundle, and now.
    recipient = read_key(reader / "node.key")
    token = encode_chunk_fetch(recipient, me, bundle_id, _now())
    assert _fetch(at, token) == (200, _first_chunk(sender, bundle))
    assert _fetch(at, token) == (200, _first_chunk(sender, bundle))  # reused within its time
    status, body = _fetch(elsewhere, token)  # the same token for another bundle
    assert status == 403
    assert b"another bundle" in body
    other_node = PublicIdentity.from_text(three.ids[2]).key
    status, body = _fetch(at, encode_chunk_fetch(recipient, other_node, bundle_id, _now()))
    assert status == 403
    assert b"another node" in body
    stale = encode_chunk_fetch(recipient, me, bundle_id, _now() - 6 * 60_000)
    status, body = _fetch(at, stale)
    assert status == 403
    assert b"not from now" in body
    forged = bytearray(token)
    forged[-1] ^= 1
    assert _fetch(at, bytes(forged))[0] == 403
    assert _fetch(at, b"\x00" * 3)[0] == 403
