"""The table of envelope kinds: code, name, size limit, confidentiality, payload schema.

This table is data: SPEC.md section 4 is written from it and a test keeps the two equal.
Later subsystems (gossip, transfer, cases) add their kinds here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.codec import Bytes, Check, Int, List, Optional, Schema, Str, Tuple
from protocol.reconcile import ENTRY_SIZE, KEY_SIZE, MAX_IDS, MAX_RANGES, MAX_ROUNDS, MAX_WANT

KiB = 1024
MiB = 1024 * KiB

# Membership updates carried on pings and pongs (protocol/liveness.py): (node, status,
# incarnation). Incarnations stay far below what msgpack can carry, so a refutation
# (incarnation + 1) can always be encoded.
MAX_INCARNATION = 2**32 - 1
UPDATES = List(
    Tuple((Bytes(32, 32), Str(choices=("alive", "suspect", "down")), Int(0, MAX_INCARNATION))),
    16,
)


@dataclass(frozen=True, kw_only=True)
class EnvelopeKind:
    code: int
    name: str
    max_payload: int
    encrypted: bool
    """True: the payload must be encrypted to the recipient node (flag bit 0 set)."""
    schema: Schema
    doc: str
    check_body: Check = field(init=False, repr=False, compare=False)
    """``schema.check(body, "<name> body")``, compiled once (codec's ``Field.checker``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "check_body", self.schema.checker(f"{self.name} body"))


ENVELOPE_KINDS: tuple[EnvelopeKind, ...] = (
    EnvelopeKind(
        code=1,
        name="ping",
        max_payload=1 * KiB,
        encrypted=False,
        schema=Schema({"probe": Bytes(max=64), "updates": UPDATES}),
        doc="Liveness probe (SWIM); answered by pong with the same probe bytes.",
    ),
    EnvelopeKind(
        code=2,
        name="pong",
        max_payload=1 * KiB,
        encrypted=False,
        schema=Schema({"probe": Bytes(max=64), "updates": UPDATES}),
        doc="Answer to ping.",
    ),
    EnvelopeKind(
        code=3,
        name="manifest",
        max_payload=4 * MiB,
        encrypted=False,
        schema=Schema({"document": Bytes(max=4 * MiB - 64)}),
        doc="Offers a sealed bundle: carries its signed manifest document. Public so that "
        "relays can verify chunks they cannot read.",
    ),
    EnvelopeKind(
        code=4,
        name="document",
        max_payload=1 * MiB,
        encrypted=True,
        schema=Schema({"document": Bytes(max=1 * MiB - 1024), "case_id": Bytes(min=16, max=16)}),
        doc="Carries one signed document (report, evaluation, case message, receipt) "
        "to the node of its addressee, encrypted to that node.",
    ),
    EnvelopeKind(
        code=5,
        name="receipt",
        max_payload=4 * KiB,
        encrypted=False,
        schema=Schema({"document": Bytes(max=4 * KiB - 64), "priority": Int(0, 3)}),
        doc="A signed delivery receipt, public so that relays can delete their copy.",
    ),
    EnvelopeKind(
        code=6,
        name="gossip_syn",
        max_payload=1 * KiB,
        encrypted=False,
        schema=Schema({"root": Bytes(32, 32)}),
        doc="Opens a gossip round: the root hash of the sender's directory digest.",
    ),
    EnvelopeKind(
        code=7,
        name="gossip_digest",
        max_payload=2 * MiB,
        encrypted=True,
        schema=Schema({"root": Bytes(32, 32), "digest": Bytes(max=2 * MiB - 1024)}),
        doc="The highest record version held per signer (40-byte entries), when roots differ.",
    ),
    EnvelopeKind(
        code=8,
        name="gossip_records",
        max_payload=4 * MiB,
        encrypted=True,
        schema=Schema(
            {
                "records": List(Bytes(max=512 * KiB), 100_000),
                "digest": Optional(Bytes(max=2 * MiB)),
            }
        ),
        doc="Directory records the peer lacks; with a digest, asks for those it lacks.",
    ),
    EnvelopeKind(
        code=9,
        name="ping_req",
        max_payload=1 * KiB,
        encrypted=False,
        schema=Schema({"target": Bytes(32, 32), "probe": Bytes(max=64)}),
        doc="Asks a peer to probe `target` on the sender's behalf (SWIM indirect probe).",
    ),
    EnvelopeKind(
        code=10,
        name="ping_ack",
        max_payload=1 * KiB,
        encrypted=False,
        schema=Schema({"target": Bytes(32, 32), "probe": Bytes(max=64)}),
        doc="`target` answered the probe asked for by ping_req.",
    ),
    EnvelopeKind(
        code=11,
        name="gossip_ranges",
        max_payload=4 * MiB,
        encrypted=True,
        schema=Schema(
            {
                "round": Int(1, MAX_ROUNDS),
                "ranges": List(
                    Tuple((Bytes(max=KEY_SIZE), Int(0, 2), Bytes(max=MAX_IDS * ENTRY_SIZE))),
                    MAX_RANGES,
                ),
                "want": Bytes(max=MAX_WANT * KEY_SIZE),
                "records": List(Bytes(max=512 * KiB), 100_000),
            }
        ),
        doc="Range-based reconciliation of the directory (protocol/reconcile.py): "
        "fingerprints or lists of ranges of the digest, the key hashes wanted, records.",
    ),
)

KINDS_BY_CODE = {k.code: k for k in ENVELOPE_KINDS}
KINDS_BY_NAME = {k.name: k for k in ENVELOPE_KINDS}
