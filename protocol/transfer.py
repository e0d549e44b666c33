"""Moving a sealed bundle over slow, broken links: which chunks to send or fetch, how
many at once, when to try again, whom to blame for a bad chunk (SPEC.md section 7).

Sans-IO, in the manner of aioquic: the node (or the simulator) tells an engine what
happened, with the time ``now`` in milliseconds, and asks it what to do next; engines
report their next deadline (``get_timer``) and never read a clock or touch a socket.

* ``ChunkSet``: which chunks of a bundle a node holds (a bitmap, sent as bytes).
* ``Backoff``: exponential backoff with jitter, randomness injected.
* ``Goodput``: a moving estimate of a link's useful bytes per second.
* ``Upload``: the sender (or a depositor at a relay) pushing the chunks that the
  destination says it lacks, ``window`` requests in flight; an acknowledged chunk is
  never sent again.
* ``Download``: the receiver pulling missing chunks from every source that holds the
  bundle (the sender, relays), a window per source, each chunk checked against the
  signed manifest on arrival; a source that serves a bad chunk is blamed, and the chunk
  is fetched elsewhere.
* ``Route``, ``next_route``: direct first, then the recipient's relays.
* ``RateLimit``: the operator's cap on the node's uplink (a token bucket).
* ``encode_mail_poll`` / ``decode_mail_poll``: a node proves who it is to the relay
  that holds its mail.
* ``encode_chunk_fetch`` / ``decode_chunk_fetch``: a node proves to the sender or relay
  it fetches chunks from that it is a recipient of the bundle (or one of their relays).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from protocol.bundle import Manifest
from protocol.errors import ExpiredError, IntegrityError, LocalProtocolError, MalformedError
from protocol.identity import Identity, PublicIdentity
from protocol.sampling import Rng, randbelow

# Priorities (manifest ``priority``, 0 to 3; higher goes first): reports and messages
# before urgent cases before routine images; 1 is unused for now.
PRIORITY_ROUTINE = 0
PRIORITY_URGENT = 2
PRIORITY_DOCUMENT = 3


class ChunkSet:
    """The chunks of a bundle that one node holds, as a bitmap (bit i of byte i // 8,
    least significant first)."""

    def __init__(self, count: int, data: bytes | None = None) -> None:
        if count < 1:
            raise LocalProtocolError("a bundle has at least one chunk")
        self.count = count
        size = (count + 7) // 8
        if data is None:
            self._bits = bytearray(size)
        else:
            if len(data) != size:
                raise MalformedError(f"a chunk set of {count} chunks is {size} bytes")
            if count % 8 and data[-1] >> (count % 8):
                raise MalformedError("a chunk set names chunks past the last one")
            self._bits = bytearray(data)
        self._held = sum(bin(b).count("1") for b in self._bits)

    @classmethod
    def full(cls, count: int) -> ChunkSet:
        s = cls(count)
        for i in range(count):
            s.add(i)
        return s

    def add(self, index: int) -> bool:
        """Mark ``index`` held; False if it already was."""
        self._check(index)
        byte, bit = divmod(index, 8)
        if self._bits[byte] >> bit & 1:
            return False
        self._bits[byte] |= 1 << bit
        self._held += 1
        return True

    def discard(self, index: int) -> None:
        self._check(index)
        byte, bit = divmod(index, 8)
        if self._bits[byte] >> bit & 1:
            self._bits[byte] &= ~(1 << bit) & 0xFF
            self._held -= 1

    def __contains__(self, index: int) -> bool:
        if not 0 <= index < self.count:
            return False
        return bool(self._bits[index // 8] >> (index % 8) & 1)

    def __len__(self) -> int:
        return self._held

    @property
    def complete(self) -> bool:
        return self._held == self.count

    def missing(self) -> list[int]:
        return [i for i in range(self.count) if i not in self]

    def to_bytes(self) -> bytes:
        return bytes(self._bits)

    def _check(self, index: int) -> None:
        if not 0 <= index < self.count:
            raise MalformedError(f"chunk index {index} is outside 0-{self.count - 1}")


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Delay before attempt ``attempts + 1``: base * factor**attempts, capped, then
    scaled by a random factor in [1 - jitter, 1] so that many nodes coming back from
    the same power cut do not all knock at once."""

    base_ms: int = 5_000
    factor: float = 2.0
    cap_ms: int = 3_600_000
    jitter: float = 0.5

    def delay(self, attempts: int, rng: Rng) -> int:
        raw = int(min(self.cap_ms, self.base_ms * self.factor ** min(64, max(0, attempts))))
        spread = int(raw * self.jitter)
        return raw - (randbelow(rng, spread + 1) if spread else 0)


class Goodput:
    """Useful bytes per second over a link: an exponentially weighted moving average of
    completed requests (bytes / time from request to acknowledgement, divided by the
    requests in flight at the time)."""

    def __init__(self, alpha: float = 0.25) -> None:
        self.alpha = alpha
        self.bytes_per_s: float | None = None
        self.total_bytes = 0

    def update(self, nbytes: int, elapsed_ms: int, in_flight: int = 1) -> None:
        self.total_bytes += nbytes
        sample = nbytes * max(1, in_flight) * 1000 / max(1, elapsed_ms)
        if self.bytes_per_s is None:
            self.bytes_per_s = sample
        else:
            self.bytes_per_s += self.alpha * (sample - self.bytes_per_s)

    def eta_ms(self, remaining_bytes: int) -> int | None:
        if not self.bytes_per_s:
            return None
        return int(remaining_bytes * 1000 / self.bytes_per_s)


class ChunkLayout(Protocol):
    """What an upload needs of a bundle: its chunks and their sizes on the wire. A
    ``Manifest`` is one; the simulator gives its own for bundles it does not seal."""

    @property
    def chunk_size(self) -> int: ...
    @property
    def chunk_count(self) -> int: ...
    def ciphertext_chunk_size(self, index: int) -> int: ...


class Upload:
    """Push the chunks of one bundle to one destination.

    Call ``set_have`` with what the destination holds (it says so when offered the
    bundle, and again after a cut); ``next_sends`` gives the chunk indexes to send now;
    report each outcome with ``on_ack`` or ``on_failure``. ``acked`` is what the
    destination confirmed holding (the node persists it).

    The window (chunks in flight) starts at ``window`` and grows up to ``max_window``
    (and ``MAX_BYTES_IN_FLIGHT``) while the link carries more than the window holds in
    ``WINDOW_TARGET_MS`` (a fast link with small chunks needs many in flight); a slow
    link keeps the small window, so a cut loses little."""

    WINDOW_TARGET_MS = 250
    MAX_BYTES_IN_FLIGHT = 16 * 1024 * 1024

    def __init__(
        self,
        manifest: ChunkLayout,
        *,
        window: int = 4,
        max_window: int = 64,
        acked: ChunkSet | None = None,
    ):
        if not 1 <= window <= max_window:
            raise LocalProtocolError("window must be from 1 to max_window")
        self.manifest = manifest
        self.window = window
        self.min_window = window
        # never more than MAX_BYTES_IN_FLIGHT read and on the wire at once
        self.max_window = max(
            window, min(max_window, self.MAX_BYTES_IN_FLIGHT // manifest.chunk_size)
        )
        self.acked = acked or ChunkSet(manifest.chunk_count)
        self.in_flight: dict[int, int] = {}  # index -> time sent
        self.goodput = Goodput()
        self.failures = 0
        self.last_error = ""
        self._todo: list[int] = []
        self._bytes_done = 0
        self._reset_todo()

    def _reset_todo(self) -> None:
        self._todo = [i for i in range(self.manifest.chunk_count) if i not in self.acked]
        self._todo.reverse()  # popped from the end: lowest first
        self._bytes_done = sum(
            self.manifest.ciphertext_chunk_size(i)
            for i in range(self.acked.count)
            if i in self.acked
        )
        self._acked_at_start = len(self.acked)

    def set_have(self, have: ChunkSet) -> None:
        if have.count != self.manifest.chunk_count:
            raise MalformedError("the destination's chunk set does not fit the manifest")
        for i in range(have.count):
            if i in have:
                self.acked.add(i)
        self.in_flight.clear()
        self._reset_todo()

    @property
    def progressed(self) -> bool:
        """Whether chunks were acknowledged since ``set_have`` (a cut link, not a dead one)."""
        return len(self.acked) > self._acked_at_start

    @property
    def done(self) -> bool:
        return self.acked.complete

    @property
    def bytes_done(self) -> int:
        return self._bytes_done

    def next_sends(self, now: int) -> list[int]:
        """Chunks to send now, lowest first, keeping ``window`` in flight."""
        out: list[int] = []
        while len(self.in_flight) < self.window and self._todo:
            i = self._todo.pop()
            if i in self.acked or i in self.in_flight:
                continue
            self.in_flight[i] = now
            out.append(i)
        return out

    def on_ack(self, index: int, now: int) -> None:
        sent = self.in_flight.pop(index, now)
        size = self.manifest.ciphertext_chunk_size(index)
        if self.acked.add(index):
            self._bytes_done += size
            self.goodput.update(size, now - sent, len(self.in_flight) + 1)
            rate = self.goodput.bytes_per_s or 0.0
            wanted = int(rate * self.WINDOW_TARGET_MS / 1000 / size) + 1
            self.window = max(self.min_window, min(self.max_window, wanted))

    def on_failure(self, index: int, error: str) -> None:
        """The request for ``index`` failed (connection cut, refused): it is sent again."""
        if self.in_flight.pop(index, None) is not None and index not in self.acked:
            self._todo.append(index)
        self.failures += 1
        self.last_error = error
        self.window = self.min_window

    def reset_in_flight(self) -> None:
        """A connection was lost: whatever was in flight is sent again."""
        for index in sorted(self.in_flight, reverse=True):
            if index not in self.acked:
                self._todo.append(index)
        self.in_flight.clear()


class SourceState(Enum):
    USABLE = "usable"
    WAITING = "waiting"  # backing off after failures
    BANNED = "banned"  # served bad chunks


@dataclass
class Source:
    """A node holding the bundle, from the point of view of a receiver."""

    name: str
    window: int = 4
    state: SourceState = SourceState.USABLE
    retry_at: int = 0
    failures: int = 0
    bad_chunks: int = 0
    in_flight: dict[int, int] = field(default_factory=dict)
    goodput: Goodput = field(default_factory=Goodput)
    last_error: str = ""


@dataclass(frozen=True, kw_only=True)
class Fetch:
    source: str
    index: int


@dataclass(frozen=True, kw_only=True)
class Blame:
    """A source served a chunk that does not match the signed manifest."""

    source: str
    index: int
    reason: str


class Download:
    """Pull the missing chunks of one bundle from every source that holds it."""

    MAX_BAD_CHUNKS = 3

    def __init__(
        self,
        manifest: Manifest,
        have: ChunkSet | None = None,
        *,
        rng: Rng,
        backoff: Backoff | None = None,
    ) -> None:
        self.manifest = manifest
        self.have = have or ChunkSet(manifest.chunk_count)
        if self.have.count != manifest.chunk_count:
            raise LocalProtocolError("the chunk set does not fit the manifest")
        self.sources: dict[str, Source] = {}
        self.backoff = backoff or Backoff(base_ms=2_000, cap_ms=300_000)
        self.rng = rng
        self.blamed: list[Blame] = []

    @property
    def complete(self) -> bool:
        return self.have.complete

    def add_source(self, name: str, *, window: int = 4) -> Source:
        source = self.sources.get(name)
        if source is None:
            source = self.sources[name] = Source(name, window=window)
        return source

    def _in_flight(self) -> set[int]:
        return {i for s in self.sources.values() for i in s.in_flight}

    def next_fetches(self, now: int) -> list[Fetch]:
        """Requests to make now. Each missing chunk goes to one source; the fastest
        sources are served first; a chunk already asked of one source is asked of
        another only when nothing else is left (the end of a transfer), so a stalled
        source does not hold the last chunks hostage."""
        taken = self._in_flight()
        missing = [i for i in range(self.have.count) if i not in self.have]
        out: list[Fetch] = []
        for source in sorted(self.sources.values(), key=lambda s: -(s.goodput.bytes_per_s or 0.0)):
            if source.state is SourceState.BANNED:
                continue
            if source.state is SourceState.WAITING:
                if now < source.retry_at:
                    continue
                source.state = SourceState.USABLE
            free = source.window - len(source.in_flight)
            for index in missing:
                if free <= 0:
                    break
                if index in taken:
                    continue
                source.in_flight[index] = now
                taken.add(index)
                out.append(Fetch(source=source.name, index=index))
                free -= 1
        if not out:
            out = self._duplicate_tail(now, missing)
        return out

    def _duplicate_tail(self, now: int, missing: list[int]) -> list[Fetch]:
        out = []
        for source in self.sources.values():
            if source.state is not SourceState.USABLE or source.in_flight:
                continue
            for index in missing:
                if index not in source.in_flight:
                    source.in_flight[index] = now
                    out.append(Fetch(source=source.name, index=index))
                    break
        return out

    def on_chunk(self, source_name: str, index: int, ciphertext: bytes, now: int) -> bool:
        """A chunk arrived: True when it is new and matches the manifest (the caller
        stores it), False when it was already held or is bad (then the source is blamed,
        and banned after MAX_BAD_CHUNKS)."""
        source = self.sources[source_name]
        sent = source.in_flight.pop(index, now)
        try:
            self.manifest.verify_chunk(index, ciphertext)
        except (IntegrityError, MalformedError) as exc:
            source.bad_chunks += 1
            self.blamed.append(Blame(source=source_name, index=index, reason=str(exc)))
            if source.bad_chunks >= self.MAX_BAD_CHUNKS:
                source.state = SourceState.BANNED
                source.in_flight.clear()  # asked of others instead
            return False
        source.failures = 0
        source.goodput.update(len(ciphertext), now - sent, len(source.in_flight) + 1)
        for other in self.sources.values():
            other.in_flight.pop(index, None)  # a duplicate request of the tail: moot
        return self.have.add(index)

    def on_failure(self, source_name: str, index: int | None, now: int, error: str) -> None:
        """A request to ``source_name`` failed (``index`` None: the source as a whole, e.g.
        unreachable): it waits, longer after each failure in a row."""
        source = self.sources[source_name]
        if index is None:
            source.in_flight.clear()
        else:
            source.in_flight.pop(index, None)
        source.failures += 1
        source.last_error = error
        source.state = SourceState.WAITING
        source.retry_at = now + self.backoff.delay(source.failures - 1, self.rng)

    def get_timer(self) -> int | None:
        """When a waiting source may be asked again (None: nothing to wait for)."""
        waits = [
            s.retry_at
            for s in self.sources.values()
            if s.state is SourceState.WAITING and not self.complete
        ]
        return min(waits) if waits else None


class Route(Enum):
    DIRECT = "direct"
    RELAY = "relay"


@dataclass(frozen=True, kw_only=True)
class Attempt:
    route: Route
    target: str  # the node id (hex) of the recipient or of the relay


def next_route(attempts: int, relays: list[str], recipient: str) -> Attempt:
    """Which way to try on attempt ``attempts`` (0-based): direct, then each of the
    recipient's relays in turn, then direct again, and so on. A recipient that lists no
    relay is only ever tried directly."""
    ways = [Attempt(route=Route.DIRECT, target=recipient)] + [
        Attempt(route=Route.RELAY, target=r) for r in relays
    ]
    return ways[attempts % len(ways)]


class RateLimit:
    """A token bucket: ``rate`` bytes per second, bursts up to ``burst`` bytes. ``delay``
    says how long to wait before sending ``nbytes`` (and counts them as sent)."""

    def __init__(self, rate: int, burst: int | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate // 4, 64 * 1024)
        self._tokens = float(self.burst)
        self._at: int | None = None

    def set_rate(self, rate: int) -> None:
        self.rate = rate

    def delay(self, nbytes: int, now: int) -> int:
        """Milliseconds to wait before sending ``nbytes`` (0: unlimited or in budget)."""
        if self.rate <= 0:
            return 0
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate / 1000)
        self._at = now
        self._tokens -= nbytes
        if self._tokens >= 0:
            return 0
        return int(-self._tokens * 1000 / self.rate) + 1


# --- relays ----------------------------------------------------------------------------

# A node that holds mail for others says so in its node record's capabilities (SPEC.md
# 7.2): a relay listed by a node without it is never chosen, and refuses offers.
RELAY_CAPABILITY = "relay"


# --- asking a relay for mail ---------------------------------------------------------

MAIL_POLL_TAG = "tsf/1/mail-poll"
MAIL_POLL_SIZE = 32 + 8 + 64
MAIL_POLL_SKEW_MS = 5 * 60_000


def encode_mail_poll(identity: Identity, now: int) -> bytes:
    """A relay's client proves which node it is: id, time, signature over both."""
    body = identity.public.key + now.to_bytes(8, "big")
    return body + identity.sign(MAIL_POLL_TAG, body)


def mail_poll_time(data: bytes) -> int:
    """When a mail poll says it was made (ms); call after ``decode_mail_poll``. A relay
    remembers (node, time) of the polls it answered within the skew window
    (``replay.ReplayWindow``), so a poll is answered once and a replay refused."""
    if len(data) != MAIL_POLL_SIZE:
        raise MalformedError(f"a mail poll is {MAIL_POLL_SIZE} bytes")
    return int.from_bytes(data[32:40], "big")


def decode_mail_poll(data: bytes, now: int) -> PublicIdentity:
    """The node asking for its mail; BadSignatureError, ExpiredError or MalformedError."""
    if len(data) != MAIL_POLL_SIZE:
        raise MalformedError(f"a mail poll is {MAIL_POLL_SIZE} bytes")
    body, signature = data[:40], data[40:]
    node = PublicIdentity(body[:32])
    node.verify(MAIL_POLL_TAG, body, signature)
    if abs(now - int.from_bytes(body[32:40], "big")) > MAIL_POLL_SKEW_MS:
        raise ExpiredError("the mail poll is not from now (clock off by more than 5 min?)")
    return node


# --- asking a node for chunks ----------------------------------------------------------

CHUNK_FETCH_TAG = "tsf/1/chunk-fetch"
CHUNK_FETCH_SIZE = 32 + 32 + 16 + 8 + 64
CHUNK_FETCH_SKEW_MS = 5 * 60_000
CHUNK_FETCH_HEADER = "X-TSF-Fetch"


def encode_chunk_fetch(identity: Identity, source: bytes, bundle_id: bytes, now: int) -> bytes:
    """A fetching node proves which node it is to the node it fetches a bundle's chunks
    from (``source``: the sender or a relay): fetcher id, source id, bundle id, time,
    signature over them. One token serves every chunk request of that bundle to that
    source while its time is within 5 minutes of the source's clock."""
    if len(source) != 32 or len(bundle_id) != 16:
        raise LocalProtocolError("a chunk fetch names a 32-byte node and a 16-byte bundle")
    body = identity.public.key + source + bundle_id + now.to_bytes(8, "big")
    return body + identity.sign(CHUNK_FETCH_TAG, body)


def decode_chunk_fetch(data: bytes, *, source: bytes, bundle_id: bytes, now: int) -> PublicIdentity:
    """The node asking ``source`` for chunks of ``bundle_id``; BadSignatureError,
    ExpiredError, or MalformedError (wrong size, another source or another bundle)."""
    if len(data) != CHUNK_FETCH_SIZE:
        raise MalformedError(f"a chunk fetch is {CHUNK_FETCH_SIZE} bytes")
    body, signature = data[:88], data[88:]
    node = PublicIdentity(body[:32])
    node.verify(CHUNK_FETCH_TAG, body, signature)
    if body[32:64] != source:
        raise MalformedError("the chunk fetch is addressed to another node")
    if body[64:80] != bundle_id:
        raise MalformedError("the chunk fetch is for another bundle")
    if abs(now - int.from_bytes(body[80:88], "big")) > CHUNK_FETCH_SKEW_MS:
        raise ExpiredError("the chunk fetch is not from now (clock off by more than 5 min?)")
    return node
