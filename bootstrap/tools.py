"""The records that the people running a network sign offline.

Each function returns signed record bytes; versions are the signing time in ms (so each
signer's versions increase), and expiry is ``days`` after it.
"""

from __future__ import annotations

from collections.abc import Sequence

from bootstrap.network import NetworkFile
from protocol.directory import make_record
from protocol.documents import GROUP_KINDS, MEMBER_ROLES, ROUTING_MODES
from protocol.errors import LocalProtocolError
from protocol.identity import Identity, PublicIdentity

DAY_MS = 86_400_000
REVOCATION_DAYS = 3650  # revocations outlive anything they revoke


def _sign(
    kind: str,
    fields: dict[str, object],
    signer: Identity,
    network: NetworkFile,
    now: int,
    days: int,
    bump: int = 0,
) -> bytes:
    if days < 1:
        raise LocalProtocolError("validity must be at least one day")
    return make_record(
        kind,
        fields,
        signer=signer,
        network=network.name,
        version=now + bump,
        now=now,
        ttl=days * DAY_MS,
    )


def admit_node(
    network: NetworkFile,
    issuer: Identity,
    node: PublicIdentity,
    *,
    now: int,
    days: int = 365,
    replaces: PublicIdentity | None = None,
) -> bytes:
    """A node certificate, signed by an anchor (or a group allowed to admit); with
    ``replaces``, the node is admitted again under a new key in place of a lost one."""
    fields: dict[str, object] = {"node": node.key}
    if replaces is not None:
        fields["replaces"] = replaces.key
    return _sign("node_cert", fields, issuer, network, now, days)


def create_group(
    network: NetworkFile,
    anchor: Identity,
    group: Identity,
    *,
    name: str,
    kind: str,
    routing: str,
    may_admit: bool,
    coordinators: Sequence[PublicIdentity],
    subspecialities: Sequence[str] = (),
    members: Sequence[PublicIdentity] = (),
    now: int,
    days: int = 365,
) -> list[bytes]:
    """The anchor's certificate of the group's key, and the group's own record."""
    if kind not in GROUP_KINDS:
        raise LocalProtocolError(f"group kind: one of {', '.join(GROUP_KINDS)}")
    if routing not in ROUTING_MODES:
        raise LocalProtocolError(f"routing: one of {', '.join(ROUTING_MODES)}")
    if not coordinators:
        raise LocalProtocolError("a group needs at least one coordinator")
    cert = _sign(
        "group_cert",
        {"group": group.public.key, "name": name, "kind": kind, "may_admit": may_admit},
        anchor,
        network,
        now,
        days,
    )
    record = _sign(
        "group",
        {
            "name": name,
            "kind": kind,
            "routing": routing,
            "coordinators": [c.key for c in coordinators],
            "members": [m.key for m in members],
            "subspecialities": list(subspecialities),
        },
        group,
        network,
        now,
        days,
    )
    return [cert, record]


def attest_member(
    network: NetworkFile,
    coordinator: Identity,
    *,
    group: PublicIdentity,
    member: PublicIdentity,
    role: str,
    display_name: str,
    registration: str,
    diploma: str,
    charter_accepted: int,
    facility: str,
    subspecialities: Sequence[str],
    languages: Sequence[str],
    home_node: PublicIdentity,
    weekly_capacity: int,
    now: int,
    days: int = 365,
    replaces: PublicIdentity | None = None,
) -> bytes:
    """A coordinator's attestation: registration with the medical council, diploma,
    charter accepted (readers); facility and charter (senders). With ``replaces``, the
    member's new key in place of a lost one (SPEC.md §8.5)."""
    if role not in MEMBER_ROLES:
        raise LocalProtocolError(f"role: one of {', '.join(MEMBER_ROLES)}")
    if role in ("reader", "coordinator") and not (registration and diploma):
        raise LocalProtocolError("a reader needs a registration number and a diploma")
    if role == "sender" and not facility:
        raise LocalProtocolError("a sender needs a facility")
    return _sign(
        "member",
        {
            "group": group.key,
            "member": member.key,
            "role": role,
            "display_name": display_name,
            "registration": registration,
            "diploma": diploma,
            "charter_accepted": charter_accepted,
            "facility": facility,
            "subspecialities": list(subspecialities),
            "languages": list(languages),
            "home_node": home_node.key,
            "weekly_capacity": weekly_capacity,
            **({} if replaces is None else {"replaces": replaces.key}),
        },
        coordinator,
        network,
        now,
        days,
    )


def revoke(
    network: NetworkFile, signer: Identity, target: PublicIdentity, *, reason: str, now: int
) -> bytes:
    return _sign(
        "revocation",
        {"target": target.key, "reason": reason},
        signer,
        network,
        now,
        REVOCATION_DAYS,
    )
