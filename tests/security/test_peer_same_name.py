"""Issue 21: a node may call itself by another node's name (names are claims, keys are
identity). The directory now flags every node whose name another node uses too, and the
operator's views show each node's short key fingerprint beside its name."""

from __future__ import annotations

import os

from bootstrap.network import demo_anchor, load_network
from bootstrap.tools import admit_node
from protocol.directory import make_record
from protocol.identity import Identity
from tests.harness.inprocess import LocalNode
from tsfnode.appkeys import DIRECTORY

DAY_MS = 86_400_000


def _node_record(identity: Identity, name: str, now: int) -> bytes:
    fields = {
        "name": name,
        "institution": "",
        "country": "BJ",
        "addresses": ["http://127.0.0.1:9"],
        "relays": [],
        "capabilities": ["bundles", "gossip"],
        "capacity": 0,
    }
    return make_record(
        "node", fields, signer=identity, network="demo", version=now, now=now, ttl=DAY_MS
    )


async def test_a_node_using_anothers_name_is_flagged_beside_its_fingerprint(
    local_node: LocalNode,
) -> None:
    now = local_node.clock.now_ms()
    network, anchor = load_network("demo"), demo_anchor()
    honest, impostor, other = (Identity.generate(os.urandom) for _ in range(3))
    records = []
    for identity, name in (
        (honest, "CHU de Parakou"),
        (impostor, "chu  de PARAKOU"),  # the same name to a reader's eye
        (other, "Hôpital de Natitingou"),
    ):
        records += [
            admit_node(network, anchor, identity.public, now=now),
            _node_record(identity, name, now),
        ]
    outcome = await local_node.app[DIRECTORY].add(records, now)
    assert outcome["added"] == len(records), outcome
    found = await local_node.client.get("/api/v1/directory?kind=node")
    entries = {e["id"]: e for e in await found.json()}
    for me, twin in ((honest, impostor), (impostor, honest)):
        details = entries[me.public.text]["details"]
        assert details["fingerprint"] == me.public.short
        assert details["same_name_as"] == [twin.public.short]
    assert entries[other.public.text]["details"]["same_name_as"] == []
    answer = await (await local_node.client.get("/api/v1/peers")).json()
    peers = {p["id"]: p for p in answer["peers"]}
    assert peers[impostor.public.text]["fingerprint"] == impostor.public.short
    assert peers[impostor.public.text]["same_name_as"] == [honest.public.short]
    assert peers[other.public.text]["same_name_as"] == []
