"""Protocol engines of many nodes over a modelled network: latency, loss, partitions,
crashed nodes. Any engine with ``get_timer()``, ``handle_timer(now)`` and
``receive(peer, kind, body, now)`` returning ``Outgoing`` messages can be driven."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from protocol.codec import pack
from protocol.directory import Directory, Network, make_record
from protocol.envelope import HEADER_SIZE
from protocol.gossip import GossipConfig, GossipEngine, Outgoing
from protocol.identity import SIGNATURE_SIZE, Identity
from protocol.kinds import KINDS_BY_NAME
from protocol.liveness import Liveness, LivenessConfig
from simulations.clock import EventLoop


class Engine(Protocol):
    def get_timer(self) -> int: ...
    def handle_timer(self, now: int) -> list[Outgoing]: ...
    def receive(self, peer: bytes, kind: str, body: dict[str, Any], now: int) -> list[Outgoing]: ...


def seeded_rng(seed: str) -> Callable[[int], bytes]:
    """Deterministic bytes for an engine (SHA-256 in counter mode)."""
    counter = 0

    def rng(n: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
            counter += 1
        return out[:n]

    return rng


def admitted_directory(
    name: str, anchor: Identity, nodes: list[Identity], *, now: int, ttl: int
) -> Directory:
    """A network ``name`` whose anchor has admitted every one of ``nodes`` (node
    certificates, real signatures): where a simulated network starts."""
    directory = Directory(Network(name, frozenset({anchor.public.key})))
    directory.add_many(
        [
            make_record(
                "node_cert",
                {"node": node.public.key},
                signer=anchor,
                network=name,
                version=now + i + 1,
                now=now,
                ttl=ttl,
            )
            for i, node in enumerate(nodes)
        ],
        now,
    )
    return directory


def envelope_size(kind: str, body: dict[str, Any]) -> int:
    """The bytes an envelope of this body takes on the wire (what the node would send)."""
    box = 16 if KINDS_BY_NAME[kind].encrypted else 0
    return HEADER_SIZE + len(pack(body)) + box + SIGNATURE_SIZE


class SimNetwork:
    """One engine per node; one-way ``latency_ms``; each message lost with ``loss``."""

    def __init__(
        self,
        engines: dict[bytes, Engine],
        *,
        start: int,
        seed: int = 1,
        loss: float = 0.0,
        latency_ms: int | Callable[[bytes, bytes], int] = 150,
    ) -> None:
        self.loop = EventLoop(start)
        self.engines = engines
        self.loss = loss
        self.latency_ms = latency_ms
        self._random = random.Random(seed)  # the network's chance, not the engines'
        self.blocked: set[tuple[bytes, bytes]] = set()
        self.crashed: set[bytes] = set()
        self.bytes_sent: Counter[bytes] = Counter()
        self.messages: Counter[str] = Counter()
        self._timer_due: dict[bytes, int] = {}
        for node in engines:
            self._arm(node)

    def _arm(self, node: bytes) -> None:
        """Make sure the loop wakes ``node`` at its engine's next deadline."""
        due = self.engines[node].get_timer()
        if self._timer_due.get(node) == due:
            return
        self._timer_due[node] = due

        def fire() -> None:
            if self._timer_due.get(node) != due:
                return  # superseded by an earlier or later deadline
            del self._timer_due[node]
            if node in self.crashed:
                return  # a crashed node does nothing until it recovers
            self._send(node, self.engines[node].handle_timer(self.loop.now))
            self._arm(node)

        self.loop.at(due, fire)

    def _send(self, sender: bytes, messages: list[Outgoing]) -> None:
        for message in messages:
            self.bytes_sent[sender] += envelope_size(message.kind, message.body)
            self.messages[message.kind] += 1
            if (sender, message.peer) in self.blocked or message.peer not in self.engines:
                continue
            if self._random.random() < self.loss:
                continue

            def deliver(m: Outgoing = message) -> None:
                if m.peer in self.crashed:
                    return
                engine = self.engines[m.peer]
                self._send(m.peer, engine.receive(sender, m.kind, m.body, self.loop.now))
                self._arm(m.peer)

            latency = self.latency_ms
            delay = latency(sender, message.peer) if callable(latency) else latency
            self.loop.at(self.loop.now + delay, deliver)

    def crash(self, node: bytes) -> None:
        """The node stops: no timers, no answers (a power cut)."""
        self.crashed.add(node)

    def recover(self, node: bytes) -> None:
        self.crashed.discard(node)
        self._timer_due.pop(node, None)
        self._arm(node)

    def partition(self, left: set[bytes], right: set[bytes]) -> None:
        for a in left:
            for b in right:
                self.blocked |= {(a, b), (b, a)}

    def heal(self) -> None:
        self.blocked.clear()


class GossipNetwork(SimNetwork):
    """GossipEngines, each starting from its own copy of ``directory`` (or of its own in
    ``directories``: a network taken up again where an earlier run left it)."""

    def __init__(
        self,
        nodes: list[bytes],
        directory: Directory,
        *,
        start: int,
        seed: int = 1,
        loss: float = 0.0,
        latency_ms: int | Callable[[bytes, bytes], int] = 150,
        config: GossipConfig | None = None,
        directories: dict[bytes, Directory] | None = None,
    ) -> None:
        held = directories or {}
        engines: dict[bytes, Engine] = {
            node: GossipEngine(
                me=node,
                directory=held.get(node, directory).copy(),
                rng=seeded_rng(f"{seed}/{node.hex()}"),
                now=start,
                config=config,
            )
            for node in nodes
        }
        super().__init__(engines, start=start, seed=seed, loss=loss, latency_ms=latency_ms)
        self.gossip: dict[bytes, GossipEngine] = engines  # type: ignore[assignment]

    def holders(self, predicate: Callable[[Directory], bool]) -> int:
        return sum(1 for e in self.gossip.values() if predicate(e.directory))


class LivenessNetwork(SimNetwork):
    """Liveness engines of ``nodes``, all members of each other."""

    def __init__(
        self,
        nodes: list[bytes],
        *,
        start: int,
        seed: int = 1,
        loss: float = 0.0,
        latency_ms: int = 150,
        config: LivenessConfig | None = None,
    ) -> None:
        engines: dict[bytes, Liveness] = {}
        for node in nodes:
            engine = Liveness(
                me=node, rng=seeded_rng(f"{seed}/{node.hex()}"), now=start, config=config
            )
            engine.set_members(set(nodes), start)
            engines[node] = engine
        self.liveness = engines
        super().__init__(dict(engines), start=start, seed=seed, loss=loss, latency_ms=latency_ms)

    def seen_as(self, node: bytes) -> Counter[str]:
        """How the other live nodes see ``node``."""
        return Counter(
            e.peers[node].status
            for n, e in self.liveness.items()
            if n != node and n not in self.crashed
        )
