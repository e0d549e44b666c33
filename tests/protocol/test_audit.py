"""The audit chain: any change, removal, insertion or reordering is detected, and named."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.audit import GENESIS, AuditEntry, chain_next, verify_chain
from protocol.errors import IntegrityError, LocalProtocolError

NOW = 1_790_000_000_000
READER = b"\x07" * 32


def chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(n):
        entries.append(
            chain_next(
                entries[-1] if entries else None,
                at_ms=NOW + i * 1000,
                actor=READER if i % 2 else b"",
                case_id=bytes([i % 3]) * 16,
                action=("deliver", "claim", "view", "report")[i % 4],
                detail=f"state {i}",
            )
        )
    return entries


def test_a_chain_verifies_with_its_head() -> None:
    entries = chain(6)
    assert entries[0].prev == GENESIS
    assert entries[0].seq == 0
    assert [e.seq for e in entries] == list(range(6))
    assert verify_chain(entries, entries[-1].digest) == 6
    assert verify_chain([]) == 0


def test_a_clock_that_goes_back_does_not_date_an_entry_before_the_last() -> None:
    first = chain(1)[0]
    second = chain_next(first, at_ms=NOW - 5000, actor=b"", case_id=b"", action="purge", detail="")
    assert second.at_ms == first.at_ms
    with pytest.raises(LocalProtocolError, match="needs an action"):
        chain_next(first, at_ms=NOW, actor=b"", case_id=b"", action="", detail="")


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda e: [*e[:2], replace(e[2], detail="state 99"), *e[3:]], "entry 3 does not follow"),
        (lambda e: [*e[:2], replace(e[2], actor=b"\x09" * 32), *e[3:]], "entry 3 does not follow"),
        (lambda e: [*e[:2], *e[3:]], "entry 2: found entry 3"),
        (lambda e: [e[0], e[2], e[1], *e[3:]], "entry 1: found entry 2"),
        (lambda e: [*e[:3], replace(e[3], at_ms=NOW - 1), *e[4:]], "entry 3 is dated before"),
        (lambda e: e[:-1], "ends at entry 4"),
        (lambda e: [*e[:-1], replace(e[-1], detail="")], "ends at entry 5"),
    ],
    ids=["changed", "actor-changed", "removed", "reordered", "backdated", "cut", "last-changed"],
)
def test_tampering_is_detected_and_named(tamper, message) -> None:  # type: ignore[no-untyped-def]
    entries = chain(6)
    with pytest.raises(IntegrityError, match=message):
        verify_chain(tamper(entries), entries[-1].digest)


@given(st.integers(0, 7), st.binary(min_size=1, max_size=8))
def test_any_changed_byte_of_any_entry_breaks_the_chain(index: int, junk: bytes) -> None:
    entries = chain(8)
    forged = replace(entries[index], detail=entries[index].detail + junk.hex())
    with pytest.raises(IntegrityError):
        verify_chain([*entries[:index], forged, *entries[index + 1 :]], entries[-1].digest)
