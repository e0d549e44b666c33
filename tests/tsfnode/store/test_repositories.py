"""The cases' repositories (store/cases.py, pairs.py, audit.py) over a real node
database: what goes in comes out as the same frozen dataclass, each query selects what
its name says, column names come only from the allow-list, and a decision's writes are
seen by another connection all at once, at its commit, or not at all."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol.audit import chain_next, verify_chain
from protocol.bundle import Manifest
from protocol.cases import Case, Routing, State
from protocol.documents import decode_document, encode_document
from protocol.identity import Identity
from protocol.transfer import PRIORITY_DOCUMENT
from tsfnode.store import Store
from tsfnode.store.audit import AuditStore
from tsfnode.store.blobs import BlobStore
from tsfnode.store.cases import CaseRow, CaseStore
from tsfnode.store.pairs import PairProposal, PairStore
from tsfnode.store.transfers import TransferStore
from tsfnode.transfers.sealing import seal_documents

NOW = 1_767_348_000_000
HOUR = 3_600_000
SENDER = Identity.generate(os.urandom)
READER = Identity.generate(os.urandom)
NODE = Identity.generate(os.urandom)
OTHER_NODE = Identity.generate(os.urandom)
GROUP = os.urandom(32)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "node.db", create=True)
    yield opened
    await opened.close()


async def _count(path: Path, table: str) -> int:
    """Rows of ``table`` as another connection (a CLI command) sees them."""
    other = await Store.open(path, readonly=True)
    try:
        return (await other.table_counts())[table]
    finally:
        await other.close()


def _row(
    *,
    state: State = State.DELIVERED,
    role: str = "sender",
    routing: Routing = Routing.PAIR,
    target: bytes = READER.public.key,
    pair_id: bytes | None = b"p" * 16,
    submitted_ms: int | None = NOW,
    due_ms: int | None = NOW + 48 * HOUR,
    closed_ms: int | None = None,
    updated_ms: int = NOW,
    sender: bytes = SENDER.public.key,
) -> CaseRow:
    return CaseRow(
        case=Case(
            case_id=os.urandom(16),
            sender=sender,
            routing=routing,
            target=target,
            delay_ms=48 * HOUR,
            state=state,
            reader=READER.public.key if state is State.ASSIGNED else None,
            submitted_ms=submitted_ms,
            delivered_ms=None if submitted_ms is None else submitted_ms + HOUR,
            due_ms=due_ms,
            closed_ms=closed_ms,
            escalations=1,
            needs_acceptance=True,
            passed_over=frozenset({os.urandom(32), os.urandom(32)}),
            decisions=3,
        ),
        role=role,
        pair_id=pair_id if routing is Routing.PAIR else None,
        sender_node=NODE.public.key,
        urgent=True,
        study_uid="2.25.1234",
        recipients=(OTHER_NODE.public.key, os.urandom(32)),
        form_json='{"modality": "CR", "body_part": "CHEST", "note": "toux, fièvre"}',
        evaluated_ms=None, purged_ms=None, claim_sent_by=None,
        image_quality="adequate", useful=True, updated_ms=updated_ms,
    )  # fmt: skip


def _manifest(blobs: BlobStore, *, sender: Identity = NODE) -> Manifest:
    return seal_documents(
        blobs=blobs,
        sender=sender,
        recipients=[OTHER_NODE.public],
        documents=b"",
        case={"type": "documents", "case_id": "00" * 16},
        now=NOW,
        priority=PRIORITY_DOCUMENT,
    )


async def test_a_case_comes_back_as_it_was_kept(store: Store) -> None:
    rows = CaseStore(store.db)
    row = _row()
    await rows.insert(row)
    await rows.commit()
    found = await rows.case(row.case_id)
    assert found == row
    assert found.form["note"] == "toux, fièvre"
    assert await rows.case(os.urandom(16)) is None


async def test_only_the_listed_columns_change(store: Store) -> None:
    rows = CaseStore(store.db)
    row = _row()
    await rows.insert(row)
    for bad in ({"role": "copy"}, {"state = 'closed', role": "copy"}, {}):
        with pytest.raises(ValueError, match="cannot change"):
            await rows.update(row.case_id, NOW + 1, **bad)
    assert await rows.case(row.case_id) == row
    more = (*row.recipients, os.urandom(32))
    await rows.update(row.case_id, NOW + 5, recipients=more, useful=False, claim_sent_by=None)
    changed = await rows.case(row.case_id)
    assert changed is not None
    assert (changed.recipients, changed.useful, changed.updated_ms) == (more, False, NOW + 5)
    assert changed.case == row.case


async def test_a_decision_is_seen_by_other_connections_only_at_its_commit(
    store: Store, tmp_path: Path
) -> None:
    rows, pairs, audit = CaseStore(store.db), PairStore(store.db), AuditStore(store.db)
    row = _row()
    message = encode_document(
        "case_message",
        {
            "case_id": row.case_id,
            "message_id": os.urandom(16),
            "created": NOW,
            "text": "please send a lateral view",
            "in_reply_to": None,
            "extra": None,
        },
        SENDER,
    )
    manifest = await _sealed(tmp_path)
    await rows.insert(row)
    await rows.keep_document(decode_document(message), row.case_id, NOW)
    await rows.add_bundle(manifest.bundle_id, row.case_id, "message")
    await TransferStore(store.db).insert_sealed(
        manifest, sender=NODE.public.key, study_uid="", now=NOW, commit=False
    )
    await rows.notify(READER.public.key, row.case_id, "message", NOW)
    await pairs.keep(PairProposal(b"q" * 16, b"terms", b"sig", SENDER.public.key, NOW))
    await audit.append(
        chain_next(None, at_ms=NOW, actor=SENDER.public.key, case_id=row.case_id,
                   action="message", detail="")
    )  # fmt: skip
    tables = ("cases", "case_documents", "case_bundles", "bundles", "deliveries",
              "notifications", "pair_proposals", "audit_log")  # fmt: skip
    database = tmp_path / "node.db"
    assert [await _count(database, t) for t in tables] == [0] * len(tables)
    await rows.commit()
    assert [await _count(database, t) for t in tables] == [1] * len(tables)
    assert await AuditStore(store.db).head() is not None


async def _sealed(tmp_path: Path, sender: Identity = NODE) -> Manifest:
    return _manifest(BlobStore(tmp_path / "blobs"), sender=sender)


async def test_each_case_query_selects_what_it_names(store: Store) -> None:
    rows = CaseStore(store.db)
    pair = _row(submitted_ms=NOW - 2 * HOUR, due_ms=NOW + 5 * HOUR)
    late = _row(state=State.ASSIGNED, routing=Routing.GROUP, target=GROUP, due_ms=NOW + HOUR,
                updated_ms=NOW - 1)  # fmt: skip
    copy = _row(role="copy", routing=Routing.GROUP, target=GROUP, submitted_ms=None,
                due_ms=NOW + 9 * HOUR, updated_ms=NOW - 3 * HOUR)  # fmt: skip
    closed = _row(state=State.CLOSED, closed_ms=NOW - 10 * HOUR, updated_ms=NOW + HOUR)
    cancelled = _row(state=State.CANCELLED, closed_ms=None, updated_ms=NOW - 20 * HOUR)
    other = _row(sender=READER.public.key, submitted_ms=NOW - 30 * 24 * HOUR, updated_ms=NOW - 2)
    for row in (pair, late, copy, closed, cancelled, other):
        await rows.insert(row)
    await rows.commit()

    ids = lambda found: [r.case_id for r in found]  # noqa: E731
    assert ids(await rows.every_case()) == ids([closed, pair, late, other, copy, cancelled])
    assert set(ids(await rows.open_decided())) == set(ids([pair, late, other]))
    since = await rows.pair_cases_since(b"p" * 16, NOW - 2 * HOUR)  # after, not at
    assert set(ids(since)) == set(ids([closed, cancelled]))
    assert set(ids(await rows.submitted_between(NOW - 3 * HOUR, NOW))) == set(ids([pair, copy]))
    assert set(ids(await rows.submitted_between(NOW, None))) == set(ids([late, closed, cancelled]))
    assert ids(await rows.waiting_in_groups([GROUP, os.urandom(32)])) == ids([late, copy])
    assert await rows.waiting_in_groups([]) == []
    assert set(await rows.closed_before(NOW - 10 * HOUR)) == set(ids([closed, cancelled]))
    assert await rows.closed_before(NOW - 11 * HOUR) == [cancelled.case_id]
    assert await rows.sent_by_sender_since(NOW - 24 * HOUR) == {SENDER.public.key: 4}


async def test_what_each_bundle_carried_for_a_case(store: Store, tmp_path: Path) -> None:
    rows, transfers = CaseStore(store.db), TransferStore(store.db)
    row = _row()
    await rows.insert(row)
    images = await _sealed(tmp_path)
    await transfers.insert_sealed(images, sender=NODE.public.key, study_uid="2.25.1", now=NOW)
    await rows.add_bundle(images.bundle_id, row.case_id, "images")
    more = os.urandom(16)
    await rows.mark(more, row.case_id, "images part 1")
    await rows.mark(os.urandom(16), row.case_id, "documents in")
    await rows.commit()

    found = await rows.bundle(images.bundle_id)
    assert found is not None
    assert (found.case_id, found.purpose) == (row.case_id, "images")
    assert set(await rows.bundles(row.case_id, "images")) == {images.bundle_id, more}
    assert await rows.first_images(row.case_id) == images.bundle_id
    assert await rows.first_images(os.urandom(16)) is None
    (held,) = await rows.images_held(row.case_id)  # part 1 is not in the transfer tables
    assert (held.bundle_id, held.manifest, held.study_uid) == (
        images.bundle_id,
        images.raw,
        "2.25.1",
    )

    (recipient,) = images.recipients
    await transfers.update_delivery(images.bundle_id, recipient.key, bytes_done=1000, rate=250.0)
    progress = await rows.images_progress(row.case_id)
    assert progress is not None
    assert (progress.bytes_done, progress.size, progress.rate) == (
        1000,
        images.ciphertext_size,
        250.0,
    )
    await transfers.forget(images.bundle_id)
    await rows.commit()
    assert await rows.images_held(row.case_id) == []
    assert await rows.images_progress(row.case_id) is None


async def test_a_bundle_opened_here_waits_until_a_case_takes_it_in(
    store: Store, tmp_path: Path
) -> None:
    rows, transfers = CaseStore(store.db), TransferStore(store.db)
    received = await _sealed(tmp_path, sender=OTHER_NODE)
    await transfers.insert_received(received, "inbox", NOW, sources=[])
    assert await rows.received_not_taken() == []  # not opened yet
    await transfers.update_bundle(received.bundle_id, state="complete", completed_ms=NOW)
    (waiting,) = await rows.received_not_taken()
    assert (waiting.bundle_id, waiting.manifest) == (received.bundle_id, received.raw)
    await rows.mark(received.bundle_id, b"", "not a case")
    await rows.commit()
    assert await rows.received_not_taken() == []


async def test_notifications_reach_a_person_their_groups_and_everyone(store: Store) -> None:
    rows = CaseStore(store.db)
    me, someone = READER.public.key, SENDER.public.key
    cases = [os.urandom(16) for _ in range(4)]
    await rows.notify(me, cases[0], "assigned", NOW)
    await rows.notify(someone, cases[1], "message", NOW + 1)
    await rows.notify(GROUP, cases[2], "offer_to_members", NOW + 2)
    await rows.notify(None, cases[3], "escalated", NOW + 3)
    await rows.commit()
    found = await rows.notifications([me, GROUP])
    assert [(n.case_id, n.kind, n.at_ms, n.person) for n in found] == [
        (cases[3], "escalated", NOW + 3, None),
        (cases[2], "offer_to_members", NOW + 2, GROUP),
        (cases[0], "assigned", NOW, me),
    ]
    assert [n.case_id for n in await rows.notifications([me], limit=1)] == [cases[3]]
    assert [n.case_id for n in await rows.notifications([])] == [cases[3]]


async def test_a_pair_proposal_waits_until_answered(store: Store) -> None:
    pairs = PairStore(store.db)
    first = PairProposal(b"a" * 16, b"terms 1", b"sig 1", SENDER.public.key, NOW)
    again = PairProposal(b"a" * 16, b"terms 2", b"sig 2", SENDER.public.key, NOW + 2)
    other = PairProposal(b"b" * 16, b"terms", b"sig", READER.public.key, NOW + 1)
    for proposal in (first, other, again):
        await pairs.keep(proposal)
    await pairs.commit()
    assert await pairs.proposal(b"a" * 16) == again  # the newer terms replace the older
    assert await pairs.proposals() == [other, again]
    await pairs.forget(b"a" * 16)
    await pairs.commit()
    assert await pairs.proposal(b"a" * 16) is None
    assert await pairs.proposals() == [other]


async def test_the_audit_entries_and_their_head_make_a_chain(store: Store) -> None:
    audit = AuditStore(store.db)
    assert await audit.last() is None
    assert await audit.head() is None
    entry = None
    for i, action in enumerate(("submit", "view", "claim")):
        entry = chain_next(
            entry, at_ms=NOW + i, actor=SENDER.public.key, case_id=b"c" * 16, action=action,
            detail="",
        )  # fmt: skip
        await audit.append(entry)
    await audit.commit()
    entries = await audit.entries()
    assert [e.action for e in entries] == ["submit", "view", "claim"]
    assert await audit.last() == entries[-1] == entry
    assert verify_chain(entries, await audit.head()) == 3


async def test_a_pairs_week_holds_the_cases_received_as_well_as_those_sent(store: Store) -> None:
    """The reader's node counts the pair's cases it received (issue 22, item 7): the same
    week, by the sender's submission time, on both sides."""
    rows = CaseStore(store.db)
    received = _row(role="copy", submitted_ms=NOW - HOUR)
    older = _row(role="copy", submitted_ms=NOW - 9 * 24 * HOUR)
    for row in (received, older):
        await rows.insert(row)
    await rows.commit()
    since = await rows.pair_cases_since(b"p" * 16, NOW - 7 * 24 * HOUR)
    assert [r.case_id for r in since] == [received.case_id]
