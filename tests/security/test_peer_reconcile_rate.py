"""Issue 21: an admitted peer could ask a node for range reconciliation as often as it
liked (a gossip_ranges message, or a syn that opens an exchange, each answered with
fingerprints worked out over the node's whole directory). Each peer now has a budget
(`protocol.gossip.PeerBudget`, sans-IO, time passed in): four whole exchanges at once,
two more every gossip interval; beyond it, its messages are not answered and are counted
(`reconcile_throttled`, in `/api/v1/peers`). Other peers keep their own budget.

Real admitted identities POST signed envelopes to the node's peer API in process."""

from __future__ import annotations

import os

from bootstrap.network import demo_anchor, load_network
from bootstrap.tools import admit_node
from protocol.gossip import EXCHANGE_BURST, EXCHANGE_REFILL
from protocol.identity import Identity
from protocol.reconcile import RangeIndex
from tests.harness.inprocess import LocalNode
from tsfnode.appkeys import DIRECTORY, PEERING

ASKED = EXCHANGE_BURST + 40  # bounded: a few more than the budget


async def _ask(local_node: LocalNode, peer: Identity) -> int:
    """One gossip_ranges message opening an exchange (an empty directory's fingerprint,
    which differs from the node's): the status of the node's answer."""
    opening = [r.to_wire() for r in RangeIndex([]).opening()]
    body = {"round": 1, "ranges": opening, "want": b"", "records": []}
    return await local_node.post_envelope(local_node.envelope("gossip_ranges", peer, body))


async def test_a_peer_asking_for_reconciliation_too_often_is_throttled(
    local_node: LocalNode,
) -> None:
    mallory, bamako = Identity.generate(os.urandom), Identity.generate(os.urandom)
    now = local_node.clock.now_ms()
    network, anchor = load_network("demo"), demo_anchor()
    await local_node.app[DIRECTORY].add(
        [admit_node(network, anchor, n.public, now=now) for n in (mallory, bamako)], now
    )
    answered = [await _ask(local_node, mallory) for _ in range(ASKED)]
    assert answered[:EXCHANGE_BURST] == [200] * EXCHANGE_BURST  # an answer each
    assert answered[EXCHANGE_BURST:] == [204] * (ASKED - EXCHANGE_BURST)  # none
    assert await _ask(local_node, bamako) == 200  # another peer has its own budget
    peering = local_node.app[PEERING]
    assert peering.gossip.stats["reconcile_throttled"] == ASKED - EXCHANGE_BURST
    status, shown = await local_node.call("/api/v1/peers", None)
    assert status == 200
    assert shown["stats"]["gossip_reconcile_throttled"] == ASKED - EXCHANGE_BURST
    # One gossip interval later, the peer may ask again, as much as the refill.
    local_node.clock.advance(peering.gossip.config.interval_ms)
    again = [await _ask(local_node, mallory) for _ in range(EXCHANGE_REFILL + 1)]
    assert again == [200] * EXCHANGE_REFILL + [204]
