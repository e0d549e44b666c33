from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import directory as directory_module
from protocol.codec import pack
from protocol.directory import (
    Directory,
    compute_view,
    countersign,
    decode_digest,
    encode_digest,
    pair_terms,
)
from protocol.errors import MalformedError
from tests.protocol.directory_world import DAY, World
from tests.protocol.helpers import NOW, identity


def loaded(records: list[bytes], world: World, now: int = NOW) -> Directory:
    directory = Directory(world.network)
    directory.add_many(records, now)
    return directory


def test_a_whole_network_is_taken_in_whatever_the_order() -> None:
    world = World()
    records = world.everything()
    in_order = loaded(records, world)
    assert len(in_order) == len(records)
    for seed in range(5):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        assert loaded(shuffled, world).root() == in_order.root()
    view = in_order.view(NOW)
    assert set(view.admitted) == {world.node("erasme").public.key, world.node("cotonou").public.key}
    assert view.role_of(world.reader.public.key) == "reader"
    assert view.nodes[world.node("cotonou").public.key].body["name"] == "CHU Cotonou"
    assert len(view.pairs) == 1


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_merge_is_order_and_duplicate_independent(data: st.DataObject) -> None:
    """Random subsets of records, several versions of the same keys, duplicates, in random
    orders and batches: every directory that got the same set ends in the same state."""
    world = World()
    base = world.everything()
    erasme = world.node("erasme")
    updates = [world.node_record(erasme, f"Erasme v{i}") for i in range(3)]
    updates.append(world.member(world.reader, "reader"))  # a newer attestation
    pool = base + updates
    chosen = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=30))
    states = []
    for _ in range(3):
        order = data.draw(st.permutations(chosen + chosen[: len(chosen) // 2]))
        directory = Directory(world.network)
        cut = data.draw(st.integers(0, len(order)))
        directory.add_many(order[:cut], NOW)
        for raw in order[cut:]:
            directory.add(raw, NOW)
        directory.add_many(order, NOW)  # a later round brings it all again
        states.append((directory.root(), sorted(d.digest for d in directory)))
    assert states[0] == states[1] == states[2]


def test_a_large_batch_computes_the_view_per_pass_not_per_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A node loading its directory, or a gossip batch: each pass of add_many is judged
    against one view, so the work grows with the batch and not with its square (5,000
    nodes took 15.6 s when the view was computed again after every record). The result
    is the same as taking the records in one at a time, a revocation included."""
    world = World()
    erasme = world.node("erasme")
    nodes = [identity(f"node-{i}") for i in range(300)]
    in_order = [*world.everything(), world.revocation(erasme, world.anchor)]
    for i, node in enumerate(nodes):
        in_order += [world.node_cert(node), world.node_record(node, f"Node {i}")]
    one_by_one = Directory(world.network)
    for raw in in_order:
        assert one_by_one.add(raw, NOW) == "added"
    shuffled = [*in_order, world.node_record(erasme, "after its revocation")]
    random.Random(7).shuffle(shuffled)
    computed: list[int] = []
    real = directory_module.compute_view

    def counted(*args: Any) -> Any:
        computed.append(1)
        return real(*args)

    monkeypatch.setattr(directory_module, "compute_view", counted)
    batch = Directory(world.network)
    outcome = batch.add_many(shuffled, NOW)
    assert len(computed) <= 12, f"the view was computed {len(computed)} times"
    # erasme's two node records are judged after its revocation (revocations go first)
    assert outcome == {"added": len(in_order) - 1, "ignored:revoked": 2}
    assert batch.root() == one_by_one.root()
    view = batch.view(NOW)
    assert set(view.admitted) == {n.public.key for n in nodes} | {world.node("cotonou").public.key}
    assert erasme.public.key not in view.nodes


def test_last_writer_wins_by_version() -> None:
    world = World()
    erasme = world.node("erasme")
    old = world.node_record(erasme, "old name")
    new = world.node_record(erasme, "new name")
    for order in ([old, new], [new, old]):
        directory = loaded([world.node_cert(erasme), *order], world)
        assert directory.view(NOW).nodes[erasme.public.key].body["name"] == "new name"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda w: w.node_record(identity("stranger")), "unknown_signer"),
        (
            lambda w: w.sign("node_cert", {"node": b"\x01" * 32}, identity("stranger")),
            "unknown_signer",
        ),
        (
            lambda w: w.sign("node_cert", {"node": b"\x02" * 32}, w.anchor, ttl=1, now=NOW - DAY),
            "expired",
        ),
        (lambda w: w.sign("node_cert", {"node": b"\x03" * 32}, w.anchor, now=NOW + DAY), "future"),
        (
            lambda w: w.sign("node_cert", {"node": b"\x04" * 32}, w.anchor, network="other"),
            "other_network",
        ),
        (lambda w: w.member(w.reader, "reader", signer=w.reader), "not_entitled"),
        (lambda w: w.pair(countersigner=identity("forger")), "bad_countersignature"),
        (
            lambda w: w.sign(
                "group_cert",
                {"group": b"\x05" * 32, "name": "x", "kind": "community", "may_admit": True},
                w.node("erasme"),
            ),
            "not_entitled",
        ),
    ],
)
def test_records_without_standing_are_ignored_and_counted(make, reason: str) -> None:  # type: ignore[no-untyped-def]
    world = World()
    directory = loaded(world.everything(), world)
    before = directory.root()
    assert directory.add(make(world), NOW) == f"ignored:{reason}"
    assert directory.ignored[reason] == 1
    assert directory.root() == before


def test_forged_and_malformed_records_are_counted() -> None:
    world = World()
    directory = loaded(world.everything(), world)
    record = bytearray(world.node_cert(identity("x")))
    record[-3] ^= 1
    assert directory.add(bytes(record), NOW) == "ignored:forged"
    assert directory.add(b"not a record", NOW) == "ignored:malformed"
    assert directory.ignored == {"forged": 1, "malformed": 1}


def test_a_group_without_may_admit_cannot_admit_nodes() -> None:
    world = World()
    directory = loaded([world.group_cert(may_admit=False)], world)
    assert directory.add(world.node_cert(identity("n"), issuer=world.group), NOW) == (
        "ignored:not_entitled"
    )


def test_revocations_win_and_cut_off_everything_signed_by_the_key() -> None:
    world = World()
    erasme = world.node("erasme")
    directory = loaded(world.everything(), world)
    assert directory.view(NOW).is_admitted(erasme.public.key)
    assert directory.add(world.revocation(erasme, world.anchor), NOW) == "added"
    view = directory.view(NOW)
    assert not view.is_admitted(erasme.public.key)
    assert erasme.public.key not in view.nodes
    assert all(d.signer.key != erasme.public.key for d in directory)
    # A newer record by the revoked key changes nothing.
    assert directory.add(world.node_record(erasme, "back again"), NOW) == "ignored:revoked"
    # The same holds if the revocation arrives first.
    fresh = loaded([world.revocation(erasme, world.anchor), *world.everything()], world)
    assert not fresh.view(NOW).is_admitted(erasme.public.key)


def test_a_coordinator_revokes_a_member_of_the_group() -> None:
    world = World()
    directory = loaded(world.everything(), world)
    directory.add(world.revocation(world.reader, world.coordinator), NOW)
    view = directory.view(NOW)
    assert view.role_of(world.reader.public.key) is None
    assert view.pairs == {}  # the pair needs both parties


def pair_status(directory: Directory) -> str:
    (record,) = directory.view(NOW).pairs.values()
    return str(pair_terms(record)["status"])


def test_either_party_alone_suspends_or_ends_a_pair_and_ended_stays_ended() -> None:
    world = World()
    directory = loaded(world.everything(), world)
    assert pair_status(directory) == "active"
    # Agreeing needs both: one party's own countersignature does not make a pair.
    alone = world.pair(countersigner=world.reader, signer=world.reader)
    assert directory.add(alone, NOW) == "ignored:bad_countersignature"
    # Suspending needs one: the sender suspends alone.
    suspend = world.pair(status="suspended", signer=world.sender, countersigner=world.sender)
    assert directory.add(suspend, NOW) == "added"
    assert pair_status(directory) == "suspended"
    # Both agree again, then the reader ends it alone.
    assert directory.add(world.pair(), NOW) == "added"
    assert pair_status(directory) == "active"
    end = world.pair(status="ended", countersigner=world.reader)
    assert directory.add(end, NOW) == "added"
    assert pair_status(directory) == "ended"
    # The old agreement signed again with a newer version does not bring it back.
    assert directory.add(world.pair(), NOW) == "stale"
    assert pair_status(directory) == "ended"
    # Nor does the order of arrival matter.
    shuffled = loaded([end, *world.everything(), world.pair()], world)
    assert pair_status(shuffled) == "ended"


def test_a_group_revokes_a_node_it_admitted_but_not_others() -> None:
    world = World()
    cotonou, erasme = world.node("cotonou"), world.node("erasme")
    directory = loaded(world.everything(), world)
    directory.add(world.revocation(cotonou, world.group), NOW)
    directory.add(world.revocation(erasme, world.group), NOW)  # admitted by the anchor
    view = directory.view(NOW)
    assert not view.is_admitted(cotonou.public.key)
    assert view.is_admitted(erasme.public.key)


def test_revoking_a_group_removes_its_admissions_and_members() -> None:
    world = World()
    directory = loaded(world.everything(), world)
    directory.add(world.revocation(world.group, world.anchor), NOW)
    view = directory.view(NOW)
    assert not view.is_admitted(world.node("cotonou").public.key)
    assert view.members == {}


def test_expired_records_leave_the_view_and_are_pruned() -> None:
    world = World()
    directory = loaded(world.everything(), world)
    later = NOW + 31 * DAY
    assert compute_view(directory, world.network, later).admitted == {}
    assert directory.prune(later) == len(world.everything())


def test_missing_for_sends_what_wins_certificates_first_within_budget() -> None:
    world = World()
    erasme = world.node("erasme")
    records = [world.node_cert(erasme)] + [world.node_record(erasme, f"v{i}") for i in range(3)]
    full = loaded(records, world)
    empty = Directory(world.network)
    wanted = full.missing_for(empty.digest(), budget=10_000)
    assert wanted == [records[0], records[-1]]  # the certificate, then the latest record
    tiny = full.missing_for(empty.digest(), budget=10)  # at least one record
    assert tiny == [records[0]]
    assert full.missing_for(full.digest(), budget=10_000) == []
    older = loaded(records[:2], world)
    assert full.missing_for(older.digest(), budget=10_000) == [records[-1]]


def test_records_of_one_signer_arriving_out_of_order_still_reconcile() -> None:
    """Certificates handed out by hand reach nodes in any order: a node holding the
    anchor's latest certificate still gets the earlier ones it lacks."""
    world = World()
    nodes = [world.node(f"n{i}") for i in range(3)]
    certs = [world.node_cert(n) for n in nodes]
    a = loaded([certs[0], certs[1]], world)
    b = loaded([certs[2]], world)
    b.add_many(a.missing_for(b.digest(), budget=10_000), NOW)
    a.add_many(b.missing_for(a.digest(), budget=10_000), NOW)
    assert a.root() == b.root()
    assert len(a) == 3


def test_digest_encoding_round_trips_and_is_strict() -> None:
    world = World()
    directory = loaded(world.everything(), world)
    assert decode_digest(encode_digest(directory.digest())) == directory.digest()
    with pytest.raises(MalformedError):
        decode_digest(b"\x00" * 39)
    entry = encode_digest({b"\x01" * 8: (5, b"abcd")})
    with pytest.raises(MalformedError):
        decode_digest(entry + entry)


def teaching_fields(teaching_id: bytes) -> dict[str, object]:
    return {
        "teaching_id": teaching_id,
        "title": "Pneumopathie lobaire de l'enfant",
        "modality": "CR",
        "body_part": "CHEST",
        "age_years": 4,
        "sex": "F",
        "findings": "Condensation lobaire inférieure droite.",
        "impression": "Pneumopathie.",
        "recommendations": "",
        "report": bytes(32),
        "consent": bytes(32),
        "node": bytes(32),
        "files": 2,
    }


def test_a_reader_publishes_a_teaching_case_and_a_sender_cannot() -> None:
    world = World()
    directory = loaded(world.everything(), world)
    by_reader = world.sign("teaching_case", teaching_fields(b"t" * 16), world.reader)
    assert directory.add(by_reader, NOW) == "added"
    assert directory.view(NOW).teaching[b"t" * 16].signer == world.reader.public
    by_sender = world.sign("teaching_case", teaching_fields(b"u" * 16), world.sender)
    assert directory.add(by_sender, NOW) == "ignored:not_entitled"
    assert set(directory.view(NOW).teaching) == {b"t" * 16}


def test_copies_share_their_state_until_they_differ_and_never_see_each_others_changes() -> None:
    world = World()
    base = loaded(world.everything(), world)
    copies = [base.copy() for _ in range(3)]
    erasme = world.node("erasme")
    update = world.node_record(erasme, "Erasme v2")
    assert copies[0].add(update, NOW) == "added"
    assert copies[1].add(update, NOW) == "added"
    # the first two took in the same record: the same records, and the same state object
    assert copies[0].root() == copies[1].root() != copies[2].root() == base.root()
    assert copies[0]._s is copies[1]._s  # one state for both (the point: memory)
    assert copies[2].view(NOW).nodes[erasme.public.key].body["name"] != "Erasme v2"
    assert copies[0].view(NOW).nodes[erasme.public.key].body["name"] == "Erasme v2"
    # a change made by one alone (a revocation, a prune) is its own
    copies[1].add(world.revocation(world.group, world.anchor), NOW)
    assert copies[1].view(NOW).members == {}
    assert copies[0].view(NOW).members != {}
    assert copies[1].prune(NOW + 31 * DAY) > 0
    assert len(copies[0]) == len(world.everything())
    assert len(base) == len(world.everything())
    assert copies[2].prune(NOW) == 0
    # a directory nobody copied changes in place, as a node's does
    alone = loaded(world.everything(), world)
    state = alone._s
    alone.add(update, NOW)
    assert alone._s is state


# --- issue 21, vulnerability 3: only a pair's members (and the reader's coordinator) -----


def other_group(world: World) -> list[bytes]:
    """A second certified group, unrelated to the world's pair: its coordinator attests a
    reader (the intruder) and a sender of its own."""
    group, coordinator = identity("group-msk"), identity("coordinator-msk")
    fields = {"group": group.public.key, "name": "MSK", "kind": "subspeciality"}
    return [
        world.sign("group_cert", {**fields, "may_admit": False}, world.anchor),
        world.sign(
            "group",
            {
                "name": "MSK",
                "kind": "subspeciality",
                "routing": "assign",
                "coordinators": [coordinator.public.key],
                "members": [],
                "subspecialities": ["msk"],
            },
            group,
        ),
        world.member(coordinator, "coordinator", signer=coordinator, group=group),
        world.member(identity("intruder"), "reader", signer=coordinator, group=group),
        world.member(identity("accomplice"), "sender", signer=coordinator, group=group),
    ]


def test_an_unrelated_attested_reader_cannot_end_someone_elses_pair() -> None:
    """The attack of issue 21: a reader of another group signs an `ended` record under the
    id of a pair of two other people. Before ids were derived and the key held the members,
    naming himself as the reader and the victim's id made his record replace theirs."""
    world = World()
    records = world.everything() + other_group(world)
    directory = loaded(records, world)
    (victim,) = directory.view(NOW).pairs
    intruder, accomplice = identity("intruder"), identity("accomplice")
    assert directory.view(NOW).role_of(intruder.public.key) == "reader"
    ended: dict[str, Any] = {"status": "ended", "signer": intruder, "pair_id": victim}
    attacks = {
        # His own name as the reader, the victim's sender, the victim's id.
        world.pair(reader=intruder, countersigner=intruder, **ended): "bad_pair_id",
        # The same with an accomplice as the sender, countersigning as a party would.
        world.pair(reader=intruder, sender=accomplice, countersigner=accomplice, **ended): (
            "bad_pair_id"
        ),
        # The victim's very terms, ended, signed by someone who is not a party.
        world.pair(status="ended", signer=intruder, countersigner=intruder): "not_entitled",
        # Nor may the coordinator of another group end it.
        world.pair(
            status="ended",
            signer=identity("coordinator-msk"),
            countersigner=identity("coordinator-msk"),
        ): "not_entitled",
    }
    for record, reason in attacks.items():
        assert directory.add(record, NOW) == f"ignored:{reason}"
    assert directory.ignored == {"bad_pair_id": 2, "not_entitled": 2}
    assert pair_status(directory) == "active"
    assert list(directory.view(NOW).pairs) == [victim]
    # Whatever the order of arrival.
    assert pair_status(loaded([*attacks, *records], world)) == "active"


def test_a_chosen_pair_id_is_refused() -> None:
    world = World()
    directory = loaded(world.everything(), world)
    (held,) = directory.view(NOW).pairs
    # Both parties sign, but the id is not the derivation of reader, sender and nonce.
    chosen = world.pair(pair_id=bytes(range(16)))
    assert directory.add(chosen, NOW) == "ignored:bad_pair_id"
    assert directory.ignored["bad_pair_id"] == 1
    assert list(directory.view(NOW).pairs) == [held]
    # A record of the older format (a chosen id, no nonce) is refused, even signed by both.
    terms = {k: v for k, v in pair_terms(directory.view(NOW).pairs[held]).items() if k != "nonce"}
    terms["status"] = "ended"
    terms_bytes = pack(terms)
    legacy = world.sign(
        "pair",
        {"terms": terms_bytes, "countersignature": countersign(terms_bytes, world.sender)},
        world.reader,
    )
    assert directory.add(legacy, NOW) == "ignored:malformed"
    assert pair_status(directory) == "active"


def test_the_coordinator_of_the_readers_group_may_suspend_or_end_a_pair() -> None:
    world = World()
    directory = loaded(world.everything(), world)
    coordinator = world.coordinator
    # A coordinator may not agree for the parties.
    agree = world.pair(signer=coordinator, countersigner=world.sender)
    assert directory.add(agree, NOW) == "ignored:not_entitled"
    suspend = world.pair(status="suspended", signer=coordinator, countersigner=coordinator)
    assert directory.add(suspend, NOW) == "added"
    assert pair_status(directory) == "suspended"
    # Its own signature is the countersignature: someone else's is refused.
    forged = world.pair(status="ended", signer=coordinator, countersigner=identity("forger"))
    assert directory.add(forged, NOW) == "ignored:bad_countersignature"
    end = world.pair(status="ended", signer=coordinator, countersigner=coordinator)
    assert directory.add(end, NOW) == "added"
    assert pair_status(directory) == "ended"
    assert directory.add(world.pair(), NOW) == "stale"
    assert pair_status(loaded([end, world.pair(), *world.everything()], world)) == "ended"
