"""Many GossipEngines over a modelled network: latency, message loss, partitions."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from protocol.codec import pack
from protocol.directory import Directory
from protocol.envelope import HEADER_SIZE
from protocol.gossip import GossipConfig, GossipEngine, Outgoing
from protocol.identity import SIGNATURE_SIZE
from protocol.kinds import KINDS_BY_NAME
from simulations.clock import EventLoop


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


def envelope_size(kind: str, body: dict[str, Any]) -> int:
    """The bytes an envelope of this body takes on the wire (what the node would send)."""
    box = 16 if KINDS_BY_NAME[kind].encrypted else 0
    return HEADER_SIZE + len(pack(body)) + box + SIGNATURE_SIZE


class GossipNetwork:
    """``nodes`` engines, each with its own copy of ``directory``; one-way latency
    ``latency_ms``; each message lost with probability ``loss``."""

    def __init__(
        self,
        nodes: list[bytes],
        directory: Directory,
        *,
        start: int,
        seed: int = 1,
        loss: float = 0.0,
        latency_ms: int = 150,
        config: GossipConfig | None = None,
    ) -> None:
        self.loop = EventLoop(start)
        self.loss = loss
        self.latency_ms = latency_ms
        self._random = random.Random(seed)  # the network's chance, not the engines'
        self.engines = {
            node: GossipEngine(
                me=node,
                directory=directory.copy(),
                rng=seeded_rng(f"{seed}/{node.hex()}"),
                now=start,
                config=config,
            )
            for node in nodes
        }
        self.blocked: set[tuple[bytes, bytes]] = set()
        self.bytes_sent: Counter[bytes] = Counter()
        self.messages = Counter[str]()
        for node in nodes:
            self._schedule_timer(node)

    def _schedule_timer(self, node: bytes) -> None:
        engine = self.engines[node]

        def fire() -> None:
            self._send(node, engine.handle_timer(self.loop.now))
            self._schedule_timer(node)

        self.loop.at(engine.get_timer(), fire)

    def _send(self, sender: bytes, messages: list[Outgoing]) -> None:
        for message in messages:
            self.bytes_sent[sender] += envelope_size(message.kind, message.body)
            self.messages[message.kind] += 1
            if (sender, message.peer) in self.blocked or message.peer not in self.engines:
                continue
            if self._random.random() < self.loss:
                continue

            def deliver(m: Outgoing = message) -> None:
                engine = self.engines[m.peer]
                self._send(m.peer, engine.receive(sender, m.kind, m.body, self.loop.now))

            self.loop.at(self.loop.now + self.latency_ms, deliver)

    def partition(self, left: set[bytes], right: set[bytes]) -> None:
        self.blocked |= {(a, b) for a in left for b in right} | {
            (b, a) for a in left for b in right
        }

    def heal(self) -> None:
        self.blocked.clear()

    def holders(self, predicate: Callable[[Directory], bool]) -> int:
        return sum(1 for e in self.engines.values() if predicate(e.directory))
