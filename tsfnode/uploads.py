"""Resumable uploads from a sender's light client (`tsfnode send`), on the local API.

    POST  /api/v1/uploads            {"size": N}        -> 201 {"id", "offset": 0}
    GET   /api/v1/uploads/{id}                          -> {"id", "offset", "size"}
    PATCH /api/v1/uploads/{id}  Upload-Offset: k, bytes -> {"offset"} (409 if k is not it)

When the last byte arrives the node takes the archive into its intake. What arrives was
de-identified on the sender's computer (same code, the pseudonym map stays there); the
node checks it says so, and de-identifies anything that does not. Every call needs a
sender's bearer token (`tsfnode account token`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from tsfnode.accounts import check_token
from tsfnode.appkeys import NODE_DIR, STORE
from tsfnode.bodies import read_body
from tsfnode.logs import log
from tsfnode.peering import now_ms

MAX_UPLOAD = 8 * 1024**3
MAX_CHUNK = 8 * 1024**2
_ID = re.compile(r"^[0-9a-f]{32}$")


async def sender_of(request: web.Request) -> tuple[int, str]:
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip()
    found = await check_token(request.config_dict[STORE], token, purpose="send", now=now_ms())
    if found is None or found[2] not in ("sender", "admin"):
        raise web.HTTPUnauthorized(
            text="a valid sender token is needed (tsfnode account token)",
            headers={"WWW-Authenticate": 'Bearer realm="tsfnode"'},
        )
    return found[0], found[1]


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


def folder_of(request: web.Request) -> UploadFolder:
    return UploadFolder(request.config_dict[NODE_DIR].root / "uploads")


async def create(request: web.Request) -> web.Response:
    account, _ = await sender_of(request)
    try:
        body = await request.json()
        size = int(body["size"])
    except (ValueError, KeyError, TypeError):
        raise web.HTTPBadRequest(text='send {"size": <bytes>}') from None
    upload_id = folder_of(request).create(size, account)
    return web.json_response({"id": upload_id, "offset": 0}, status=201)


async def status(request: web.Request) -> web.Response:
    account, _ = await sender_of(request)
    part, _meta, info = folder_of(request).owned(request.match_info["id"], account)
    return web.json_response(
        {"id": request.match_info["id"], "offset": part.stat().st_size, "size": info["size"]}
    )


async def append(request: web.Request) -> web.Response:
    account, username = await sender_of(request)
    uploads = folder_of(request)
    part, meta, info = uploads.owned(request.match_info["id"], account)
    offset = await uploads.append(request, part, info)
    if offset is None:
        return web.json_response(
            {"offset": part.stat().st_size, "error": "offset mismatch"}, status=409
        )
    if offset < info["size"]:
        return web.json_response({"offset": offset})
    report = await asyncio.to_thread(_take_in, request.config_dict[NODE_DIR].root, part)
    part.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)
    log("upload received", account=username, files=report["count"])
    return web.json_response({"offset": offset, "done": True, **report})


def _take_in(node_root: Path, part: Path) -> dict[str, object]:
    from tsfnode.intake.cli import importer_for

    archive = part.with_suffix(".zip")
    part.rename(archive)
    try:
        report = importer_for(node_root, trust_deidentified=True).run([archive])
    finally:
        archive.unlink(missing_ok=True)
    return {
        "count": len(report.taken),
        "taken": [r.sop_uid for r in report.taken],
        "studies": report.studies,
        "rejected": [{"name": r.name.split("!")[-1], "reason": r.reason} for r in report.rejected],
        "burned_in": sum(1 for r in report.taken if r.burned_in),
    }


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/uploads", create)
    app.router.add_get("/v1/uploads/{id}", status)
    app.router.add_patch("/v1/uploads/{id}", append)
