"""The node's directory: protocol's Directory, kept in the database and searched."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bootstrap.network import NetworkFile
from protocol.directory import Directory, View, make_record
from protocol.documents import Document
from protocol.gossip import RANGES_CAPABILITY
from protocol.identity import Identity, PublicIdentity
from protocol.transfer import RELAY_CAPABILITY
from tsfnode.config import NodeConfig
from tsfnode.logs import log
from tsfnode.store import Store

NODE_RECORD_DAYS = 7
REFRESH_BEFORE_MS = 2 * 86_400_000  # publish again two days before the record expires
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Entry:
    """One line of a directory search."""

    kind: str
    id: str
    name: str
    details: dict[str, Any]


def name_key(name: str) -> str:
    """What people read of a name: case, accents' encodings and spacing aside."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def same_names(view: View) -> dict[bytes, list[bytes]]:
    """The nodes of ``view`` that call themselves by a name another node uses too, each
    with the others (a name is a claim; only the key, whose short fingerprint is shown
    beside every name, tells them apart)."""
    by_name: dict[str, list[bytes]] = {}
    for node, record in sorted(view.nodes.items()):
        by_name.setdefault(name_key(record.body["name"]), []).append(node)
    return {
        node: [other for other in nodes if other != node]
        for nodes in by_name.values()
        if len(nodes) > 1
        for node in nodes
    }


class DirectoryService:
    def __init__(self, network: NetworkFile, identity: Identity, store: Store) -> None:
        self.network = network
        self.identity = identity
        self.store = store
        self.directory = Directory(network.network)
        self._saved: set[bytes] = set()
        self._saved_ignored: dict[str, int] = {}
        self._version = 0

    async def load(self, now: int) -> None:
        """Take in the records of the database (checked again: nothing is trusted from
        disk that would not be trusted from the network)."""
        self.directory.ignored.update(await self.store.load_ignored())
        outcome = self.directory.add_many(await self.store.load_records(), now)
        self.directory.prune(now)
        await self.persist()
        log("directory loaded", records=len(self.directory), **{k: v for k, v in outcome.items()})

    def view(self, now: int) -> View:
        return self.directory.view(now)

    async def add(self, raws: Iterable[bytes], now: int) -> Counter[str]:
        forked = self.view(now).forked
        outcome = self.directory.add_many(raws, now)
        await self.persist()
        for key in sorted(self.view(now).forked - forked):
            # Two rotations of one key: a thief's and the owner's. For the operator, who
            # asks the anchor to settle it (revocation and re-admission, SPEC.md §8.5).
            log("key rotated twice, refused", level=30, key=PublicIdentity(key).short)
        return outcome

    async def persist(self) -> None:
        """Write what changed since the last call (records added and removed)."""
        current = {d.digest: d for d in self.directory}
        added = [d for digest, d in current.items() if digest not in self._saved]
        removed = [digest for digest in self._saved if digest not in current]
        ignored = dict(self.directory.ignored)
        if added or removed:
            await self.store.save_records(added, removed)
            self._saved = set(current)
        if ignored != self._saved_ignored:
            await self.store.save_ignored(ignored)
            self._saved_ignored = ignored

    def next_version(self, now: int) -> int:
        me = self.identity.public.key
        held = max(
            (int(d.body["version"]) for d in self.directory if d.signer.key == me), default=0
        )
        self._version = max(now, held + 1, self._version + 1)
        return self._version

    def sealed_by_admitted(self, document: Document, now: int) -> bool:
        """Whether ``document`` (a manifest) was signed by an admitted node: itself, or a
        key it rotated from, before that key retired (SPEC.md §8.5)."""
        view = self.view(now)
        node = view.acting(document.signer.key, document.created)
        return node is not None and view.is_admitted(node)

    def address_of(self, node: bytes, now: int) -> str | None:
        """The first address a node's record lists (None: no record, or no address); a
        node that rotated its key is found under its current key (SPEC.md §8.5)."""
        view = self.view(now)
        record = view.nodes.get(view.current(node))
        if record is None or not record.body["addresses"]:
            return None
        return str(record.body["addresses"][0]).rstrip("/")

    def relays_of(self, node: bytes, now: int) -> list[bytes]:
        """The relays that hold mail for a node: those its record lists whose own record
        says they consent to relay (the ``relay`` capability, `[relay] enabled`). A
        node listed without its consent is never chosen."""
        view = self.view(now)
        return [
            relay
            for relay in self.relays_listed_by(node, now)
            if (record := view.nodes.get(relay)) is not None
            and RELAY_CAPABILITY in record.body["capabilities"]
        ]

    def relays_listed_by(self, node: bytes, now: int) -> list[bytes]:
        """The relays a node's record lists, whether they consent or not."""
        view = self.view(now)
        record = view.nodes.get(view.current(node))
        return [bytes(r) for r in record.body["relays"]] if record is not None else []

    def own_record(self) -> Document | None:
        for doc in self.directory:
            if doc.kind == "node" and doc.signer.key == self.identity.public.key:
                return doc
        return None

    async def publish_self(self, config: NodeConfig, addresses: list[str], now: int) -> bool:
        """Publish (again) this node's record when it is admitted and the record is
        missing, out of date or near expiry. Returns True when a record was published."""
        me = self.identity.public.key
        if not self.view(now).is_admitted(me):
            return False
        fields = {
            "name": config.name,
            "institution": config.institution,
            "country": config.country,
            "addresses": addresses,
            "relays": [PublicIdentity.from_text(r).key for r in config.transfer_relays],
            "capabilities": [
                "bundles",
                "gossip",
                RANGES_CAPABILITY,
                *([RELAY_CAPABILITY] if config.relay_enabled else []),
            ],
            "capacity": 0,
        }
        held = self.own_record()
        if held is not None:
            same = all(held.body[k] == v for k, v in fields.items())
            if same and held.body["expires"] - now > REFRESH_BEFORE_MS:
                return False
        record = make_record(
            "node",
            fields,
            signer=self.identity,
            network=self.network.name,
            version=self.next_version(now),
            now=now,
            ttl=NODE_RECORD_DAYS * DAY_MS,
        )
        outcome = await self.add([record], now)
        log("node record published", outcome=",".join(outcome))
        return outcome["added"] == 1

    def introduction(self, now: int) -> list[bytes]:
        """What this node shows a node it meets: its certificate (with the group
        certificate that vouches for it, if any) and its node record; after a rotation,
        also the certificate of the key it rotated from and the rotations in between
        (SPEC.md §8.5), so that a peer that never heard of the new key takes it in."""
        me = self.identity.public.key
        view = self.view(now)
        out: list[bytes] = []
        issuer = view.admitted.get(me)
        for doc in self.directory:
            if doc.kind == "node_cert" and view.current(doc.body["node"]) == me:
                out.append(doc.raw)
            elif doc.kind == "group_cert" and doc.body["group"] == issuer:
                out.append(doc.raw)
            elif doc.kind == "key_rotation" and view.current(doc.signer.key) == me:
                out.append(doc.raw)
        own = self.own_record()
        if own is not None:
            out.append(own.raw)
        return out

    def search(
        self,
        now: int,
        *,
        kind: str | None = None,
        role: str | None = None,
        subspeciality: str | None = None,
        language: str | None = None,
        country: str | None = None,
    ) -> list[Entry]:
        view = self.view(now)
        entries: list[Entry] = []
        if kind in (None, "node"):
            twins = same_names(view)
            for node, rec in view.nodes.items():
                b = rec.body
                if country and b["country"].upper() != country.upper():
                    continue
                if role or subspeciality or language:
                    continue
                entries.append(
                    Entry(
                        "node",
                        PublicIdentity(node).text,
                        b["name"],
                        {
                            "country": b["country"],
                            "addresses": b["addresses"],
                            "institution": b["institution"],
                            "fingerprint": PublicIdentity(node).short,
                            "same_name_as": [PublicIdentity(t).short for t in twins.get(node, [])],
                            "relay": RELAY_CAPABILITY in b["capabilities"],  # consents
                        },
                    )
                )
        if kind in (None, "member"):
            for person, rec in view.members.items():
                b = rec.body
                if role and b["role"] != role:
                    continue
                if subspeciality and subspeciality not in b["subspecialities"]:
                    continue
                if language and language not in b["languages"]:
                    continue
                home = view.nodes.get(b["home_node"])
                home_country = home.body["country"] if home else ""
                if country and home_country.upper() != country.upper():
                    continue
                entries.append(
                    Entry(
                        "member",
                        PublicIdentity(person).text,
                        b["display_name"],
                        {
                            "role": b["role"],
                            "subspecialities": b["subspecialities"],
                            "languages": b["languages"],
                            "country": home_country,
                            "weekly_capacity": b["weekly_capacity"],
                            "group": view.groups[b["group"]].body["name"],
                        },
                    )
                )
        if kind in (None, "group") and not (role or language or country):
            for group, cert in view.groups.items():
                group_record = view.group_records.get(group)
                body = group_record.body if group_record else {}
                subs = body.get("subspecialities", [])
                if subspeciality and subspeciality not in subs:
                    continue
                entries.append(
                    Entry(
                        "group",
                        PublicIdentity(group).text,
                        cert.body["name"],
                        {
                            "kind": cert.body["kind"],
                            "subspecialities": subs,
                            "routing": body.get("routing", ""),
                        },
                    )
                )
        return sorted(entries, key=lambda e: (e.kind, e.name.lower()))
