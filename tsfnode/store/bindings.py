"""The DICOM workstations bound to accounts (``dicom_bindings``): a reader's Horos,
OsiriX, RadiAnt or Weasis, known by its AE title, queries and retrieves through the
node's Query/Retrieve SCP as that reader (dicomweb/qr.py). Every query about them, and
nothing else. An AE title is bound to one account at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiosqlite

from tsfnode.store.accounts import transaction


class AeTitleTaken(Exception):
    """The AE title is bound to another account already."""


@dataclass(frozen=True)
class DicomBinding:
    """A workstation bound to an account: its AE title, where it listens (the C-MOVE
    destination), when it was bound."""

    ae_title: str
    account_id: int
    host: str
    port: int
    created_ms: int


def _binding(r: Any) -> DicomBinding:
    return DicomBinding(str(r[0]), int(r[1]), str(r[2]), int(r[3]), int(r[4]))


COLUMNS = "ae_title, account_id, host, port, created_ms"


class BindingStore:
    """The queries about workstation bindings over the node's database connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def binding(self, ae_title: str) -> DicomBinding | None:
        cursor = await self.db.execute(
            f"SELECT {COLUMNS} FROM dicom_bindings WHERE ae_title = ?",  # noqa: S608
            (ae_title,),
        )
        row = await cursor.fetchone()
        return None if row is None else _binding(row)

    async def bindings_of(self, account_id: int) -> list[DicomBinding]:
        cursor = await self.db.execute(
            f"SELECT {COLUMNS} FROM dicom_bindings WHERE account_id = ?"  # noqa: S608
            " ORDER BY ae_title",
            (account_id,),
        )
        return [_binding(r) for r in await cursor.fetchall()]

    async def ae_titles(self) -> list[str]:
        """Every bound AE title."""
        cursor = await self.db.execute("SELECT ae_title FROM dicom_bindings ORDER BY ae_title")
        return [str(r[0]) for r in await cursor.fetchall()]

    async def bind(self, account_id: int, *, ae_title: str, host: str, port: int, now: int) -> None:
        """Bind ``ae_title`` to the account (again: its host and port change);
        AeTitleTaken if another account holds it."""
        async with transaction(self.db):
            held = await self.binding(ae_title)
            if held is not None and held.account_id != account_id:
                raise AeTitleTaken(ae_title)
            await self.db.execute(
                "INSERT INTO dicom_bindings (ae_title, account_id, host, port, created_ms)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (ae_title) DO UPDATE SET host ="
                " excluded.host, port = excluded.port",
                (ae_title, account_id, host, port, now),
            )

    async def unbind(self, ae_title: str, *, account_id: int) -> bool:
        """Remove one of the account's own bindings (another's is left alone)."""
        async with transaction(self.db):
            cursor = await self.db.execute(
                "DELETE FROM dicom_bindings WHERE ae_title = ? AND account_id = ?",
                (ae_title, account_id),
            )
        return bool(cursor.rowcount)
