"""Pairs (binômes): a reader and a sender agree on a weekly number of studies and a
reading delay. The agreement is in force only when both have signed it (a ``pair``
directory record signed by one party, countersigned by the other); either party alone, or
a coordinator of the reader's group, may suspend or end it (protocol/directory.py). A pair's
id is derived from its reader, its sender and a random nonce (``derive_pair_id``): nobody
chooses it.

One party proposes: its node signs the terms (the countersignature) and sends them,
sealed, to the other party's node, where they wait in ``pair_proposals``; when the other
party accepts, its node signs the record and puts it in the directory, which gossip
carries to every node.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from protocol.codec import pack
from protocol.directory import (
    PAIR_TERMS_TAG,
    countersign,
    derive_pair_id,
    new_pair_terms,
    pair_terms,
    reader_coordinators,
    sign_pair,
)
from protocol.documents import PAIR_TERMS
from protocol.errors import MalformedError, ProtocolError
from protocol.identity import Identity, PublicIdentity
from tsfnode.errors import CaseError
from tsfnode.i18n import N_
from tsfnode.logs import log
from tsfnode.store.pairs import PairProposal, PairStore

if TYPE_CHECKING:
    from tsfnode.cases.service import CaseService

PAIR_TTL_MS = 365 * 86_400_000


def _held_version(service: CaseService, pair_id: bytes) -> int:
    return max(
        (
            int(d.body["version"])
            for d in service.directory.directory
            if d.kind == "pair" and pair_terms(d)["pair_id"] == pair_id
        ),
        default=0,
    )


async def _publish(
    service: CaseService,
    terms: dict[str, Any],
    terms_bytes: bytes,
    signer: Identity,
    countersignature: bytes,
    now: int,
) -> None:
    record = sign_pair(
        terms,
        signer=signer,
        countersignature=countersignature,
        terms_bytes=terms_bytes,
        network=service.directory.network.name,
        version=max(now, _held_version(service, terms["pair_id"]) + 1),
        now=now,
        ttl=PAIR_TTL_MS,
    )
    outcome = await service.directory.add([record], now)
    if not outcome["added"]:
        reasons = ", ".join(k for k in outcome if k != "added")
        raise CaseError(
            409,
            f"the directory did not take the pair record ({reasons})",
            key=N_("refused_directory"),
            values={"detail": reasons},
        )


async def propose(
    service: CaseService,
    person: Identity,
    *,
    other: str,
    weekly_quota: int,
    reading_delay_hours: int,
    now: int,
) -> dict[str, Any]:
    """Propose a pair to ``other``: the id is derived from the two people and a fresh
    random nonce (never chosen by the caller)."""
    view = service.view(now)
    me = person.public.key
    try:
        other_key = PublicIdentity.from_text(other).key
    except ProtocolError:
        raise CaseError(400, "with: a person's id", key=N_("refused_pair_with")) from None
    roles = {view.role_of(me), view.role_of(other_key)}
    mine, theirs = view.role_of(me), view.role_of(other_key)
    if theirs is None:
        raise CaseError(
            404,
            "the other party is not attested in the directory",
            key=N_("refused_pair_other_absent"),
        )
    if mine == "sender" and theirs in ("reader", "coordinator"):
        reader, sender = other_key, me
    elif mine in ("reader", "coordinator") and theirs == "sender":
        reader, sender = me, other_key
    else:
        found = ", ".join(sorted(map(str, roles)))
        raise CaseError(
            400,
            f"a pair is a reader and a sender (here: {found})",
            key=N_("refused_pair_roles"),
        )
    try:
        terms = new_pair_terms(
            reader=reader,
            sender=sender,
            nonce=os.urandom(16),
            weekly_quota=weekly_quota,
            reading_delay_hours=reading_delay_hours,
        )
    except MalformedError as exc:
        raise CaseError(400, str(exc)) from None
    new_id = terms["pair_id"]
    terms_bytes = pack(terms)
    signature = countersign(terms_bytes, person)
    home = view.members[other_key].body["home_node"]
    if home == service.me:
        await keep_proposal(service, terms_bytes, signature, me, now)
    else:
        await service.send_header(
            new_id,
            {
                "type": "pair_proposal",
                "terms": terms_bytes.hex(),
                "countersignature": signature.hex(),
                "proposer": me.hex(),
            },
            [home],
            "pair proposal",
            now,
        )
    await service.audit.append(
        actor=me, case_id=b"", action="pair propose", detail=new_id.hex(), now=now
    )  # commits the proposal (kept here, or its bundle queued) with the entry
    return {"pair_id": new_id.hex(), "status": "proposed"}


async def keep_proposal(
    service: CaseService, terms_bytes: bytes, signature: bytes, proposer: bytes, now: int
) -> str:
    """A proposal reached the other party's node: check it, keep it for their answer
    (not committed: part of the caller's decision)."""
    try:
        terms = PAIR_TERMS.check(_unpack(terms_bytes), "terms")
        PublicIdentity(proposer).verify(PAIR_TERMS_TAG, terms_bytes, signature)
    except ProtocolError as exc:
        return f"refused: {exc}"
    if proposer not in (terms["reader"], terms["sender"]):
        return "refused: the proposer is not a party"
    if terms["pair_id"] != derive_pair_id(terms["reader"], terms["sender"], terms["nonce"]):
        return "refused: the pair id is not derived from its members"
    other = terms["reader"] if proposer == terms["sender"] else terms["sender"]
    rows = PairStore(service.db)
    await rows.keep(PairProposal(terms["pair_id"], terms_bytes, signature, proposer, now))
    await service.notify(other, terms["pair_id"], "pair_proposal", now)
    return "pair proposal kept"


def _unpack(data: bytes) -> Any:
    from protocol.codec import unpack

    return unpack(data, max_size=1024)


async def accept(
    service: CaseService, person: Identity, pair_id: bytes, now: int
) -> dict[str, Any]:
    rows = PairStore(service.db)
    proposal = await rows.proposal(pair_id)
    if proposal is None:
        raise CaseError(
            404, "no proposal of this pair is waiting here", key=N_("refused_no_proposal")
        )
    terms_bytes, signature = proposal.terms, proposal.countersignature
    terms = PAIR_TERMS.check(_unpack(terms_bytes), "terms")
    me = person.public.key
    if me not in (terms["reader"], terms["sender"]) or me == proposal.proposer:
        raise CaseError(
            403,
            "only the other party of the pair may accept it",
            key=N_("refused_pair_accept"),
        )
    await _publish(service, terms, terms_bytes, person, signature, now)
    await rows.forget(pair_id)
    await service.audit.append(
        actor=me, case_id=b"", action="pair accept", detail=pair_id.hex(), now=now
    )  # commits both
    log("pair agreed", pair=pair_id.hex()[:8])
    return {"pair_id": pair_id.hex(), "status": "active"}


async def change(
    service: CaseService, person: Identity, pair_id: bytes, status: str, now: int
) -> dict[str, Any]:
    """Suspend or end a pair: either party alone, or a coordinator of the reader's group."""
    view = service.view(now)
    record = view.pairs.get(pair_id)
    if record is None:
        raise CaseError(404, "no such pair in the directory", key=N_("no_such_pair"))
    terms = pair_terms(record)
    me = person.public.key
    if me not in (terms["reader"], terms["sender"]) and me not in reader_coordinators(
        view, terms["reader"]
    ):
        raise CaseError(
            403,
            "only a party of the pair or its reader's coordinator may change it",
            key=N_("refused_pair_change"),
        )
    if terms["status"] == "ended":
        raise CaseError(409, "the pair has ended", key=N_("refused_pair_ended"))
    new_terms = {**terms, "status": status}
    terms_bytes = pack(new_terms)
    await _publish(service, new_terms, terms_bytes, person, countersign(terms_bytes, person), now)
    await service.audit.append(
        actor=me, case_id=b"", action=f"pair {status}", detail=pair_id.hex(), now=now
    )
    return {"pair_id": pair_id.hex(), "status": status}


async def listed(service: CaseService, person: bytes, now: int) -> dict[str, Any]:
    view = service.view(now)
    pairs = []
    for pair_id, record in sorted(view.pairs.items()):
        terms = pair_terms(record)
        if person in (terms["reader"], terms["sender"]):
            pairs.append(
                {
                    "pair_id": pair_id.hex(),
                    "reader": terms["reader"].hex(),
                    "sender": terms["sender"].hex(),
                    "weekly_quota": terms["weekly_quota"],
                    "reading_delay_hours": terms["reading_delay_hours"],
                    "status": terms["status"],
                    "this_week": await service.week_count(pair_id, now),
                }
            )
    proposals = []
    for proposal in await PairStore(service.db).proposals():
        terms = PAIR_TERMS.check(_unpack(proposal.terms), "terms")
        if person in (terms["reader"], terms["sender"]) and person != proposal.proposer:
            proposals.append(
                {
                    "pair_id": proposal.pair_id.hex(),
                    "proposer": proposal.proposer.hex(),
                    "weekly_quota": terms["weekly_quota"],
                    "reading_delay_hours": terms["reading_delay_hours"],
                }
            )
    return {"pairs": pairs, "proposals": proposals}
