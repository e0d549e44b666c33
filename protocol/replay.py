"""The replay window: a pure object that remembers recent (sender, nonce) pairs.

A message is accepted when its timestamp lies within ``max_skew`` of ``now`` and its
(sender, nonce) pair was not seen inside the window. Pairs older than the window can be
forgotten, since their timestamps are refused anyway, so memory stays bounded by the
message rate times the window. The node persists ``to_state()`` and restores it with
``from_state()`` so that a restart does not reopen the window.
"""

from __future__ import annotations

import heapq
from typing import Any

from protocol.codec import Bytes, Int, List, Schema, Tuple, pack, unpack
from protocol.errors import ExpiredError, LocalProtocolError, MalformedError, ReplayError

DEFAULT_MAX_SKEW_MS = 5 * 60 * 1000
DEFAULT_MAX_ENTRIES = 1_000_000

_STATE = Schema(
    {
        "max_skew": Int(1, 2**40),
        "seen": List(Tuple((Bytes(32, 32), Bytes(1, 64), Int())), DEFAULT_MAX_ENTRIES),
    }
)


class ReplayWindow:
    def __init__(
        self,
        *,
        max_skew: int = DEFAULT_MAX_SKEW_MS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if max_skew <= 0 or max_entries <= 0:
            raise LocalProtocolError("max_skew and max_entries must be positive")
        self.max_skew = max_skew
        self.max_entries = max_entries
        self._seen: dict[tuple[bytes, bytes], int] = {}
        self._expiry: list[tuple[int, bytes, bytes]] = []  # heap by timestamp

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, sender: bytes, nonce: bytes, timestamp: int, now: int) -> None:
        """Accept (and remember) the message, or raise ExpiredError / ReplayError."""
        if timestamp < now - self.max_skew:
            raise ExpiredError(f"message is {(now - timestamp) // 1000} s old")
        if timestamp > now + self.max_skew:
            raise ExpiredError(f"message is {(timestamp - now) // 1000} s in the future")
        key = (sender, nonce)
        seen = self._seen
        if key in seen:
            raise ReplayError("this message was already received")
        expiry = self._expiry
        if expiry and expiry[0][0] < now - self.max_skew:  # the oldest pair is due
            self.prune(now)
        if len(seen) >= self.max_entries:
            # Refuse rather than forget: forgetting would reopen a replay.
            raise ReplayError("replay window is full; try again shortly")
        seen[key] = timestamp  # as _remember, written out on this hot path
        heapq.heappush(expiry, (timestamp, sender, nonce))

    def _remember(self, sender: bytes, nonce: bytes, timestamp: int) -> None:
        self._seen[(sender, nonce)] = timestamp
        heapq.heappush(self._expiry, (timestamp, sender, nonce))

    def prune(self, now: int) -> None:
        """Forget pairs whose timestamps the window would refuse anyway."""
        horizon = now - self.max_skew
        while self._expiry and self._expiry[0][0] < horizon:
            _, sender, nonce = heapq.heappop(self._expiry)
            del self._seen[(sender, nonce)]

    def to_state(self) -> bytes:
        seen = [[s, n, t] for (s, n), t in self._seen.items()]
        return pack({"max_skew": self.max_skew, "seen": seen})

    @classmethod
    def from_state(cls, state: bytes, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> ReplayWindow:
        value: Any = _STATE.check(unpack(state, max_size=128 * max_entries + 64), "replay state")
        window = cls(max_skew=value["max_skew"], max_entries=max_entries)
        for sender, nonce, timestamp in value["seen"]:
            if (sender, nonce) in window._seen:
                raise MalformedError("replay state lists a message twice")
            window._remember(sender, nonce, timestamp)
        return window
