"""A small network built from real signed records, for directory and gossip tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol.codec import pack
from protocol.directory import (
    ROTATION_TAG,
    Network,
    countersign,
    make_record,
    new_pair_terms,
    rotation_message,
    sign_pair,
)
from protocol.identity import Identity
from tests.protocol.helpers import NOW, identity

DAY = 86_400_000
NET = "test-net"


@dataclass
class World:
    anchor: Identity = field(default_factory=lambda: identity("anchor"))
    group: Identity = field(default_factory=lambda: identity("group-paediatrics"))
    coordinator: Identity = field(default_factory=lambda: identity("coordinator"))
    reader: Identity = field(default_factory=lambda: identity("reader"))
    sender: Identity = field(default_factory=lambda: identity("sender"))
    version: int = NOW

    @property
    def network(self) -> Network:
        return Network(NET, frozenset({self.anchor.public.key}))

    def sign(
        self,
        kind: str,
        fields: dict[str, Any],
        signer: Identity,
        ttl: int = 30 * DAY,
        now: int = NOW,
        network: str = NET,
    ) -> bytes:
        self.version += 1
        return make_record(
            kind, fields, signer=signer, network=network, version=self.version, now=now, ttl=ttl
        )

    def node(self, name: str) -> Identity:
        return identity(f"node-{name}")

    def node_cert(
        self, node: Identity, issuer: Identity | None = None, replaces: Identity | None = None
    ) -> bytes:
        fields: dict[str, Any] = {"node": node.public.key}
        if replaces is not None:
            fields["replaces"] = replaces.public.key
        return self.sign("node_cert", fields, issuer or self.anchor)

    def node_record(self, node: Identity, name: str = "Node", **extra: Any) -> bytes:
        fields = {
            "name": name,
            "institution": "",
            "country": "BJ",
            "addresses": ["http://127.0.0.1:1"],
            "relays": [],
            "capabilities": [],
            "capacity": 10,
            **extra,
        }
        return self.sign("node", fields, node)

    def group_cert(self, may_admit: bool = True) -> bytes:
        return self.sign(
            "group_cert",
            {
                "group": self.group.public.key,
                "name": "Radiopédiatrie",
                "kind": "subspeciality",
                "may_admit": may_admit,
            },
            self.anchor,
        )

    def group_record(self, members: list[Identity] | None = None) -> bytes:
        return self.sign(
            "group",
            {
                "name": "Radiopédiatrie",
                "kind": "subspeciality",
                "routing": "assign",
                "coordinators": [self.coordinator.public.key],
                "members": [m.public.key for m in members or []],
                "subspecialities": ["paediatric"],
            },
            self.group,
        )

    def member(
        self,
        person: Identity,
        role: str,
        signer: Identity | None = None,
        group: Identity | None = None,
        replaces: Identity | None = None,
        now: int = NOW,
    ) -> bytes:
        extra = {} if replaces is None else {"replaces": replaces.public.key}
        return self.sign(
            "member",
            {
                **extra,
                "group": (group or self.group).public.key,
                "member": person.public.key,
                "role": role,
                "display_name": f"Dr {role}",
                "registration": "ORD-1234",
                "diploma": "DES",
                "charter_accepted": NOW - DAY,
                "facility": "CHU" if role == "sender" else "",
                "subspecialities": ["paediatric"],
                "languages": ["fr"],
                "home_node": self.node("erasme").public.key,
                "weekly_capacity": 3,
            },
            signer or self.coordinator,
            now=now,
        )

    def pair(
        self,
        *,
        countersigner: Identity | None = None,
        status: str = "active",
        signer: Identity | None = None,
        reader: Identity | None = None,
        sender: Identity | None = None,
        pair_id: bytes | None = None,
    ) -> bytes:
        """A record of the pair of ``reader`` and ``sender`` (by default the world's);
        ``pair_id`` replaces the derived id (a chosen one, or another pair's)."""
        terms = new_pair_terms(
            reader=(reader or self.reader).public.key,
            sender=(sender or self.sender).public.key,
            nonce=bytes(16),
            weekly_quota=3,
            reading_delay_hours=48,
            status=status,
        )
        if pair_id is not None:
            terms["pair_id"] = pair_id
        terms_bytes = pack(terms)
        self.version += 1
        return sign_pair(
            terms,
            signer=signer or self.reader,
            terms_bytes=terms_bytes,
            countersignature=countersign(terms_bytes, countersigner or self.sender),
            network=NET,
            version=self.version,
            now=NOW,
            ttl=30 * DAY,
        )

    def rotation(
        self,
        old: Identity,
        new: Identity,
        *,
        not_before: int = NOW,
        countersigner: Identity | None = None,
        now: int = NOW,
    ) -> bytes:
        """``old`` hands its standing to ``new`` from ``not_before`` (countersigned by
        ``countersigner``, by default the new key)."""
        message = rotation_message(old.public.key, new.public.key, not_before)
        fields = {
            "new": new.public.key,
            "not_before": not_before,
            "countersignature": (countersigner or new).sign(ROTATION_TAG, message),
        }
        return self.sign("key_rotation", fields, old, now=now)

    def revocation(self, target: Identity, signer: Identity) -> bytes:
        return self.sign("revocation", {"target": target.public.key, "reason": "left"}, signer)

    def everything(self) -> list[bytes]:
        erasme, cotonou = self.node("erasme"), self.node("cotonou")
        return [
            self.group_cert(),
            self.node_cert(erasme),
            self.node_cert(cotonou, issuer=self.group),
            self.node_record(erasme, "Hôpital Erasme"),
            self.node_record(cotonou, "CHU Cotonou"),
            self.group_record([self.reader, self.sender]),
            self.member(self.coordinator, "coordinator"),
            self.member(self.reader, "reader"),
            self.member(self.sender, "sender"),
            self.pair(),
        ]
