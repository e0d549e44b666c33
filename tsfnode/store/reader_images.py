"""The reader's images (``reader_images``, migration 16): DICOM instances a reader made at
the workstation for a case (key object selections, presentation states, SR, secondary
captures), attached by STOW-RS or by C-STORE from a bound AE title. At the reader's node
they wait for the next report or addendum signed (``report`` is None until then); at the
sender's node they arrive with that report. Every query about them, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiosqlite


@dataclass(frozen=True)
class ReaderImage:
    """One instance of the reader's, held with its case: its UIDs, the BLAKE3 of its
    bytes (the file's name), who made it and how it came (``stow``, ``c-store AE``, or
    ``report`` at the sender's node), the report that carried it, if any yet."""

    case_id: bytes
    sop_uid: str
    sop_class: str
    study_uid: str
    digest: bytes
    size: int
    reader: bytes
    via: str
    report: bytes | None
    created_ms: int


COLUMNS = "case_id, sop_uid, sop_class, study_uid, digest, size, reader, via, report, created_ms"


def _image(r: Any) -> ReaderImage:
    return ReaderImage(
        bytes(r[0]), str(r[1]), str(r[2]), str(r[3]), bytes(r[4]), int(r[5]), bytes(r[6]),
        str(r[7]), None if r[8] is None else bytes(r[8]), int(r[9]),
    )  # fmt: skip


class ReaderImageStore:
    """The queries about the reader's images over the node's database connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def of_case(self, case_id: bytes) -> list[ReaderImage]:
        cursor = await self.db.execute(
            f"SELECT {COLUMNS} FROM reader_images WHERE case_id = ?"  # noqa: S608
            " ORDER BY created_ms, sop_uid",
            (case_id,),
        )
        return [_image(r) for r in await cursor.fetchall()]

    async def image(self, case_id: bytes, sop_uid: str) -> ReaderImage | None:
        cursor = await self.db.execute(
            f"SELECT {COLUMNS} FROM reader_images WHERE case_id = ? AND sop_uid = ?",  # noqa: S608
            (case_id, sop_uid),
        )
        row = await cursor.fetchone()
        return None if row is None else _image(row)

    async def add(self, image: ReaderImage) -> None:
        """Keep ``image`` (the caller checked that its SOP Instance UID is new here); a
        write of the case service's decision, which commits it."""
        await self.db.execute(
            f"INSERT INTO reader_images ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                image.case_id, image.sop_uid, image.sop_class, image.study_uid,
                image.digest, image.size, image.reader, image.via, image.report,
                image.created_ms,
            ),
        )  # fmt: skip

    async def carried(self, case_id: bytes, sop_uids: list[str], report: bytes) -> None:
        """The report ``report`` (its digest) carries these instances; not committed:
        the report's decision commits it."""
        await self.db.executemany(
            "UPDATE reader_images SET report = ? WHERE case_id = ? AND sop_uid = ?",
            [(report, case_id, uid) for uid in sop_uids],
        )

    async def delete_case(self, case_id: bytes) -> None:
        """Forget the case's images (its purge; committed by the decision)."""
        await self.db.execute("DELETE FROM reader_images WHERE case_id = ?", (case_id,))
