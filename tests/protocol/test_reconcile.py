"""Range-based reconciliation of directories (protocol/reconcile.py, gossip_ranges): two
directories end as the union by the merge rule in a bounded number of messages, the bytes
grow with what differs, every message is bounded, bad messages raise MalformedError, and
nodes of the earlier gossip still converge with nodes of this one."""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codec import pack
from protocol.directory import Directory
from protocol.envelope import HEADER_SIZE
from protocol.errors import MalformedError
from protocol.gossip import RANGES_CAPABILITY, GossipConfig, GossipEngine, Outgoing
from protocol.identity import SIGNATURE_SIZE, Identity
from protocol.kinds import KINDS_BY_NAME
from protocol.reconcile import (
    BRANCH,
    END,
    ENTRY,
    FINGERPRINT,
    IDLIST,
    IDLIST_MAX,
    MAX_IDS,
    MAX_RANGES,
    MAX_ROUNDS,
    SKIP,
    RangeIndex,
    parse_ranges,
    parse_want,
)
from tests.protocol.directory_world import World
from tests.protocol.helpers import NOW, FixedRng, identity


def wire_size(kind: str, body: dict[str, Any]) -> int:
    box = 16 if KINDS_BY_NAME[kind].encrypted else 0
    return HEADER_SIZE + len(pack(body)) + box + SIGNATURE_SIZE


class Exchange:
    """Two engines joined in memory: A's syn to B and every answer, in order."""

    def __init__(self, a: GossipEngine, b: GossipEngine) -> None:
        self.a, self.b = a, b
        self.messages: list[Outgoing] = []
        self.bytes = 0

    def run(self, now: int = NOW, limit: int = 100) -> None:
        engines = {self.a.me: self.a, self.b.me: self.b}
        queue = [Outgoing(self.b.me, "gossip_syn", {"root": self.a.directory.root()})]
        sender = {self.b.me: self.a.me, self.a.me: self.b.me}
        while queue:
            message = queue.pop(0)
            self.messages.append(message)
            self.bytes += wire_size(message.kind, message.body)
            assert len(self.messages) <= limit
            queue += engines[message.peer].receive(
                sender[message.peer], message.kind, message.body, now
            )

    @property
    def kinds(self) -> list[str]:
        return [m.kind for m in self.messages]


# --- a pool of real signed records -------------------------------------------------


@functools.cache
def pool() -> tuple[World, list[Identity], list[bytes], list[bytes]]:
    """Two gossiping nodes (admitted, listing the capability) and 60 more records any
    directory may hold or not: certificates, and two versions of some node records."""
    world = World()
    a, b = identity("rec-a"), identity("rec-b")
    base = [world.node_cert(a), world.node_cert(b)]
    base += [world.node_record(n, n.public.key.hex()[:8], capabilities=[RANGES_CAPABILITY])
             for n in (a, b)]  # fmt: skip
    others = [identity(f"rec-{i}") for i in range(40)]
    extra = [world.node_cert(n) for n in others]
    extra += [world.node_record(n, f"v1 {i}") for i, n in enumerate(others[:10])]
    extra += [world.node_record(n, f"v2 {i}") for i, n in enumerate(others[:10])]
    return world, [a, b], base, extra


def engine(me: Identity, records: list[bytes], *, ranges: bool = True) -> GossipEngine:
    world = pool()[0]
    directory = Directory(world.network)
    directory.add_many(records, NOW)
    return GossipEngine(
        me=me.public.key,
        directory=directory,
        rng=FixedRng(me.public.key.hex()),
        now=NOW,
        config=GossipConfig(ranges=ranges),
    )


def held(node: GossipEngine) -> list[bytes]:
    return [doc.raw for doc in node.directory]


def union_root(*record_sets: list[bytes]) -> bytes:
    merged = Directory(pool()[0].network)
    merged.add_many([r for records in record_sets for r in records], NOW)
    return merged.root()


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_two_random_directories_reconcile_to_their_union(data: st.DataObject) -> None:
    _world, (a, b), base, extra = pool()
    mask = st.lists(st.booleans(), min_size=len(extra), max_size=len(extra))
    in_a, in_b = data.draw(mask), data.draw(mask)
    records_a = base + [r for r, keep in zip(extra, in_a, strict=True) if keep]
    records_b = base + [r for r, keep in zip(extra, in_b, strict=True) if keep]
    exchange = Exchange(engine(a, records_a), engine(b, records_b))
    target = union_root(held(exchange.a), held(exchange.b))  # what each holds, merged
    exchange.run()
    assert exchange.a.directory.root() == exchange.b.directory.root() == target
    assert set(exchange.kinds) <= {"gossip_syn", "gossip_ranges"}
    assert len(exchange.messages) <= 6  # syn, then at most 5 (64 records: one split)


def union_by_rule(*sets: dict[bytes, tuple[int, bytes]]) -> dict[bytes, tuple[int, bytes]]:
    out: dict[bytes, tuple[int, bytes]] = {}
    for entries in sets:
        for key, held in entries.items():
            out[key] = max(out.get(key, held), held)
    return out


def reconcile_sets(
    a: dict[bytes, tuple[int, bytes]], b: dict[bytes, tuple[int, bytes]]
) -> tuple[int, int]:
    """The exchange on digest entries alone (records stand for themselves, no budget):
    B opens, each answers, pushes and wants are applied. Returns (messages, bytes of
    ranges and wants)."""
    sides = [a, b]
    index = [RangeIndex((k, v, d) for k, (v, d) in s.items()) for s in sides]
    ranges = index[1].opening()
    pending_want: tuple[bytes, ...] = ()
    turn, messages, size = 0, 1, len(pack([r.to_wire() for r in ranges]))
    while True:
        me, peer = sides[turn], sides[1 - turn]
        answer = index[turn].answer(parse_ranges([r.to_wire() for r in ranges]))
        sends = [k for k in (*pending_want, *answer.push) if k in me]
        if answer.settled and not answer.want and not sends:
            return messages, size
        messages += 1
        size += len(pack([r.to_wire() for r in answer.ranges])) + 8 * len(answer.want)
        for key in sends:  # the merge rule: the later entry wins
            if key not in peer or me[key] > peer[key]:
                peer[key] = me[key]
        index[1 - turn] = RangeIndex((k, v, d) for k, (v, d) in peer.items())
        ranges, pending_want = list(answer.ranges), answer.want
        turn = 1 - turn
        assert messages <= MAX_ROUNDS


def entries(count: int, salt: str = "") -> dict[bytes, tuple[int, bytes]]:
    return {
        hashlib.sha256(f"key {i}".encode()).digest()[:8]: (
            NOW + i,
            hashlib.sha256(f"{salt}{i}".encode()).digest()[:4],
        )
        for i in range(count)
    }


@settings(max_examples=60, deadline=None)
@given(
    common=st.integers(0, 3000),
    only_a=st.integers(0, 200),
    only_b=st.integers(0, 200),
    newer=st.integers(0, 50),
)
def test_digests_reconcile_within_a_bounded_number_of_messages(
    common: int, only_a: int, only_b: int, newer: int
) -> None:
    shared = entries(common)
    a = dict(shared) | {k: v for k, v in entries(only_a, "a").items() if k not in shared}
    b = dict(shared)
    for key in list(shared)[:newer]:  # b holds later versions of some
        b[key] = (shared[key][0] + 1, b"new!")
    b |= {
        hashlib.sha256(f"b-only {i}".encode()).digest()[:8]: (NOW, b"bbbb") for i in range(only_b)
    }
    want = union_by_rule(a, b)
    messages, _size = reconcile_sets(a, b)
    assert a == b == want
    depth = max(1, math.ceil(math.log(max(len(want), 1) / IDLIST_MAX, BRANCH)) + 1)
    assert messages <= 2 * depth + 3


def test_the_bytes_grow_with_the_difference_not_with_the_directory() -> None:
    """One entry differs in directories of 1,000 and of 50,000 entries: the ranges
    exchanged (counted exactly here: messages, bytes of ranges and wants) grow with the
    depth, log16 of the size, not with the size; 100 differing entries cost about 100
    times one. The full digest is 20 bytes an entry (1 MB at 50,000)."""
    counts = {}
    for size, differ in ((1000, 1), (50_000, 1), (50_000, 100)):
        a = entries(size)
        b = dict(a)
        for key in list(a)[:differ]:
            b[key] = (a[key][0] + 1, b"new!")
        counts[(size, differ)] = reconcile_sets(a, b)
    assert counts[(1000, 1)] == (3, 1606)  # B's 32 ranges, A's list, B's record
    assert counts[(50_000, 1)] == (5, 2999)  # 64 ranges, 16, 16, a list, the record
    assert counts[(50_000, 100)] == (9, 94_143)
    assert counts[(50_000, 1)][1] < 20 * 50_000 / 250


def test_one_changed_record_costs_a_tenth_of_the_full_digest_exchange() -> None:
    world = World()
    a, b = identity("bytes-a"), identity("bytes-b")
    nodes = [identity(f"bytes-{i}") for i in range(600)]
    base = [world.node_cert(n) for n in [a, b, *nodes]]
    base += [world.node_record(n, "N", capabilities=[RANGES_CAPABILITY]) for n in (a, b)]
    change = world.node_record(nodes[7], "changed")
    new = Exchange(engine(a, base), engine(b, [*base, change]))
    new.run()
    old = Exchange(engine(a, base, ranges=False), engine(b, [*base, change], ranges=False))
    old.run()
    for exchange in (new, old):
        assert exchange.a.directory.root() == exchange.b.directory.root()
    assert new.kinds == ["gossip_syn"] + ["gossip_ranges"] * 3
    assert old.kinds == ["gossip_syn", "gossip_digest", "gossip_records", "gossip_records"]
    digest = len(new.a.directory.encoded_digest())
    assert digest == 20 * 605  # 602 certificates, 3 node records
    assert old.bytes > 2 * digest
    assert new.bytes < old.bytes / 6
    assert new.bytes == 2364


# --- nodes of the earlier gossip -----------------------------------------------------


def test_a_node_without_the_capability_is_answered_with_the_digest_and_both_converge() -> None:
    _world, (a, b), base, extra = pool()
    world = pool()[0]
    old_record = world.node_record(a, "old", capabilities=["bundles", "gossip"])
    common = [base[0], base[1], base[3], old_record]  # a's record lacks the capability
    records_a, records_b = [*common, *extra[:30]], [*common, *extra[20:]]
    old = engine(a, records_a, ranges=False)  # today's engine: never opens by ranges
    new = engine(b, records_b)
    target = union_root(held(old), held(new))
    for first, second in ((old, new), (new, old)):
        exchange = Exchange(first, second)
        exchange.run()
        assert "gossip_ranges" not in exchange.kinds
    assert old.directory.root() == new.directory.root()
    assert old.directory.root() == target


def test_a_node_that_lists_the_capability_is_answered_by_ranges() -> None:
    _world, (a, b), base, extra = pool()
    first, second = engine(a, [*base, *extra[:5]]), engine(b, [*base, *extra[3:9]])
    assert second.speaks_ranges(a.public.key, NOW)
    exchange = Exchange(first, second)
    exchange.run()
    assert exchange.kinds[1] == "gossip_ranges"
    assert first.directory.root() == second.directory.root()


# --- bounds --------------------------------------------------------------------------


def test_an_answer_never_exceeds_the_bounds_and_ends_with_the_rest() -> None:
    big = RangeIndex((k, v, d) for k, (v, d) in entries(40_000).items())
    # a hostile peer: 255 ranges of wrong fingerprints, each over ~150 entries
    uppers = sorted(big.keys[i] for i in range(150, 40_000, 150))[: MAX_RANGES - 1]
    ranges = [[u, FINGERPRINT, bytes(16)] for u in uppers] + [[END, FINGERPRINT, bytes(16)]]
    answer = big.answer(parse_ranges(ranges))
    assert len(answer.ranges) <= MAX_RANGES
    listed = sum(len(r.payload) // ENTRY.size for r in answer.ranges if r.mode == IDLIST)
    assert listed <= MAX_IDS
    assert answer.ranges[-1].upper == END
    assert answer.ranges[-1].mode == FINGERPRINT
    assert len(answer.ranges) == 1 + BRANCH * ((MAX_RANGES - 1) // BRANCH)


def test_the_exchange_stops_after_max_rounds() -> None:
    _world, (a, b), base, extra = pool()
    node = engine(b, [*base, *extra])
    everything = [[END, IDLIST, b""]]  # "I hold nothing": b would push everything
    last = {"round": MAX_ROUNDS, "ranges": everything, "want": b"", "records": []}
    assert node.receive(a.public.key, "gossip_ranges", last, NOW) == []
    before = {"round": MAX_ROUNDS - 1, "ranges": everything, "want": b"", "records": []}
    assert node.receive(a.public.key, "gossip_ranges", before, NOW) == []
    key = next(iter(node.directory.digest()))
    asked = {**before, "want": key}
    (reply,) = node.receive(a.public.key, "gossip_ranges", asked, NOW)
    assert reply.body["round"] == MAX_ROUNDS
    assert reply.body["ranges"] == []
    assert reply.body["want"] == b""
    assert len(reply.body["records"]) == 1


K1, K2 = b"\x01" * 8, b"\x02" * 8


@pytest.mark.parametrize(
    ("ranges", "match"),
    [
        ([[K1, SKIP, b""]] * (MAX_RANGES + 1), "more than"),
        ([[K2, SKIP, b""], [K1, SKIP, b""]], "strictly increasing"),
        ([[K1, SKIP, b""], [K1, SKIP, b""]], "strictly increasing"),
        ([[b"\x00" * 8, SKIP, b""]], "strictly increasing"),
        ([[b"\x01" * 7, SKIP, b""]], "strictly increasing"),
        ([[END, SKIP, b""], [K1, SKIP, b""]], "only the last"),
        ([[K1, SKIP, b"x"]], "carries nothing"),
        ([[K1, FINGERPRINT, b"x" * 15]], "16 bytes"),
        ([[K1, IDLIST, b"x" * 21]], "whole number"),
        ([[K1, IDLIST, K2 + bytes(12)]], "in their range"),
        ([[END, IDLIST, K2 + bytes(12) + K1 + bytes(12)]], "sorted"),
        ([[END, IDLIST, K1 + bytes(12) + K1 + bytes(12)]], "sorted"),
        ([[K1, SKIP, b""], [K2, IDLIST, b"\x00" * 20]], "in their range"),
        ([[END, IDLIST, bytes(20 * (MAX_IDS + 1))]], "more than"),
    ],
)
def test_malformed_ranges_are_refused(ranges: list[list[Any]], match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        parse_ranges(ranges)


@pytest.mark.parametrize("want", [b"x" * 9, K2 + K1, K1 + K1, K1 * (2048 + 1)])
def test_malformed_want_is_refused(want: bytes) -> None:
    with pytest.raises(MalformedError):
        parse_want(want)


def test_the_engine_refuses_a_malformed_message_before_taking_anything_in() -> None:
    _world, (a, b), base, extra = pool()
    node = engine(b, base)
    before = node.directory.root()
    body = {"round": 1, "ranges": [[K2, SKIP, b""], [K1, SKIP, b""]], "want": b"",
            "records": extra[:3]}  # fmt: skip
    with pytest.raises(MalformedError):
        node.receive(a.public.key, "gossip_ranges", body, NOW)
    assert node.directory.root() == before


def test_a_small_budget_truncates_without_gaps_and_the_next_rounds_go_on() -> None:
    _world, (a, b), base, extra = pool()
    small = GossipConfig(budget=4096)  # about 10 records a message
    first, second = engine(a, [*base, *extra]), engine(b, base)
    first.config = second.config = small
    target = union_root(held(first), held(second))
    for _round in range(12):
        Exchange(first, second).run()
        if second.directory.root() == target:
            break
    assert first.directory.root() == second.directory.root() == target
    assert _round >= 2  # it took several rounds: each one truncated, none left a gap
