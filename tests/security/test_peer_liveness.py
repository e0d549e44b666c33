"""Issue 21: a liveness rumour with a huge incarnation, from an admitted node, marked a
live node down, and at 2^63-1 the refutation could not be encoded (500s, "Task exception
was never retrieved", nodes flapping). Incarnations are now bounded in the envelope's
schema, and a rumour far beyond what its subject has said is ignored (SPEC.md 8.4).

The attacker is a real admitted identity POSTing real envelopes to the node's peer API
in process (the route, Peering and the Liveness engine the node runs); its envelopes
are made with the schema of the old code, which let any 64-bit incarnation through."""

from __future__ import annotations

import dataclasses
import os
import secrets

import pytest

from bootstrap.network import demo_anchor, load_network
from bootstrap.tools import admit_node
from protocol.codec import Bytes, Int, List, Schema, Str, Tuple
from protocol.envelope import encode_envelope
from protocol.identity import Identity
from protocol.kinds import KINDS_BY_NAME
from protocol.liveness import ALIVE, SUSPECT
from tests.harness.inprocess import LocalNode
from tsfnode.appkeys import DIRECTORY, PEERING

OLD_UPDATES = List(Tuple((Bytes(32, 32), Str(choices=("alive", "suspect", "down")), Int())), 16)
HUGE = 2**63 - 1


@pytest.fixture
async def admitted(local_node: LocalNode) -> tuple[Identity, Identity]:
    """Mallory (who lies) and Bamako (a live peer), both admitted to the node's network."""
    mallory, bamako = Identity.generate(os.urandom), Identity.generate(os.urandom)
    now = local_node.clock.now_ms()
    network, anchor = load_network("demo"), demo_anchor()
    records = [admit_node(network, anchor, n.public, now=now) for n in (mallory, bamako)]
    directory = local_node.app[DIRECTORY]
    await directory.add(records, now)
    peering = local_node.app[PEERING]
    peering.liveness.set_members(set(directory.view(now).admitted), now)
    return mallory, bamako


async def _rumour(
    local_node: LocalNode,
    monkeypatch: pytest.MonkeyPatch,
    sender: Identity,
    about: bytes,
    status: str,
    incarnation: int,
) -> int:
    """A ping from ``sender`` carrying one update, encoded as the old code allowed."""
    ping = KINDS_BY_NAME["ping"]
    with monkeypatch.context() as m:
        schema = Schema({"probe": Bytes(max=64), "updates": OLD_UPDATES})
        m.setitem(KINDS_BY_NAME, "ping", dataclasses.replace(ping, schema=schema))
        body = {"probe": b"12345678", "updates": [[about, status, incarnation]]}
        data = local_node.envelope("ping", sender, body)
    return await local_node.post_envelope(data)


async def test_a_rumour_beyond_any_incarnation_is_refused_and_marks_nobody_down(
    local_node: LocalNode,
    admitted: tuple[Identity, Identity],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mallory, bamako = admitted
    liveness = local_node.app[PEERING].liveness
    me = local_node.identity.public.key
    # 2^63-1 about a peer, and about the node itself: malformed envelopes (400), not a
    # peer marked down, not a refutation that cannot be encoded (500).
    assert await _rumour(local_node, monkeypatch, mallory, bamako.public.key, "down", HUGE) == 400
    assert await _rumour(local_node, monkeypatch, mallory, me, "suspect", HUGE) == 400
    assert liveness.peers[bamako.public.key].status == ALIVE
    assert liveness.incarnation == 0
    # Within the schema but far beyond what Bamako (or the node) ever said: ignored.
    assert await _rumour(local_node, monkeypatch, mallory, bamako.public.key, "down", 1000) == 200
    assert await _rumour(local_node, monkeypatch, mallory, me, "suspect", 1000) == 200
    assert liveness.peers[bamako.public.key].status == ALIVE
    assert liveness.incarnation == 0
    assert liveness.stats["implausible_incarnation"] == 2
    # An ordinary suspicion still works: the node refutes it with its next incarnation.
    assert await _rumour(local_node, monkeypatch, mallory, me, "suspect", 0) == 200
    assert liveness.incarnation == 1
    assert await _rumour(local_node, monkeypatch, mallory, bamako.public.key, "suspect", 0) == 200
    assert liveness.peers[bamako.public.key].status == SUSPECT


async def test_a_digest_that_does_not_decode_is_a_400_not_a_500(
    local_node: LocalNode, admitted: tuple[Identity, Identity]
) -> None:
    """Found by test_peer_decoders: the engines refuse a signed gossip_digest whose
    digest does not decode; the node answered that with a 500."""
    mallory, _ = admitted
    data = encode_envelope(
        kind="gossip_digest",
        sender=mallory,
        recipient=local_node.identity.public,
        body={"root": bytes(32), "digest": b"\x01not a digest"},
        now=local_node.clock.now_ms(),
        rng=secrets.token_bytes,
    )
    answer = await local_node.client.post(
        "/peer/v1/envelope", data=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert answer.status == 400
    assert await answer.text() == "MalformedError"
