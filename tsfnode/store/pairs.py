"""The ``pair_proposals`` table: pair agreements proposed to a person of this node,
waiting for their signature (cases/pairs.py). Writes do not commit: the caller commits
its decision once (``commit``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PairProposal:
    """The terms one party signed (``countersignature``), as received here."""

    pair_id: bytes
    terms: bytes  # the packed terms, as signed
    countersignature: bytes
    proposer: bytes
    received_ms: int


class PairStore:
    """The pair proposals' queries over the node's database connection (``Store.db``)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    async def commit(self) -> None:
        await self.db.commit()

    async def keep(self, proposal: PairProposal) -> None:
        """Keep a proposal (a newer one of the same pair replaces it)."""
        await self.db.execute(
            "INSERT OR REPLACE INTO pair_proposals (pair_id, terms, countersignature, proposer,"
            " received_ms) VALUES (?, ?, ?, ?, ?)",
            (
                proposal.pair_id,
                proposal.terms,
                proposal.countersignature,
                proposal.proposer,
                proposal.received_ms,
            ),
        )

    async def proposal(self, pair_id: bytes) -> PairProposal | None:
        cursor = await self.db.execute(
            "SELECT terms, countersignature, proposer, received_ms FROM pair_proposals"
            " WHERE pair_id = ?",
            (pair_id,),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        return PairProposal(pair_id, bytes(row[0]), bytes(row[1]), bytes(row[2]), int(row[3]))

    async def proposals(self) -> list[PairProposal]:
        """Every proposal waiting here, in the order they came."""
        cursor = await self.db.execute(
            "SELECT pair_id, terms, countersignature, proposer, received_ms FROM pair_proposals"
            " ORDER BY received_ms, pair_id"
        )
        return [
            PairProposal(bytes(p), bytes(t), bytes(c), bytes(w), int(r))
            for p, t, c, w, r in await cursor.fetchall()
        ]

    async def forget(self, pair_id: bytes) -> None:
        """The proposal was answered."""
        await self.db.execute("DELETE FROM pair_proposals WHERE pair_id = ?", (pair_id,))
