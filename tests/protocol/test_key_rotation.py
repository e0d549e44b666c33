"""Key rotation and lost keys in the directory (SPEC.md §8.5), sans IO."""

from __future__ import annotations

import pytest

from protocol.directory import ROTATION_GRACE_MS, Directory, pair_terms, sign_rotation
from protocol.errors import LocalProtocolError
from protocol.identity import Identity
from tests.protocol.directory_world import DAY, NET, World
from tests.protocol.helpers import NOW, identity

HOUR = 3_600_000


def world_directory() -> tuple[World, Directory]:
    world = World()
    directory = Directory(world.network)
    outcome = directory.add_many(world.everything(), NOW)
    assert outcome == {"added": 10}
    return world, directory


def the_pair(directory: Directory, now: int = NOW) -> dict[str, bytes]:
    (record,) = directory.view(now).pairs.values()
    return pair_terms(record)


def test_a_node_rotation_hands_admission_record_and_home_to_the_new_key() -> None:
    world, directory = world_directory()
    erasme, new = world.node("erasme"), identity("node-erasme-2")

    assert directory.add(world.rotation(erasme, new), NOW) == "added"

    view = directory.view(NOW)
    assert view.current(erasme.public.key) == new.public.key
    assert new.public.key in view.admitted
    assert erasme.public.key not in view.admitted
    # Until the new key publishes its own, the old key's node record gives its addresses.
    assert view.nodes[new.public.key].signer == erasme.public
    # Every member whose home was the old id now lives at the new one.
    assert {m.body["home_node"] for m in view.members.values()} == {new.public.key}
    # The new key signs node records of its own, which win over the old one.
    assert directory.add(world.node_record(new, "Hôpital Erasme"), NOW) == "added"
    assert directory.view(NOW).nodes[new.public.key].signer == new.public


def test_the_old_key_retires_after_the_grace_its_earlier_records_stay_valid() -> None:
    world, directory = world_directory()
    erasme, new = world.node("erasme"), identity("node-erasme-2")
    directory.add(world.rotation(erasme, new), NOW)
    later = NOW + ROTATION_GRACE_MS + 1

    late = world.sign("node", {**_node_fields(), "name": "stolen"}, erasme, now=later)
    assert directory.add(late, later) == "ignored:retired"
    early = world.sign("node", {**_node_fields(), "name": "before"}, erasme, now=NOW + HOUR)
    assert directory.add(early, later) == "added"
    view = directory.view(later)
    assert view.acting(erasme.public.key, NOW) == new.public.key
    assert view.acting(erasme.public.key, later) is None


def test_a_rotation_needs_the_new_keys_countersignature() -> None:
    world, directory = world_directory()
    erasme, new = world.node("erasme"), identity("node-erasme-2")
    forged = world.rotation(erasme, new, countersigner=identity("someone-else"))

    assert directory.add(forged, NOW) == "ignored:bad_countersignature"
    assert directory.view(NOW).current(erasme.public.key) == erasme.public.key
    with pytest.raises(LocalProtocolError):
        sign_rotation(erasme, erasme, not_before=NOW, network=NET, version=1, now=NOW, ttl=DAY)


def test_a_rotation_by_a_key_without_standing_or_to_a_key_with_standing_is_refused() -> None:
    world, directory = world_directory()
    stranger, new = identity("stranger"), identity("node-erasme-2")
    assert directory.add(world.rotation(stranger, new), NOW) == "ignored:unknown_signer"
    cotonou = world.node("cotonou")
    merge = world.rotation(world.node("erasme"), cotonou)
    assert directory.add(merge, NOW) == "ignored:not_entitled"


def test_a_rotation_of_a_revoked_key_gives_nothing() -> None:
    world, directory = world_directory()
    erasme, new = world.node("erasme"), identity("node-erasme-2")
    rotation = world.rotation(erasme, new)
    directory.add(world.revocation(erasme, world.anchor), NOW)

    assert directory.add(rotation, NOW) == "ignored:revoked"
    # Nor does it when the revocation comes after the rotation was taken in.
    world2, other = world_directory()
    other.add(world2.rotation(erasme, new), NOW)
    other.add(world2.revocation(erasme, world2.anchor), NOW)
    view = other.view(NOW)
    assert new.public.key not in view.admitted
    assert view.current(erasme.public.key) == erasme.public.key


def test_two_rotations_of_one_key_are_a_fork_refused_until_an_anchor_settles_it() -> None:
    world, directory = world_directory()
    erasme = world.node("erasme")
    owner, thief = identity("node-erasme-owner"), identity("node-erasme-thief")
    assert directory.add(world.rotation(erasme, owner), NOW) == "added"
    assert directory.add(world.rotation(erasme, thief), NOW) == "added"

    view = directory.view(NOW)
    assert view.forked == {erasme.public.key}
    assert view.current(erasme.public.key) == erasme.public.key
    assert owner.public.key not in view.admitted
    assert thief.public.key not in view.admitted

    # The anchor revokes the stolen key and admits the owner's new key in its place.
    directory.add_many(
        [world.revocation(erasme, world.anchor), world.node_cert(owner, replaces=erasme)], NOW
    )
    view = directory.view(NOW)
    assert view.forked == set()
    assert view.current(erasme.public.key) == owner.public.key
    assert thief.public.key not in view.admitted
    assert {m.body["home_node"] for m in view.members.values()} == {owner.public.key}


def test_chains_of_rotations_resolve_transitively_and_pairs_follow() -> None:
    world, directory = world_directory()
    reader, second, third = world.reader, identity("reader-2"), identity("reader-3")
    batch = [
        world.rotation(second, third, not_before=NOW + HOUR, now=NOW + HOUR),
        world.rotation(reader, second, now=NOW),
    ]
    outcome = directory.add_many(batch, NOW + HOUR)
    assert outcome == {"added": 2}

    view = directory.view(NOW + HOUR)
    assert view.current(reader.public.key) == third.public.key
    assert view.role_of(third.public.key) == "reader"
    assert reader.public.key not in view.members
    assert second.public.key not in view.members
    terms = the_pair(directory, NOW + HOUR)
    assert (terms["reader"], terms["sender"]) == (third.public.key, world.sender.public.key)


def test_a_rotation_comes_in_force_at_not_before_even_with_a_cached_view() -> None:
    world, directory = world_directory()
    new = identity("reader-2")
    directory.add(world.rotation(world.reader, new, not_before=NOW + HOUR), NOW)

    assert directory.view(NOW).current(world.reader.public.key) == world.reader.public.key
    assert directory.view(NOW + HOUR).current(world.reader.public.key) == new.public.key


def test_a_person_rotates_and_what_they_signed_before_stays_theirs() -> None:
    world, directory = world_directory()
    old, new = world.reader, identity("reader-2")
    directory.add(world.rotation(old, new), NOW)
    view = directory.view(NOW)

    assert view.role_of(new.public.key) == "reader"
    assert view.members[new.public.key].body["member"] == new.public.key
    assert the_pair(directory)["reader"] == new.public.key
    # A report signed by the old key before it retired is the new key's reader's report.
    assert view.acting(old.public.key, NOW - DAY) == new.public.key
    assert view.acting(old.public.key, NOW + ROTATION_GRACE_MS + 1) is None
    # The new key signs a teaching case, as the reader it now is.
    assert directory.add(_teaching(world, new), NOW) == "added"


def test_a_coordinator_replaces_a_lost_person_key_and_the_old_key_retires_at_once() -> None:
    world, directory = world_directory()
    old, new = world.reader, identity("reader-2")
    readmit = world.member(new, "reader", replaces=old, now=NOW + HOUR)
    assert directory.add(readmit, NOW + HOUR) == "added"

    view = directory.view(NOW + HOUR)
    assert view.current(old.public.key) == new.public.key
    assert the_pair(directory, NOW + HOUR)["reader"] == new.public.key
    assert view.acting(old.public.key, NOW + 2 * HOUR) is None
    # A coordinator cannot take over a key attested by another group.
    other_group = identity("group-other")
    stranger = identity("stranger")
    hijack = world.member(stranger, "reader", replaces=world.sender, group=other_group)
    directory.add(hijack, NOW + HOUR)
    assert directory.view(NOW + HOUR).current(world.sender.public.key) == world.sender.public.key


def test_a_stolen_person_key_revoked_and_replaced_loses_its_pairs() -> None:
    world, directory = world_directory()
    old, new = world.reader, identity("reader-2")
    directory.add_many(
        [world.revocation(old, world.coordinator), world.member(new, "reader", replaces=old)],
        NOW,
    )
    view = directory.view(NOW)
    assert view.role_of(new.public.key) == "reader"
    assert view.pairs == {}  # signed by a stolen key: agreed again with the new key


def test_a_group_readmits_only_a_node_it_admitted() -> None:
    world, directory = world_directory()
    erasme, cotonou = world.node("erasme"), world.node("cotonou")  # by anchor, by group
    new_erasme, new_cotonou = identity("node-erasme-2"), identity("node-cotonou-2")
    directory.add_many(
        [
            world.node_cert(new_erasme, issuer=world.group, replaces=erasme),
            world.node_cert(new_cotonou, issuer=world.group, replaces=cotonou),
        ],
        NOW,
    )
    view = directory.view(NOW)
    assert view.current(erasme.public.key) == erasme.public.key
    assert view.current(cotonou.public.key) == new_cotonou.public.key


def _node_fields() -> dict[str, object]:
    return {
        "name": "Node",
        "institution": "",
        "country": "BE",
        "addresses": ["http://127.0.0.1:1"],
        "relays": [],
        "capabilities": [],
        "capacity": 0,
    }


def _teaching(world: World, reader: Identity) -> bytes:
    fields = {
        "teaching_id": bytes(16),
        "title": "Pneumonie",
        "modality": "CR",
        "body_part": "CHEST",
        "age_years": 4,
        "sex": "F",
        "findings": "",
        "impression": "",
        "recommendations": "",
        "report": bytes(32),
        "consent": bytes(32),
        "node": world.node("erasme").public.key,
        "files": 1,
    }
    return world.sign("teaching_case", fields, reader)
