"""The directory: signed, versioned, expiring records of who is who, merged as a CRDT.

A network is its trust anchors' keys (bootstrap/). Everything else in the directory is a
signed document (SPEC.md §5, §8) that some already-trusted key vouches for:

    anchor ──group_cert──▶ group key ──group record──▶ coordinators ──member──▶ people
       └───node_cert──▶ node ◀──node_cert── group (may_admit)      people ──pair──▶ pair

Merge: last-writer-wins per record key by (version, digest). A record is stored only if,
when it arrives, its signature verifies, it belongs to this network, it has not expired
and its signer is entitled to sign it; otherwise it is ignored and the reason counted.
Which records are in force (``View``) is a pure function of the stored set, the anchors
and ``now``, so every delivery order of the same records gives the same view. Revocations
win: a revoked key's certificates, attestations and records are ignored and dropped.

Anti-entropy (gossip.py) uses ``digest()`` (the version held per record key: a
Scuttlebutt-style version vector, kept per key rather than per signer because records of
one signer reach nodes by different paths: by hand, introductions, gossip), ``root()``
(one hash of that digest: equal roots mean nothing to exchange) and ``missing_for()``.
Each signer MUST sign its records with strictly increasing versions (milliseconds since
the epoch serve).
"""

from __future__ import annotations

import functools
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from protocol.codec import pack, unpack
from protocol.documents import (
    DIRECTORY_KINDS,
    PAIR_TERMS,
    Document,
    decode_document,
    digest,
    encode_document,
)
from protocol.errors import LocalProtocolError, MalformedError, ProtocolError
from protocol.identity import Identity, PublicIdentity
from protocol.reconcile import RangeIndex

RECORD_KINDS = frozenset(k.name for k in DIRECTORY_KINDS)
# The order in which records are offered: what vouches for others comes first.
KIND_RANK = {
    "group_cert": 0,
    "node_cert": 1,
    "revocation": 2,
    "key_rotation": 3,
    "group": 4,
    "node": 5,
    "member": 6,
    "pair": 7,
    "node_stats": 8,
    "teaching_case": 9,
}
CLOCK_SKEW_MS = 5 * 60 * 1000
PAIR_TERMS_TAG = "pair/terms"
PAIR_ID_TAG = b"tsf/pair-id\x00"
PAIR_ALONE = ("suspended", "ended")  # what one party, or the reader's coordinator, may sign
DIGEST_ENTRY = struct.Struct(">8sQ4s")
ROTATION_TAG = "key_rotation/new"
ROTATION_GRACE_MS = 24 * 3600 * 1000
"""After a rotation's ``not_before``, records the old key signs are still taken in for
this long (records made just before the rotation that are still on their way); later
ones are refused (``retired``)."""
_ROTATION_MESSAGE = struct.Struct(">32s32sQ")

RecordKey = tuple[Any, ...]


@dataclass(frozen=True)
class Network:
    """A network: its name and the public keys of its trust anchors."""

    name: str
    anchors: frozenset[bytes]

    def __post_init__(self) -> None:
        if not self.anchors or any(len(a) != 32 for a in self.anchors):
            raise LocalProtocolError("a network needs at least one 32-byte anchor key")


def record_key(doc: Document) -> RecordKey:
    """The key under which last-writer-wins applies."""
    b, s = doc.body, doc.signer.key
    match doc.kind:
        case "group_cert":
            return ("group_cert", s, b["group"])
        case "node_cert":
            return ("node_cert", s, b["node"])
        case "node" | "group" | "node_stats":
            return (doc.kind, s)
        case "member":
            return ("member", b["group"], b["member"])
        case "pair":
            # The id is derived from the members (checked before a record is stored), and
            # the members are in the key too: a record of other people is another record.
            terms = pair_terms(doc)
            return ("pair", terms["pair_id"], terms["reader"], terms["sender"])
        case "revocation":
            return ("revocation", s, b["target"])
        case "key_rotation":
            # The new key is in the key: two rotations of one key are both kept (a fork).
            return ("key_rotation", s, b["new"])
        case "teaching_case":
            return ("teaching_case", s, b["teaching_id"])
    raise LocalProtocolError(f"{doc.kind} is not a directory record")


def _order(doc: Document) -> tuple[int, int, bytes]:
    """Last writer wins, except that an ended pair stays ended: a record that ends a pair
    beats any record of the same pair that does not (so an old agreement, replayed with a
    new version, cannot bring it back)."""
    ended = 1 if doc.kind == "pair" and pair_terms(doc)["status"] == "ended" else 0
    return (ended, int(doc.body["version"]), doc.digest)


def pair_terms(doc: Document) -> dict[str, Any]:
    """The terms of a pair record (already verified when the record was accepted)."""
    terms: dict[str, Any] = PAIR_TERMS.check(unpack(doc.body["terms"], max_size=1024), "terms")
    return terms


def derive_pair_id(reader: bytes, sender: bytes, nonce: bytes) -> bytes:
    """A pair's id, derived, never chosen (SPEC.md §8.1): the first 16 bytes of the BLAKE3
    digest of the tag ``tsf/pair-id\\0``, the reader's key, the sender's key and the
    16-byte nonce of the proposal (all of fixed length). Only its two members can make a
    record whose id is this one, so no record of another pair can name it."""
    if len(reader) != 32 or len(sender) != 32 or len(nonce) != 16:
        raise LocalProtocolError("a pair id is derived from two 32-byte keys and a 16-byte nonce")
    return digest(PAIR_ID_TAG + reader + sender + nonce)[:16]


def new_pair_terms(
    *,
    reader: bytes,
    sender: bytes,
    nonce: bytes,
    weekly_quota: int,
    reading_delay_hours: int,
    status: str = "active",
) -> dict[str, Any]:
    """The terms of a new pair, its id derived from its members and ``nonce`` (16 random
    bytes chosen by the proposer)."""
    terms = {
        "pair_id": derive_pair_id(reader, sender, nonce),
        "nonce": nonce,
        "reader": reader,
        "sender": sender,
        "weekly_quota": weekly_quota,
        "reading_delay_hours": reading_delay_hours,
        "status": status,
    }
    checked: dict[str, Any] = PAIR_TERMS.check(terms, "terms")
    return checked


def reader_coordinators(view: View, reader: bytes) -> frozenset[bytes]:
    """The coordinators of the group that attested ``reader`` (who may also suspend or
    end the reader's pairs)."""
    member = view.members.get(view.current(reader))
    if member is None:
        return frozenset()
    return frozenset(view.coordinators.get(member.body["group"], ()))


def pair_signer_refusal(doc: Document, terms: dict[str, Any], view: View) -> str | None:
    """Why the signer of this pair record may not sign it (given who the members and
    coordinators are in ``view``), or None: the id must be the derivation of the record's
    own reader, sender and nonce; an agreement is signed by one of the two, a suspension or
    an end by one of them or by a coordinator of the reader's group."""
    reader, sender = terms["reader"], terms["sender"]
    if reader == sender:
        return "not_entitled"
    if terms["pair_id"] != derive_pair_id(reader, sender, terms["nonce"]):
        return "bad_pair_id"
    signer = doc.signer.key
    if signer in (reader, sender):
        return None
    if terms["status"] in PAIR_ALONE and signer in reader_coordinators(view, reader):
        return None
    return "not_entitled"


def sign_pair(
    terms: dict[str, Any],
    *,
    signer: Identity,
    countersignature: bytes,
    terms_bytes: bytes,
    network: str,
    version: int,
    now: int,
    ttl: int,
) -> bytes:
    """Encode a pair record: ``terms_bytes`` signed by the other party (``countersign``)."""
    PAIR_TERMS.check(terms, "terms")
    body = {
        "network": network,
        "version": version,
        "created": now,
        "expires": now + ttl,
        "terms": terms_bytes,
        "countersignature": countersignature,
    }
    return encode_document("pair", body, signer)


def countersign(terms_bytes: bytes, party: Identity) -> bytes:
    return party.sign(PAIR_TERMS_TAG, terms_bytes)


def rotation_message(old: bytes, new: bytes, not_before: int) -> bytes:
    """What the new key countersigns in a key rotation (tag ``key_rotation/new``): the old
    key, the new key and ``not_before`` as 8 bytes, big-endian (SPEC.md §8.5)."""
    return _ROTATION_MESSAGE.pack(old, new, not_before)


def sign_rotation(
    old: Identity,
    new: Identity,
    *,
    not_before: int,
    network: str,
    version: int,
    now: int,
    ttl: int,
) -> bytes:
    """A key rotation record: signed by ``old``, countersigned by ``new`` (both held)."""
    if old.public.key == new.public.key:
        raise LocalProtocolError("a key cannot be rotated to itself")
    countersignature = new.sign(
        ROTATION_TAG, rotation_message(old.public.key, new.public.key, not_before)
    )
    fields = {"new": new.public.key, "not_before": not_before, "countersignature": countersignature}
    return make_record(
        "key_rotation", fields, signer=old, network=network, version=version, now=now, ttl=ttl
    )


def rotation_countersigned(doc: Document) -> bool:
    """Whether the new key of a rotation record countersigned it."""
    body = doc.body
    try:
        PublicIdentity(body["new"]).verify(
            ROTATION_TAG,
            rotation_message(doc.signer.key, body["new"], body["not_before"]),
            body["countersignature"],
        )
    except ProtocolError:
        return False
    return True


def _resolved(doc: Document, changes: dict[str, Any]) -> Document:
    """``doc`` read with keys replaced by their successors: the signed bytes (``raw``) and
    the digest are those of the record as signed; only ``body`` is the reading in force."""
    if all(doc.body.get(k) == v for k, v in changes.items()):
        return doc
    return Document(kind=doc.kind, signer=doc.signer, body={**doc.body, **changes}, raw=doc.raw)


@dataclass
class View:
    """What is in force: admitted nodes, certified groups, attested members, pairs."""

    revoked: set[bytes] = field(default_factory=set)
    groups: dict[bytes, Document] = field(default_factory=dict)  # group key -> group_cert
    group_records: dict[bytes, Document] = field(default_factory=dict)
    coordinators: dict[bytes, set[bytes]] = field(default_factory=dict)  # group -> keys
    admitted: dict[bytes, bytes] = field(default_factory=dict)  # node -> issuer
    nodes: dict[bytes, Document] = field(default_factory=dict)  # node -> node record
    members: dict[bytes, Document] = field(default_factory=dict)  # person -> member record
    pairs: dict[bytes, Document] = field(default_factory=dict)  # pair id -> pair record
    stats: dict[bytes, Document] = field(default_factory=dict)
    teaching: dict[bytes, Document] = field(default_factory=dict)  # teaching id -> record
    successors: dict[bytes, bytes] = field(default_factory=dict)  # old key -> next key
    retired: dict[bytes, int] = field(default_factory=dict)  # old key -> last valid ms
    forked: set[bytes] = field(default_factory=set)  # keys rotated twice: for an anchor
    replaced: set[bytes] = field(default_factory=set)  # lost keys, re-admitted under new ones
    changes_at: int | None = None  # a rotation comes in force then (its not_before)

    def is_admitted(self, node: bytes) -> bool:
        return node in self.admitted

    def current(self, key: bytes) -> bytes:
        """The key that holds ``key``'s standing now: itself, or the end of its chain of
        rotations and re-admissions (SPEC.md §8.5)."""
        seen = {key}
        while (after := self.successors.get(key)) is not None and after not in seen:
            seen.add(after)
            key = after
        return key

    def acting(self, signer: bytes, created: int) -> bytes | None:
        """Whose standing a record signed by ``signer`` at ``created`` has: the signer's,
        or for a retired key its successor's if it was signed before the key retired;
        None when a retired key signed it later (it is refused)."""
        until = self.retired.get(signer)
        if until is None:
            return signer
        return self.current(signer) if created <= until else None

    @functools.cached_property
    def admitted_in_order(self) -> list[bytes]:
        """The admitted nodes, sorted (computed once per view)."""
        return sorted(self.admitted)

    def role_of(self, person: bytes) -> str | None:
        member = self.members.get(person)
        return None if member is None else str(member.body["role"])


def _successors(
    by_kind: dict[str, list[Document]], revoked: set[bytes], now: int
) -> tuple[dict[bytes, bytes], dict[bytes, int], set[bytes], int | None]:
    """Rotations in force (SPEC.md §8.5): old key -> new key, when the old key retires,
    the keys rotated twice (forks, refused), and the next ``not_before`` still to come."""
    news: dict[bytes, set[bytes]] = {}
    for rec in by_kind["key_rotation"]:
        news.setdefault(rec.signer.key, set()).add(rec.body["new"])
    forked = {old for old, targets in news.items() if len(targets) > 1}
    claimed = Counter(new for targets in news.values() for new in targets)
    successors: dict[bytes, bytes] = {}
    retired: dict[bytes, int] = {}
    later: int | None = None
    for rec in by_kind["key_rotation"]:
        old, new, not_before = rec.signer.key, rec.body["new"], rec.body["not_before"]
        if old in forked or claimed[new] > 1 or old in revoked or new in revoked:
            continue
        if not_before > now:
            later = not_before if later is None else min(later, not_before)
            continue
        successors[old] = new
        retired[old] = not_before + ROTATION_GRACE_MS
    return successors, retired, forked, later


def compute_view(records: Iterable[Document], network: Network, now: int) -> View:
    """The records in force, as a pure function of the set (see the module docstring)."""
    live = [d for d in records if d.body["expires"] > now]
    by_kind: dict[str, list[Document]] = {k: [] for k in KIND_RANK}
    for doc in live:
        by_kind[doc.kind].append(doc)
    anchors = network.anchors

    def build(revoked: set[bytes]) -> View:
        view = View(revoked=set(revoked))
        successors, retired, view.forked, view.changes_at = _successors(by_kind, revoked, now)
        view.successors, view.retired = successors, retired
        current = view.current
        for cert in by_kind["group_cert"]:
            group = cert.body["group"]
            if cert.signer.key in anchors and group not in revoked:
                view.groups[group] = cert
        replaced: dict[bytes, Document] = {}  # old node key -> the latest re-admission
        issuers: dict[bytes, set[bytes]] = {}
        for cert in by_kind["node_cert"]:
            issuers.setdefault(cert.body["node"], set()).add(cert.signer.key)
        for cert in by_kind["node_cert"]:
            issuer, node = cert.signer.key, cert.body["node"]
            by_group = issuer in view.groups and view.groups[issuer].body["may_admit"]
            if not (issuer in anchors or by_group) or node in revoked:
                continue
            old = cert.body.get("replaces")
            # An anchor may re-admit any node; a group only a node it admitted itself.
            if (
                old is not None
                and old != node
                and (issuer in anchors or issuer in issuers.get(old, ()))
            ):
                held = replaced.get(old)
                if held is None or _order(held) < _order(cert):
                    replaced[old] = cert
        for old, cert in replaced.items():  # an anchor's word settles a fork too
            view.replaced.add(old)
            successors[old] = cert.body["node"]
            retired[old] = min(retired.get(old, cert.created), cert.created)
            view.forked.discard(old)
        for cert in by_kind["node_cert"]:
            issuer, node = cert.signer.key, cert.body["node"]
            by_group = issuer in view.groups and view.groups[issuer].body["may_admit"]
            if (issuer in anchors or by_group) and node not in revoked:
                view.admitted[current(node)] = issuer
        for rec in by_kind["group"]:
            if rec.signer.key in view.groups:
                view.group_records[rec.signer.key] = _resolved(
                    rec,
                    {
                        "coordinators": [current(c) for c in rec.body["coordinators"]],
                        "members": [current(m) for m in rec.body["members"]],
                    },
                )
                view.coordinators[rec.signer.key] = {
                    current(c) for c in rec.body["coordinators"] if c not in revoked
                }
        attested: list[Document] = []
        groups_of: dict[bytes, set[bytes]] = {}
        for rec in by_kind["member"]:
            groups_of.setdefault(rec.body["member"], set()).add(rec.body["group"])
        for rec in by_kind["member"]:
            group, member = rec.body["group"], rec.body["member"]
            signer = view.acting(rec.signer.key, rec.created)
            if (
                group in view.groups
                and signer in view.coordinators.get(group, ())
                and member not in revoked
            ):
                attested.append(rec)
                old = rec.body.get("replaces")
                # Only a member of the same group can be replaced by its coordinator.
                if old is not None and old != member and group in groups_of.get(old, ()):
                    view.replaced.add(old)
                    successors[old] = member
                    retired[old] = min(retired.get(old, rec.created), rec.created)
                    view.forked.discard(old)
        for rec in sorted(attested, key=_order):  # a re-attestation beats the key it replaces
            member = current(rec.body["member"])
            home = current(rec.body["home_node"])
            view.members[member] = _resolved(rec, {"member": member, "home_node": home})
        return view

    revoked = {
        r.body["target"]
        for r in by_kind["revocation"]
        if r.signer.key in anchors or r.signer.key == r.body["target"]
    }
    view = build(revoked)
    # Revocations by groups (of nodes they admitted, of their members) and by coordinators
    # (of members of their groups), given who holds those roles once anchors have spoken.
    for r in by_kind["revocation"]:
        signer, target = r.signer.key, r.body["target"]
        member = view.members.get(target)
        if (
            (signer in view.groups and view.admitted.get(target) == signer)
            or (signer in view.groups and member is not None and member.body["group"] == signer)
            or (member is not None and signer in view.coordinators.get(member.body["group"], ()))
        ):
            revoked.add(target)
    if revoked != view.revoked:
        view = build(revoked)
    for rec in sorted(by_kind["node"] + by_kind["node_stats"], key=_order):
        node = view.acting(rec.signer.key, rec.created)
        if node is None or node not in view.admitted:
            continue
        held = view.nodes if rec.kind == "node" else view.stats
        if node != rec.signer.key and node in held and held[node].signer.key == node:
            continue  # the new key's own record wins over the one the old key signed
        if rec.kind == "node":
            rec = _resolved(rec, {"relays": [view.current(r) for r in rec.body["relays"]]})
        held[node] = rec
    for rec in by_kind["pair"]:
        terms = pair_terms(rec)
        if terms["reader"] in revoked or terms["sender"] in revoked:
            continue
        reader_key, sender_key = view.current(terms["reader"]), view.current(terms["sender"])
        reader, sender = view.members.get(reader_key), view.members.get(sender_key)
        if (
            reader is not None
            and sender is not None
            and reader.body["role"] in ("reader", "coordinator")
            and sender.body["role"] == "sender"
            and view.acting(rec.signer.key, rec.created) is not None
            and pair_signer_refusal(rec, terms, view) is None
        ):
            if (reader_key, sender_key) != (terms["reader"], terms["sender"]):
                moved = {**terms, "reader": reader_key, "sender": sender_key}
                rec = _resolved(rec, {"terms": pack(moved)})
            view.pairs[terms["pair_id"]] = rec
    for rec in by_kind["teaching_case"]:
        author = view.acting(rec.signer.key, rec.created)
        reader = view.members.get(author) if author is not None else None
        if reader is not None and reader.body["role"] in ("reader", "coordinator"):
            view.teaching[rec.body["teaching_id"]] = rec
    return view


@dataclass(eq=False)
class _State:
    """A directory's records and what is computed from them, kept until they change."""

    records: dict[RecordKey, Document]
    view: View | None = None
    view_since: int = 0
    view_until: int = 0  # the view holds until the first record expires
    digest: dict[bytes, tuple[int, bytes]] | None = None
    root: bytes | None = None
    encoded: bytes | None = None
    soonest: int | None = None  # the earliest expiry, while records are unchanged
    successors: dict[bytes, _State] = field(default_factory=dict)  # by the record added
    missing: dict[tuple[int, int], tuple[Any, list[bytes]]] = field(default_factory=dict)
    ranges: RangeIndex | None = None
    by_hash: dict[bytes, Document] | None = None

    def clone(self) -> _State:
        return _State(dict(self.records))

    def forget(self) -> None:
        self.view = self.digest = self.root = self.encoded = self.soonest = None
        self.ranges = self.by_hash = None
        self.successors = {}
        self.missing = {}


class Directory:
    """The records a node holds, with the rules for taking new ones in."""

    def __init__(self, network: Network, *, max_records: int = 200_000) -> None:
        self.network = network
        self.max_records = max_records
        self._s = _State({})
        self._shared = False  # True: the state may be another directory's too (copy())
        self.ignored: Counter[str] = Counter()
        """Why records were turned away: forged, malformed, other_network, expired,
        future, revoked, retired (signed by a rotated key after its grace), unknown_signer,
        not_entitled, bad_countersignature, bad_pair_id (a pair id that is not derived
        from the record's members), full."""

    def __len__(self) -> int:
        return len(self._s.records)

    def __iter__(self) -> Iterator[Document]:
        return iter(self._s.records.values())

    def copy(self) -> Directory:
        """A directory holding the same records, for simulations that start many nodes
        from one state. The two share their state (and what is computed from it) until
        one of them changes: then it takes a state of its own, or the one another
        directory reached from the same state by taking in the same record (so 10,000
        simulated nodes that all took in one new record hold two states, not 10,000)."""
        twin = Directory(self.network, max_records=self.max_records)
        twin._s = self._s
        twin._shared = self._shared = True
        return twin

    def _own(self) -> None:
        """Before changing the records: a state of this directory's own."""
        if self._shared:
            self._s = self._s.clone()
            self._shared = False

    def _changed(self) -> None:
        self._s.forget()

    def view(self, now: int) -> View:
        """What is in force at ``now``; recomputed only when a record was added or
        removed, or when ``now`` passes the first expiry."""
        if self._s.view is None or now >= self._s.view_until or now < self._s.view_since:
            self._s.view = compute_view(self._s.records.values(), self.network, now)
            self._s.view_since = now
            live = [d.body["expires"] for d in self._s.records.values() if d.body["expires"] > now]
            if self._s.view.changes_at is not None:
                live.append(self._s.view.changes_at)
            self._s.view_until = min(live, default=2**63)
        return self._s.view

    # --- taking records in -----------------------------------------------------------

    def add(self, raw: bytes, now: int) -> str:
        """Take in one record; returns "added", "stale" (already held, or older than what
        is held), or "ignored:<reason>" (also counted in ``ignored``)."""
        try:
            doc = decode_document(raw)
        except ProtocolError as exc:
            reason = "forged" if "signature" in type(exc).__name__.lower() else "malformed"
            return self._ignore(reason)
        return self._add_document(doc, now)

    def add_many(self, raws: Iterable[bytes], now: int) -> Counter[str]:
        """Take in a batch whatever its order: records whose signer is vouched for by a
        later record of the same batch are retried until nothing more is accepted.

        Each pass judges its records against the view as it stood when the pass began,
        computed once, not after every record (which made a batch quadratic: 15.6 s for
        the 10,000 records of 5,000 nodes, 0.7 s now). Revocations come before the kinds
        they can undo (KIND_RANK): once a pass has taken some in, the records they revoke
        are dropped and the view is computed again before the next record of another
        kind."""
        outcome: Counter[str] = Counter()
        pending: list[Document] = []
        for raw in raws:
            try:
                pending.append(decode_document(raw))
            except ProtocolError as exc:
                forged = "signature" in type(exc).__name__.lower()
                outcome[self._ignore("forged" if forged else "malformed")] += 1
        pending.sort(key=lambda d: KIND_RANK.get(d.kind, 99))
        while pending:
            view = self.view(now)
            retry: list[Document] = []
            revoked = False
            for doc in pending:
                if revoked and doc.kind != "revocation":
                    self._drop_revoked(now)
                    view, revoked = self.view(now), False
                result = self._add_document(doc, now, count=False, view=view)
                if result in ("ignored:unknown_signer", "ignored:not_entitled"):
                    retry.append(doc)
                else:
                    outcome[result] += 1
                    revoked |= result == "added" and doc.kind == "revocation"
            if revoked:
                self._drop_revoked(now)
            if len(retry) == len(pending):
                for doc in retry:
                    outcome[self._add_document(doc, now)] += 1
                break
            pending = retry
        return outcome

    def _ignore(self, reason: str) -> str:
        self.ignored[reason] += 1
        return f"ignored:{reason}"

    def _add_document(
        self, doc: Document, now: int, *, count: bool = True, view: View | None = None
    ) -> str:
        """Take in one decoded record. With ``view`` (a pass of ``add_many``), it is
        judged against that view, and a revocation's effect waits for the caller."""
        reason = self._refusal(doc, now, view)
        if reason is not None:
            if count:
                return self._ignore(reason)
            return f"ignored:{reason}"
        key = record_key(doc)
        held = self._s.records.get(key)
        if held is not None and _order(held) >= _order(doc):
            return "stale"
        if held is None and len(self._s.records) >= self.max_records:
            return self._ignore("full")
        if self._shared and doc.kind != "revocation":
            reached = self._s.successors.get(doc.digest)
            if reached is None:
                reached = self._s.clone()
                reached.records[key] = doc
                self._s.successors[doc.digest] = reached
            self._s = reached  # shared: another directory may reach it the same way
            return "added"
        self._own()
        self._s.records[key] = doc
        self._changed()
        if doc.kind == "revocation" and view is None:
            self._drop_revoked(now)
        return "added"

    def _refusal(self, doc: Document, now: int, view: View | None = None) -> str | None:
        """Why ``doc`` cannot be taken in now (judged against ``view``, by default the
        current one), or None."""
        body = doc.body
        if doc.kind not in RECORD_KINDS:
            return "malformed"
        if body["network"] != self.network.name:
            return "other_network"
        if body["expires"] <= now or body["expires"] <= body["created"]:
            return "expired"
        if body["created"] > now + CLOCK_SKEW_MS:
            return "future"
        if view is None:
            view = self.view(now)
        signer = doc.signer.key
        if signer in view.revoked:
            return "revoked"
        acting = view.acting(signer, body["created"])
        if acting is None:
            return "retired"
        signer = acting  # a retired key's earlier records count as its successor's
        anchors = self.network.anchors
        groups = view.groups
        match doc.kind:
            case "group_cert":
                ok = signer in anchors
            case "node_cert":
                ok = signer in anchors or (signer in groups and groups[signer].body["may_admit"])
            case "node" | "node_stats":
                ok = signer in view.admitted
            case "group":
                ok = signer in groups
            case "member":
                if body["member"] in view.revoked:
                    return "revoked"
                ok = signer in view.coordinators.get(body["group"], ())
            case "revocation":
                ok = (
                    signer in anchors
                    or doc.signer.key == body["target"]
                    or signer in groups
                    or any(signer in c for c in view.coordinators.values())
                )
            case "pair":
                return self._pair_refusal(doc, view)
            case "key_rotation":
                return self._rotation_refusal(doc, signer, view)
            case "teaching_case":
                member = view.members.get(signer)
                ok = member is not None and member.body["role"] in ("reader", "coordinator")
            case _:  # pragma: no cover - RECORD_KINDS is exhaustive
                ok = False
        if ok:
            return None
        known = (
            signer in anchors
            or signer in groups
            or signer in view.admitted
            or signer in view.members
        )
        return "not_entitled" if known else "unknown_signer"

    def _pair_refusal(self, doc: Document, view: View) -> str | None:
        """A pair record is taken in only for its own members: its id derived from them
        (records made before ids were derived lack the nonce: malformed), signed by one of
        them and countersigned by the other; either of them alone, or a coordinator of the
        reader's group, may suspend or end it (the countersignature is then the signer's
        own). Anyone else's record of the pair is not_entitled."""
        try:
            terms = pair_terms(doc)
        except ProtocolError:
            return "malformed"
        refusal = pair_signer_refusal(doc, terms, view)
        if refusal is not None:
            return refusal
        reader, sender, signer = terms["reader"], terms["sender"], doc.signer.key
        alone = terms["status"] in PAIR_ALONE
        if signer in (reader, sender):
            other = sender if signer == reader else reader
            countersigners: tuple[bytes, ...] = (other, signer) if alone else (other,)
        else:  # the reader's coordinator, suspending or ending the pair
            countersigners = (signer,)
        for key in countersigners:
            try:
                PublicIdentity(key).verify(
                    PAIR_TERMS_TAG, doc.body["terms"], doc.body["countersignature"]
                )
                break
            except ProtocolError:
                continue
        else:
            return "bad_countersignature"
        if reader in view.revoked or sender in view.revoked:
            return "revoked"
        if view.current(reader) not in view.members or view.current(sender) not in view.members:
            return "unknown_signer"
        return None

    def _rotation_refusal(self, doc: Document, signer: bytes, view: View) -> str | None:
        """A key rotation is taken in when the new key countersigned it, the old key holds
        standing (an admitted node or an attested member, itself or through an earlier
        rotation) and the new key has none of its own and is not revoked. A second
        rotation of one key is taken in too: both are then refused in the view (a fork)."""
        new = doc.body["new"]
        if new == doc.signer.key:
            return "malformed"
        if not rotation_countersigned(doc):
            return "bad_countersignature"
        if new in view.revoked:
            return "revoked"
        if new in view.admitted or new in view.members or new in self.network.anchors:
            return "not_entitled"
        if signer in view.admitted or signer in view.members:
            return None
        return "unknown_signer"

    def _drop_revoked(self, now: int) -> None:
        revoked = self.view(now).revoked
        doomed = [
            key
            for key, doc in self._s.records.items()
            if doc.signer.key in revoked and doc.kind != "revocation"
        ]
        if doomed:
            self._own()
            for key in doomed:
                del self._s.records[key]
            self._changed()

    def prune(self, now: int) -> int:
        """Drop expired records; returns how many (at once when none can have expired:
        the soonest expiry is remembered until the records change)."""
        if self._s.soonest is None:
            self._s.soonest = min(
                (d.body["expires"] for d in self._s.records.values()), default=None
            )
        if self._s.soonest is None or now < self._s.soonest:
            return 0
        doomed = [k for k, d in self._s.records.items() if d.body["expires"] <= now]
        if doomed:
            self._own()
            for key in doomed:
                del self._s.records[key]
            self._changed()
        return len(doomed)

    # --- anti-entropy ----------------------------------------------------------------

    def digest(self) -> dict[bytes, tuple[int, bytes]]:
        """Per record key (its 8-byte hash): the version held and the first 4 bytes of the
        record's digest (do not modify the returned dict)."""
        if self._s.digest is None:
            self._s.digest = {
                key_hash(key): (int(doc.body["version"]), doc.digest[:4])
                for key, doc in self._s.records.items()
            }
        return self._s.digest

    def encoded_digest(self) -> bytes:
        """``encode_digest(self.digest())``, kept until the records change."""
        if self._s.encoded is None:
            self._s.encoded = encode_digest(self.digest())
        return self._s.encoded

    def root(self) -> bytes:
        """One hash of the digest: equal roots mean the same records."""
        if self._s.root is None:
            self._s.root = digest(self.encoded_digest())
        return self._s.root

    def missing_for(self, theirs: dict[bytes, tuple[int, bytes]], budget: int) -> list[bytes]:
        """The records that would win over what ``theirs`` holds for their keys (or whose
        keys it lacks), in at most ``budget`` bytes (at least one record, however large):
        certificates first, then by version, so that what vouches for a record comes no
        later than the record. Remembered with the state for the same ``theirs`` object
        (a simulation's nodes share states and the digests decoded from them)."""
        memo = self._s.missing
        found = memo.get((id(theirs), budget))
        if found is not None and found[0] is theirs:
            return found[1]
        chosen = self._missing_for(theirs, budget)
        if len(memo) >= 64:
            memo.clear()
        memo[(id(theirs), budget)] = (theirs, chosen)
        return chosen

    def range_index(self) -> RangeIndex:
        """The digest's entries sorted, with their fingerprints (reconcile.py), kept
        until the records change."""
        if self._s.ranges is None:
            self._s.ranges = RangeIndex((k, v, d) for k, (v, d) in self.digest().items())
        return self._s.ranges

    def records_for(self, key_hashes: Iterable[bytes], budget: int) -> list[bytes]:
        """The records held under these key hashes (those not held are passed over), in
        at most ``budget`` bytes (at least one record), in the order of ``missing_for``:
        certificates first, then by version."""
        if self._s.by_hash is None:
            self._s.by_hash = {key_hash(k): doc for k, doc in self._s.records.items()}
        held = self._s.by_hash
        docs = {held[k].digest: held[k] for k in key_hashes if k in held}
        ordered = sorted(docs.values(), key=lambda d: (*_offer_order(d), d.digest))
        return _within(ordered, budget)

    def _missing_for(self, theirs: dict[bytes, tuple[int, bytes]], budget: int) -> list[bytes]:
        mine = self.digest()
        wanted = [
            doc
            for key, doc in self._s.records.items()
            if mine[kh := key_hash(key)] > theirs.get(kh, (0, b""))
        ]
        wanted.sort(key=_offer_order)
        return _within(wanted, budget)


def _offer_order(doc: Document) -> tuple[int, int]:
    """What vouches for a record is offered no later than the record."""
    return (KIND_RANK[doc.kind], int(doc.body["version"]))


def _within(docs: list[Document], budget: int) -> list[bytes]:
    """The first of ``docs`` that fit in ``budget`` bytes (at least one)."""
    chosen: list[bytes] = []
    used = 0
    for doc in docs:
        size = len(doc.raw) + 5
        if chosen and used + size > budget:
            break
        chosen.append(doc.raw)
        used += size
    return chosen


@functools.lru_cache(maxsize=1 << 18)
def key_hash(key: RecordKey) -> bytes:
    """The 8-byte name of a record key in digests (remembered: every anti-entropy round
    needs the names of every record)."""
    return digest(pack(list(key)))[:8]


def encode_digest(entries: dict[bytes, tuple[int, bytes]]) -> bytes:
    """A digest as bytes: 20-byte entries (key hash 8, version 8, digest prefix 4),
    sorted by key hash."""
    return b"".join(DIGEST_ENTRY.pack(k, v, d) for k, (v, d) in sorted(entries.items()))


@functools.lru_cache(maxsize=64)
def decode_digest(data: bytes) -> dict[bytes, tuple[int, bytes]]:
    """The entries of an encoded digest (remembered for the same bytes: in a simulation
    many nodes send the very digest of a state they share; do not modify the result)."""
    if len(data) % DIGEST_ENTRY.size:
        raise MalformedError("a digest is a whole number of 20-byte entries")
    entries = {k: (v, d) for k, v, d in DIGEST_ENTRY.iter_unpack(data)}
    if len(entries) * DIGEST_ENTRY.size != len(data):
        raise MalformedError("a digest lists a record key twice")
    return entries


def make_record(
    kind: str,
    fields: dict[str, Any],
    *,
    signer: Identity,
    network: str,
    version: int,
    now: int,
    ttl: int,
) -> bytes:
    """Sign a directory record of ``kind`` with the common fields filled in."""
    if kind not in RECORD_KINDS:
        raise LocalProtocolError(f"{kind} is not a directory record kind")
    body = {
        "network": network,
        "version": version,
        "created": now,
        "expires": now + ttl,
        **fields,
    }
    return encode_document(kind, body, signer)
