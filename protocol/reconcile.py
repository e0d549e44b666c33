"""Range-based set reconciliation of directory digests, in the manner of Negentropy
(Doug Hoyte's protocol; Aljoscha Meyer, "Range-Based Set Reconciliation", 2022).

Two nodes whose roots differ no longer send each other a digest of every record: they
compare *fingerprints of ranges* of their sorted digest entries and recurse only into the
ranges that differ, until a range is small enough to list. The bytes exchanged grow with
the number of records that differ (times the depth, log16 of the directory), not with the
directory (SPEC.md §8.3).

An *entry* is what the full digest listed per record (20 bytes: key hash 8, version 8,
first 4 bytes of the record's digest); entries are sorted by key hash, and a range is the
half-open interval of key hashes [lower, upper). A message is a list of consecutive
ranges: the first starts at the lowest key hash, each one where the one before ended, the
last may end at ``END`` (the end of the key space), and whatever follows the last range
is settled. Each range is

- ``SKIP``: settled, nothing to do;
- ``FINGERPRINT``: the sender's fingerprint of its entries in the range (16 bytes);
- ``IDLIST``: every entry the sender holds in the range.

The receiver answers a fingerprint equal to its own with ``SKIP``; a different one by
splitting its own entries of the range: a list if it holds at most ``IDLIST_MAX``, else
``BRANCH`` sub-ranges of equal counts with their fingerprints. It answers a list with
``SKIP``, and knows then both what the sender lacks (it *pushes* those records) and what
it lacks itself (it *wants* those key hashes).

Every message is bounded: at most ``MAX_RANGES`` ranges and ``MAX_IDS`` listed entries
(and as many wanted key hashes). A reply that would exceed them stops at the range it
was answering and covers everything from there to the end with one fingerprint, so the
peer goes on from there (truncated without gaps). A receiver's work per message is one
binary search per range and one pass over its own entries at most. Anything that breaks
these rules raises ``MalformedError``.

Pure and deterministic: the caller (gossip.py) takes the records in and out.
"""

from __future__ import annotations

import bisect
import itertools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from protocol.documents import digest
from protocol.errors import LocalProtocolError, MalformedError

ENTRY = struct.Struct(">8sQ4s")  # key hash, version, first 4 bytes of the record's digest
ENTRY_SIZE = ENTRY.size  # 20
KEY_SIZE = 8
FINGERPRINT_SIZE = 16
END = b""  # the upper bound of a range that runs to the end of the key space
LOWEST = bytes(KEY_SIZE)

SKIP, FINGERPRINT, IDLIST = 0, 1, 2
MODES = (SKIP, FINGERPRINT, IDLIST)

BRANCH = 16  # sub-ranges of a range whose fingerprints differ
IDLIST_MAX = 32  # a range holding at most this many entries is listed, not split
OPENING_MAX = 64  # ranges of the first message of an exchange
MAX_RANGES = 1024  # ranges in one message
MAX_IDS = 2048  # entries listed in one message, all its lists together
MAX_WANT = MAX_IDS  # key hashes asked for in one message
MAX_ROUNDS = 32  # messages in one exchange, the first answering gossip_syn being 1

_MOD = 1 << 128


@dataclass(frozen=True, slots=True)
class Range:
    """One range of a message: its exclusive upper bound (8 bytes, or ``END``), its mode
    and the payload of that mode (empty, a fingerprint, or entries)."""

    upper: bytes
    mode: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        if len(self.upper) not in (0, KEY_SIZE) or self.mode not in MODES:
            raise LocalProtocolError("a range has an 8-byte upper bound (or END) and a mode")

    def to_wire(self) -> list[Any]:
        return [self.upper, self.mode, self.payload]


@dataclass(frozen=True, slots=True)
class Answer:
    """What a node replies to a message's ranges: its ranges, the key hashes of the
    records the peer lacks or holds older (``push``), and those it asks for (``want``)."""

    ranges: tuple[Range, ...]
    push: tuple[bytes, ...]
    want: tuple[bytes, ...]

    @property
    def settled(self) -> bool:
        """True when the ranges ask nothing more of the peer."""
        return all(r.mode == SKIP for r in self.ranges)


def _term(entry: bytes) -> int:
    return int.from_bytes(digest(entry)[:FINGERPRINT_SIZE], "little")


class RangeIndex:
    """A directory's digest entries, sorted, with prefix sums of their hashes: the
    fingerprint of any range in two binary searches. Built once per set of records
    (``Directory.range_index`` keeps it with the records' state)."""

    def __init__(self, entries: Iterable[tuple[bytes, int, bytes]]) -> None:
        ordered = sorted(entries)
        self.keys = [k for k, _v, _d in ordered]
        self.entries = [ENTRY.pack(k, v, d) for k, v, d in ordered]
        sums = [0]
        total = 0
        for entry in self.entries:
            total = (total + _term(entry)) % _MOD
            sums.append(total)
        self._sums = sums

    def __len__(self) -> int:
        return len(self.keys)

    def position(self, bound: bytes) -> int:
        """Index of the first entry at or above ``bound`` (``END``: past the last)."""
        return len(self.keys) if bound == END else bisect.bisect_left(self.keys, bound)

    def fingerprint(self, lo: int, hi: int) -> bytes:
        """The fingerprint of entries [lo, hi): BLAKE3 of their hashes' sum (mod 2^128,
        16 bytes little-endian) and their count (8 bytes big-endian), first 16 bytes."""
        total = (self._sums[hi] - self._sums[lo]) % _MOD
        return digest(total.to_bytes(16, "little") + (hi - lo).to_bytes(8, "big"))[
            :FINGERPRINT_SIZE
        ]

    def split(self, lo: int, hi: int, upper: bytes, parts: int = BRANCH) -> list[Range]:
        """Entries [lo, hi), which end before ``upper``: one list if few, else ``parts``
        fingerprinted sub-ranges of (nearly) equal counts."""
        count = hi - lo
        if count <= IDLIST_MAX:
            return [Range(upper, IDLIST, b"".join(self.entries[lo:hi]))]
        out = []
        for k in range(parts):
            a, b = lo + count * k // parts, lo + count * (k + 1) // parts
            out.append(Range(self.keys[b] if k < parts - 1 else upper, FINGERPRINT,
                             self.fingerprint(a, b)))  # fmt: skip
        return out

    def opening(self) -> list[Range]:
        """The first message of an exchange: the whole key space split in enough ranges
        (from ``BRANCH`` up to ``OPENING_MAX``) that the next step lists them, if it can:
        one level, one message and its chance of being lost fewer."""
        count = len(self.keys)
        parts = min(OPENING_MAX, max(BRANCH, -(-count // IDLIST_MAX)))
        return self.split(0, count, END, parts)

    def answer(self, ranges: Sequence[Range]) -> Answer:
        """Answer a peer's (parsed, checked) ranges; see the module docstring."""
        out: list[Range] = []
        push: list[bytes] = []
        want: list[bytes] = []
        listed = 0
        lower = LOWEST
        for r in ranges:
            lo, hi = self.position(lower), self.position(r.upper)
            if r.mode == FINGERPRINT and self.fingerprint(lo, hi) != r.payload:
                sub = self.split(lo, hi, r.upper)
                ids = sum(len(s.payload) // ENTRY_SIZE for s in sub if s.mode == IDLIST)
                if len(out) + len(sub) >= MAX_RANGES or listed + ids > MAX_IDS:
                    # the rest, from this range on, in one range the peer splits again
                    out.append(Range(END, FINGERPRINT, self.fingerprint(lo, len(self.keys))))
                    break
                out.extend(sub)
                listed += ids
            elif r.mode == IDLIST:
                _compare(r.payload, self.entries[lo:hi], push, want)
                out.append(Range(r.upper, SKIP))
            else:
                out.append(Range(r.upper, SKIP))
            lower = r.upper
        return Answer(_compact(out), tuple(push), tuple(want))


def _compare(theirs: bytes, mine: list[bytes], push: list[bytes], want: list[bytes]) -> None:
    """The records of one listed range that the peer lacks (or holds older) and those
    this side lacks (or holds older), by (version, digest prefix) per key hash."""
    held = {e[:KEY_SIZE]: e[KEY_SIZE:] for e in mine}
    listed = {}
    for i in range(0, len(theirs), ENTRY_SIZE):
        entry = theirs[i : i + ENTRY_SIZE]
        key, rest = entry[:KEY_SIZE], entry[KEY_SIZE:]
        listed[key] = rest
        if key not in held or rest > held[key]:  # version big-endian, then digest prefix
            want.append(key)
    push.extend(k for k, rest in held.items() if k not in listed or rest > listed[k])


def _compact(ranges: list[Range]) -> tuple[Range, ...]:
    """Consecutive SKIPs as one; no SKIP at the end (what follows the last range is
    settled anyway)."""
    out: list[Range] = []
    for r in ranges:
        if r.mode == SKIP and out and out[-1].mode == SKIP:
            out[-1] = r
        else:
            out.append(r)
    while out and out[-1].mode == SKIP:
        out.pop()
    return tuple(out)


def parse_ranges(wire: Sequence[Sequence[Any]]) -> list[Range]:
    """Ranges as received (already checked against the kind's schema: types and sizes),
    checked against the rules of SPEC.md §8.3: at most ``MAX_RANGES``, bounds of 8 bytes
    strictly increasing, ``END`` only last, payloads of their mode, listed entries
    sorted, inside their range and at most ``MAX_IDS`` in all."""
    if len(wire) > MAX_RANGES:
        raise MalformedError(f"more than {MAX_RANGES} ranges")
    out: list[Range] = []
    lower = LOWEST
    listed = 0
    for i, (upper, mode, payload) in enumerate(wire):
        if upper == END:
            if i != len(wire) - 1:
                raise MalformedError("only the last range may run to the end")
        elif len(upper) != KEY_SIZE or upper <= lower or (i == 0 and upper == LOWEST):
            raise MalformedError("range bounds must be 8 bytes, strictly increasing")
        if mode == SKIP and payload:
            raise MalformedError("a skipped range carries nothing")
        if mode == FINGERPRINT and len(payload) != FINGERPRINT_SIZE:
            raise MalformedError("a fingerprint is 16 bytes")
        if mode == IDLIST:
            if len(payload) % ENTRY_SIZE:
                raise MalformedError("a list is a whole number of 20-byte entries")
            listed += len(payload) // ENTRY_SIZE
            if listed > MAX_IDS:
                raise MalformedError(f"more than {MAX_IDS} entries listed")
            previous = None
            for j in range(0, len(payload), ENTRY_SIZE):
                key = payload[j : j + KEY_SIZE]
                if (
                    (previous is not None and key <= previous)
                    or key < lower
                    or (upper != END and key >= upper)
                ):
                    raise MalformedError("listed entries must be sorted and in their range")
                previous = key
        out.append(Range(upper, mode, payload))
        lower = upper
    return out


def parse_want(data: bytes) -> list[bytes]:
    """Wanted key hashes: 8 bytes each, strictly increasing, at most ``MAX_WANT``."""
    if len(data) % KEY_SIZE or len(data) > MAX_WANT * KEY_SIZE:
        raise MalformedError(f"want is up to {MAX_WANT} key hashes of 8 bytes")
    keys = [data[i : i + KEY_SIZE] for i in range(0, len(data), KEY_SIZE)]
    if any(a >= b for a, b in itertools.pairwise(keys)):
        raise MalformedError("wanted key hashes must be strictly increasing")
    return keys
