"""Signed documents: manifests, reports, evaluations, case messages, receipts.

A document verifies alone, later, anywhere: it names its signer's public key and carries
the signature over the exact bytes. Layout (SPEC.md section 5), big-endian::

    0    4  magic "TSFD"
    4    1  version (1)
    5    1  kind code
    6    2  reserved, zero
    8   32  signer id (Ed25519 public key)
    40   4  body length n
    44   n  body (msgpack map, schema of the kind)
    44+n 64 Ed25519 signature over "tsf/1/document/<kind>" 0x00 bytes[0:44+n]

Who may sign which kind (a reader for reports, the receiving node for receipts) is the
caller's decision: ``decode_document`` proves who signed, the directory says who that is.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import blake3

from protocol.codec import (
    Bool,
    Bytes,
    Int,
    List,
    Optional,
    Scalars,
    Schema,
    Str,
    Tuple,
    pack,
    unpack,
)
from protocol.errors import (
    ExpiredError,
    LocalProtocolError,
    MalformedError,
    TooLargeError,
)
from protocol.frames import check_size, kind_of
from protocol.identity import SIGNATURE_SIZE, Identity, PublicIdentity

MAGIC = b"TSFD"
VERSION = 1
_HEADER = struct.Struct(">4sBBH32sI")
HEADER_SIZE = _HEADER.size  # 44
KiB = 1024
MiB = 1024 * KiB

MIN_CHUNK_SIZE = 64 * KiB
MAX_CHUNK_SIZE = 1 * MiB
MAX_CHUNKS = 1 << 20
MAX_RECIPIENTS = 16
HASH_SIZE = 32
WRAPPED_KEY_SIZE = 32 + 48  # sealed box of a 32-byte key

_ID = Bytes(32, 32)
CASE_ROUTINGS = ("pair", "group", "community")
CASE_EVENTS = (
    "claim",
    "assign",
    "release",
    "accept",
    "decline",
    "cancel",
    "close",
    "assigned",
    "released",
    "reported",
    "escalated",
    "cancelled",
    "closed",
)
_UID = Bytes(16, 16)
_TIME = Int(0, 2**63 - 1)
MAX_ATTACHMENTS = 256  # a reader's instances carried by one report
MAX_ATTACHMENT_SIZE = 64 * 1024 * 1024  # one instance made at a workstation
# [SOP Instance UID, SOP Class UID, BLAKE3 of the file, its size in bytes]
_ATTACHMENT = Tuple(
    (Str(min=1, max=64), Str(min=1, max=64), Bytes(32, 32), Int(1, MAX_ATTACHMENT_SIZE))
)


@dataclass(frozen=True, kw_only=True)
class DocumentKind:
    code: int
    name: str
    max_body: int
    schema: Schema
    signer: str
    doc: str


DOCUMENT_KINDS: tuple[DocumentKind, ...] = (
    DocumentKind(
        code=1,
        name="manifest",
        max_body=HASH_SIZE * MAX_CHUNKS + 64 * KiB,
        signer="the sending node",
        schema=Schema(
            {
                "bundle_id": _UID,
                "created": _TIME,
                "expires": _TIME,
                "priority": Int(0, 3),
                "chunk_size": Int(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE),
                "chunk_count": Int(1, MAX_CHUNKS),
                "plaintext_size": Int(0, MAX_CHUNK_SIZE * MAX_CHUNKS),
                "chunk_hashes": Bytes(HASH_SIZE, HASH_SIZE * MAX_CHUNKS),
                "recipients": List(
                    Tuple((_ID, Bytes(WRAPPED_KEY_SIZE, WRAPPED_KEY_SIZE))), MAX_RECIPIENTS
                ),
            }
        ),
        doc="Describes a sealed bundle: its id, sizes, the BLAKE3 hash of every encrypted "
        "chunk, and the bundle key wrapped (sealed box) for each recipient node.",
    ),
    DocumentKind(
        code=2,
        name="report",
        max_body=256 * KiB,
        signer="the reader",
        schema=Schema(
            {
                "case_id": _UID,
                "bundle_id": _UID,
                "created": _TIME,
                "language": Str(min=2, max=16),
                "findings": Str(max=64 * KiB),
                "impression": Str(max=32 * KiB),
                "recommendations": Str(max=32 * KiB),
                "image_quality": Str(choices=("adequate", "inadequate")),
                "quality_reason": Str(max=4 * KiB),
                "supersedes": Optional(Bytes(HASH_SIZE, HASH_SIZE)),
                "attachments": Optional(List(_ATTACHMENT, MAX_ATTACHMENTS)),
            }
        ),
        doc="A reader's second opinion on one case. `supersedes` is the digest of an "
        "earlier report it corrects. `attachments` (absent when none): the DICOM instances "
        "the reader made at the workstation (key images, presentation states, SR), each "
        "[SOP Instance UID, SOP Class UID, BLAKE3 of the file's bytes, size], carried as "
        "files of the report's bundle.",
    ),
    DocumentKind(
        code=3,
        name="evaluation",
        max_body=64 * KiB,
        signer="the sender (person)",
        schema=Schema(
            {
                "case_id": _UID,
                "report": Bytes(HASH_SIZE, HASH_SIZE),
                "created": _TIME,
                "relevant": Bool(),
                "useful": Bool(),
                "changed_management": Bool(),
                "teaching_consent": Bool(),
                "comment": Str(max=16 * KiB),
            }
        ),
        doc="The sender's rating of a report (by its digest): relevant, useful, did it "
        "change the patient's management, may the case be used for teaching, comment.",
    ),
    DocumentKind(
        code=4,
        name="case_message",
        max_body=64 * KiB,
        signer="the reader or sender writing it",
        schema=Schema(
            {
                "case_id": _UID,
                "message_id": _UID,
                "created": _TIME,
                "text": Str(min=1, max=32 * KiB),
                "in_reply_to": Optional(_UID),
                "extra": Optional(Scalars()),
            }
        ),
        doc="A message inside a case thread, e.g. 'please send a lateral view'.",
    ),
    DocumentKind(
        code=5,
        name="receipt",
        max_body=2 * KiB,
        signer="the receiving node",
        schema=Schema(
            {
                "bundle_id": _UID,
                "manifest": Bytes(HASH_SIZE, HASH_SIZE),
                "received": _TIME,
                "created": _TIME,
            }
        ),
        doc="The receiving node's statement that it holds the whole bundle, verified; "
        "`manifest` is the digest of the manifest document.",
    ),
    DocumentKind(
        code=6,
        name="case_request",
        max_body=64 * KiB,
        signer="the sender (person)",
        schema=Schema(
            {
                "case_id": _UID,
                "created": _TIME,
                "sender_node": _ID,
                "routing": Str(choices=CASE_ROUTINGS),
                "target": _ID,
                "pair_id": Optional(_UID),
                "reading_delay_hours": Int(1, 24 * 60),
                "over_quota": Bool(),
                "part": Int(0, 1000),
                "form": Scalars(max_items=32, max_text=4000),
            }
        ),
        doc="A sender asks for a second opinion: the clinical form (protocol/caseform.py), "
        "to whom (`routing`: the pair's reader, a group or a community, `target` its key), "
        "the agreed reading delay, and whether the sender chose to go beyond the pair's "
        "weekly quota. Travels inside the study's sealed bundle; `part` > 0 for images "
        "added to the case later.",
    ),
    DocumentKind(
        code=7,
        name="case_event",
        max_body=4 * KiB,
        signer="a person acting on the case, or the sender's node",
        schema=Schema(
            {
                "case_id": _UID,
                "created": _TIME,
                "event": Str(choices=CASE_EVENTS),
                "reader": Optional(_ID),
                "note": Str(max=2000),
                "seq": Optional(Int(1, 2**31 - 1)),
            }
        ),
        doc="A step of a case's workflow. People ask (`claim`, `assign` with `reader`, "
        "`release`, `accept` or `decline` a case beyond the quota, `cancel`, `close`); "
        "the sender's node, which keeps the case's state, decides and tells every node "
        "that holds the case (`assigned`, `released`, `reported`, `escalated`, `cancelled`, "
        "`closed`), its decisions numbered by `seq` from 1.",
    ),
)

# --- directory records (protocol/directory.py): signed, versioned, expiring ------------

_NAME = Str(min=1, max=200)
_RECORD = {
    "network": Str(min=1, max=64),
    "version": Int(1, 2**63 - 1),
    "created": _TIME,
    "expires": _TIME,
}
_TAGS = List(Str(min=1, max=64), 32)
GROUP_KINDS = ("institutional", "subspeciality", "community")
ROUTING_MODES = ("pair", "assign", "pool")
MEMBER_ROLES = ("reader", "sender", "coordinator")

PAIR_TERMS = Schema(
    {
        "pair_id": _UID,  # derived: directory.derive_pair_id(reader, sender, nonce)
        "nonce": _UID,
        "reader": _ID,
        "sender": _ID,
        "weekly_quota": Int(0, 1000),
        "reading_delay_hours": Int(1, 24 * 60),
        "status": Str(choices=("active", "suspended", "ended")),
    }
)

DIRECTORY_KINDS: tuple[DocumentKind, ...] = (
    DocumentKind(
        code=16,
        name="group_cert",
        max_body=2 * KiB,
        signer="a trust anchor",
        schema=Schema(
            {
                **_RECORD,
                "group": _ID,
                "name": _NAME,
                "kind": Str(choices=GROUP_KINDS),
                "may_admit": Bool(),
            }
        ),
        doc="A trust anchor certifies a reading group's key; with `may_admit` the group "
        "may admit nodes itself.",
    ),
    DocumentKind(
        code=17,
        name="node_cert",
        max_body=1 * KiB,
        signer="a trust anchor, or a group certified with may_admit",
        schema=Schema({**_RECORD, "node": _ID, "replaces": Optional(_ID)}),
        doc="Admits a node to the network; with `replaces`, under a new key that takes the "
        "place of a lost or stolen one (re-admission, SPEC.md §8.5).",
    ),
    DocumentKind(
        code=18,
        name="node",
        max_body=8 * KiB,
        signer="the node itself",
        schema=Schema(
            {
                **_RECORD,
                "name": _NAME,
                "institution": Str(max=200),
                "country": Str(max=2),
                "addresses": List(Str(min=1, max=255), 8),
                "relays": List(_ID, 8),
                "capabilities": _TAGS,
                "capacity": Int(0, 100_000),
            }
        ),
        doc="Where and what a node is: addresses, the relays that hold its mail.",
    ),
    DocumentKind(
        code=19,
        name="group",
        max_body=256 * KiB,
        signer="the group's key",
        schema=Schema(
            {
                **_RECORD,
                "name": _NAME,
                "kind": Str(choices=GROUP_KINDS),
                "routing": Str(choices=ROUTING_MODES),
                "coordinators": List(_ID, 32),
                "members": List(_ID, 4096),
                "subspecialities": _TAGS,
            }
        ),
        doc="A reading group: its coordinators, members and routing mode.",
    ),
    DocumentKind(
        code=20,
        name="member",
        max_body=8 * KiB,
        signer="a coordinator of the member's group",
        schema=Schema(
            {
                **_RECORD,
                "group": _ID,
                "member": _ID,
                "role": Str(choices=MEMBER_ROLES),
                "display_name": _NAME,
                "registration": Str(max=100),
                "diploma": Str(max=200),
                "charter_accepted": _TIME,
                "facility": Str(max=200),
                "subspecialities": _TAGS,
                "languages": List(Str(min=2, max=16), 16),
                "home_node": _ID,
                "weekly_capacity": Int(0, 1000),
                "replaces": Optional(_ID),
            }
        ),
        doc="A coordinator's attestation of a member: role, registration with the medical "
        "council, speciality diploma, charter accepted; for senders, their facility; with "
        "`replaces`, the person's new key in place of a lost one (SPEC.md §8.5).",
    ),
    DocumentKind(
        code=21,
        name="pair",
        max_body=2 * KiB,
        signer="the reader or the sender of the pair, countersigned by the other; to suspend "
        "or end it, either party alone or a coordinator of the reader's group",
        schema=Schema({**_RECORD, "terms": Bytes(max=1 * KiB), "countersignature": Bytes(64, 64)}),
        doc="A reader and a sender's agreement (binôme); `terms` (msgpack, PAIR_TERMS) is "
        "countersigned by the other party, tag `pair/terms`; `pair_id` is derived from the "
        "reader, the sender and `nonce`.",
    ),
    DocumentKind(
        code=22,
        name="revocation",
        max_body=2 * KiB,
        signer="a trust anchor, the key itself, or who admitted or attested it",
        schema=Schema({**_RECORD, "target": _ID, "reason": Str(max=500)}),
        doc="Revokes a key: its certificates, attestations and records are ignored.",
    ),
    DocumentKind(
        code=23,
        name="node_stats",
        max_body=8 * KiB,
        signer="the node itself",
        schema=Schema(
            {
                **_RECORD,
                "period_start": _TIME,
                "period_end": _TIME,
                "counters": Scalars(max_items=64, max_text=64),
            }
        ),
        doc="A node's aggregate statistics for a period: counts and durations, no patient data.",
    ),
    DocumentKind(
        code=24,
        name="teaching_case",
        max_body=160 * KiB,
        signer="the reader who read the case, with the sender's consent",
        schema=Schema(
            {
                **_RECORD,
                "teaching_id": _UID,
                "title": Str(min=1, max=200),
                "modality": Str(max=16),
                "body_part": Str(max=64),
                "age_years": Int(0, 130),
                "sex": Str(max=1),
                "findings": Str(max=64 * KiB),
                "impression": Str(max=32 * KiB),
                "recommendations": Str(max=32 * KiB),
                "report": Bytes(HASH_SIZE, HASH_SIZE),
                "consent": Bytes(HASH_SIZE, HASH_SIZE),
                "node": _ID,
                "files": Int(0, 100_000),
            }
        ),
        doc="A case in the network's teaching library: its report and what the form says "
        "without free text (modality, body part, age, sex), the digests of the signed "
        "report and of the sender's evaluation that consents, and the node that serves "
        "its fully anonymised images.",
    ),
    DocumentKind(
        code=25,
        name="key_rotation",
        max_body=1 * KiB,
        signer="the old key, countersigned by the new key",
        schema=Schema(
            {
                **_RECORD,
                "new": _ID,
                "not_before": _TIME,
                "countersignature": Bytes(64, 64),
            }
        ),
        doc="A node or a person moves to a new key: signed by the old key, `countersignature` "
        "by the new key (tag `key_rotation/new`, over old key, new key and `not_before`), so "
        "the record proves possession of both (SPEC.md §8.5).",
    ),
)
DOCUMENT_KINDS = DOCUMENT_KINDS + DIRECTORY_KINDS

DOCUMENT_KINDS_BY_CODE = {k.code: k for k in DOCUMENT_KINDS}
DOCUMENT_KINDS_BY_NAME = {k.name: k for k in DOCUMENT_KINDS}
MAX_DOCUMENT_SIZE = HEADER_SIZE + max(k.max_body for k in DOCUMENT_KINDS) + SIGNATURE_SIZE


def digest(data: bytes) -> bytes:
    """The 32-byte BLAKE3 digest used to name documents and chunks."""
    return blake3.blake3(data).digest()


def hasher() -> Any:
    """``digest`` by pieces: ``update`` it with each (bytes or memoryview), then call
    ``digest()`` (for data that arrives in pieces, without joining them)."""
    return blake3.blake3()


@dataclass(frozen=True, kw_only=True, slots=True)
class Document:
    """A verified and parsed document. ``raw`` is the exact signed bytes."""

    kind: str
    signer: PublicIdentity
    body: dict[str, Any]
    raw: bytes
    _digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_digest", digest(self.raw))  # its name, computed once

    @property
    def digest(self) -> bytes:
        return self._digest

    @property
    def created(self) -> int:
        return int(self.body["created"])


def _tag(kind: DocumentKind) -> str:
    return f"document/{kind.name}"


def encode_document(kind: str, body: dict[str, Any], signer: Identity) -> bytes:
    """Check ``body`` against the kind's schema, encode it and sign the exact bytes."""
    spec = DOCUMENT_KINDS_BY_NAME.get(kind)
    if spec is None:
        raise LocalProtocolError(f"unknown document kind {kind!r}")
    try:
        spec.schema.check(body, kind)
    except MalformedError as exc:
        raise LocalProtocolError(str(exc)) from exc
    encoded = pack(body)
    if len(encoded) > spec.max_body:
        raise LocalProtocolError(f"{kind} body of {len(encoded)} bytes exceeds its limit")
    signed = _HEADER.pack(MAGIC, VERSION, spec.code, 0, signer.public.key, len(encoded)) + encoded
    return signed + signer.sign(_tag(spec), signed)


def split_documents(data: bytes) -> list[bytes]:
    """Cut a file of documents written one after the other (a ``.tsfd`` file) into
    documents, by their length fields. Nothing is verified here: decode each."""
    out: list[bytes] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < HEADER_SIZE + SIGNATURE_SIZE:
            raise MalformedError(f"bytes at offset {offset} are not a whole document")
        magic, _, _, _, _, n = _HEADER.unpack_from(data, offset)
        if magic != MAGIC:
            raise MalformedError(f"bytes at offset {offset} are not a signed document")
        end = offset + HEADER_SIZE + n + SIGNATURE_SIZE
        if end > len(data) or n > MAX_DOCUMENT_SIZE:
            raise MalformedError(f"the document at offset {offset} is cut short")
        out.append(data[offset:end])
        offset = end
    return out


def decode_document(data: bytes, *, expect: str | None = None, now: int | None = None) -> Document:
    """Verify the signature, then parse. ``expect`` restricts the kind; with ``now``, a
    document created in the future (beyond 5 minutes of clock skew) is refused."""
    check_size(data, MAX_DOCUMENT_SIZE, HEADER_SIZE, "document")
    magic, version, code, reserved, signer, n = _HEADER.unpack_from(data)
    spec = kind_of(DOCUMENT_KINDS_BY_CODE, (magic, version, code), (MAGIC, VERSION), "document")
    if expect is not None and spec.name != expect:
        raise MalformedError(f"expected a {expect} document, got a {spec.name}")
    if reserved != 0:
        raise MalformedError("reserved document bits are set")
    if n > spec.max_body:
        raise TooLargeError(f"{spec.name} body of {n} bytes exceeds {spec.max_body}")
    if len(data) != HEADER_SIZE + n + SIGNATURE_SIZE:
        raise MalformedError("document length does not match its body length field")
    signer_id = PublicIdentity(signer)
    end = HEADER_SIZE + n
    signer_id.verify(_tag(spec), data[:end], data[end:])
    body = spec.schema.check(unpack(data[HEADER_SIZE:end], max_size=spec.max_body), spec.name)
    if now is not None and body["created"] > now + 5 * 60 * 1000:
        raise ExpiredError(f"{spec.name} claims to be created in the future")
    return Document(kind=spec.name, signer=signer_id, body=body, raw=bytes(data))
