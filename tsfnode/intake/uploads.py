"""Resumable uploads kept on the node until they are whole, then taken into the intake:
the folder both the light client's API (`api/uploads.py`) and the web application's
uploader (`web/new_case.py`) write to."""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from tsfnode.bodies import read_body
from tsfnode.intake.importer import importer_for

MAX_UPLOAD = 8 * 1024**3
MAX_CHUNK = 8 * 1024**2
_ID = re.compile(r"^[0-9a-f]{32}$")


class UploadFolder:
    """Resumable uploads kept in ``DIR/uploads/``: ``ID.part`` (the bytes so far) and
    ``ID.json`` (size, owner's account, and what the caller adds), one pair per upload.
    Used by the light client's API here and by the web application's uploader."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(16)

    def _folder(self) -> Path:
        self.root.mkdir(mode=0o700, exist_ok=True)
        return self.root

    def create(self, size: int, account: int, **extra: object) -> str:
        if not 0 < size <= MAX_UPLOAD:
            raise web.HTTPBadRequest(text=f"size must be between 1 and {MAX_UPLOAD} bytes")
        upload_id = self.new_id()
        folder = self._folder()
        (folder / f"{upload_id}.json").write_text(
            json.dumps({"size": size, "account": account, **extra})
        )
        (folder / f"{upload_id}.part").touch(mode=0o600)
        return upload_id

    def owned(self, upload_id: str, account: int) -> tuple[Path, Path, dict[str, Any]]:
        """(part file, meta file, metadata) of an unfinished upload of ``account``."""
        if not _ID.match(upload_id):
            raise web.HTTPNotFound(text="no such upload")
        folder = self._folder()
        part, meta = folder / f"{upload_id}.part", folder / f"{upload_id}.json"
        if not meta.exists():
            raise web.HTTPNotFound(text="no such upload (finished, or unknown)")
        info: dict[str, Any] = json.loads(meta.read_text())
        if info["account"] != account:
            raise web.HTTPNotFound(text="no such upload")
        return part, meta, info

    @staticmethod
    async def append(request: web.Request, part: Path, info: dict[str, Any]) -> int | None:
        """Append the request's body at ``Upload-Offset``; the new offset, or None when
        the offset is not where the upload stands (the client asks again and resumes)."""
        offset = os.path.getsize(part)  # noqa: ASYNC240 - one stat of a local file
        try:
            claimed = int(request.headers.get("Upload-Offset", "-1"))
        except ValueError:
            claimed = -1
        if claimed != offset:
            return None
        data = await read_body(request, MAX_CHUNK)
        if offset + len(data) > info["size"]:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_CHUNK, actual_size=len(data))
        with part.open("ab") as f:
            f.write(data)
        return offset + len(data)


def take_in(node_root: Path, part: Path, account: int) -> dict[str, object]:
    """The finished upload into the intake: the studies it makes are ``account``'s."""
    archive = part.with_suffix(".zip")
    part.rename(archive)
    try:
        report = importer_for(node_root, trust_deidentified=True, owner=account).run([archive])
    finally:
        archive.unlink(missing_ok=True)
    return {
        "count": len(report.taken),
        "taken": [r.sop_uid for r in report.taken],
        "studies": report.studies,
        "rejected": [{"name": r.name.split("!")[-1], "reason": r.reason} for r in report.rejected],
        "burned_in": sum(1 for r in report.taken if r.burned_in),
    }
