"""Resumable uploads kept on the node until they are whole, then taken into the intake:
the folder both the light client's API (`api/uploads.py`) and the web application's
uploader (`web/new_case.py`) write to.

What a caller sends is checked here, strictly, before anything is made: a size is a JSON
integer (not 1.5, not true, not 1e309) between 1 byte and ``MAX_UPLOAD``; a file's name is
text without control characters, at most 255 characters, and only ever shown, never part
of a path. One request at a time writes an upload: a second PATCH while one is writing,
or one at an offset that is not where the upload stands, answers 409 with the offset.
Refusals are ``UploadRefused``: a status and a catalogue key, said in the caller's language.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

from tsfnode.bodies import read_body
from tsfnode.errors import NodeError
from tsfnode.i18n import N_, texts
from tsfnode.intake.importer import ImportReport, importer_for

MAX_UPLOAD = 8 * 1024**3
MAX_CHUNK = 8 * 1024**2
MAX_NAME = 255
MAX_REQUEST = 64 * 1024  # the JSON that starts an upload
_ID = re.compile(r"^[0-9a-f]{32}$")


class UploadRefused(NodeError):
    """A request about an upload that cannot be done: ``status`` is its HTTP status,
    ``key`` (with ``values``) the catalogue text that says why."""

    def __init__(self, status: int, key: str, **values: object) -> None:
        super().__init__(texts("en")(key, **values), key=key, values=values)
        self.status = status

    def say(self, lang: str) -> str:
        assert self.key is not None  # noqa: S101 - always given
        return texts(lang)(self.key, **self.values)


def parse_new_upload(data: bytes, *, with_name: bool) -> dict[str, Any]:
    """The JSON that starts an upload: ``{"size": N}`` (and ``"name"`` when ``with_name``,
    the web uploader's), checked; anything else is an ``UploadRefused`` (400) naming what
    is wrong. Other keys are returned as they are, for the caller to check."""
    if len(data) > MAX_REQUEST:
        raise UploadRefused(400, N_("upload_json_invalid"))
    try:
        body = json.loads(data, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UploadRefused(400, N_("upload_json_invalid")) from None
    if not isinstance(body, dict):
        raise UploadRefused(400, N_("upload_json_invalid"))
    size = body.get("size")
    if type(size) is not int or not 0 < size <= MAX_UPLOAD:
        raise UploadRefused(400, N_("upload_size_invalid"), limit=MAX_UPLOAD)
    if with_name:
        body["name"] = checked_name(body.get("name"))
    return dict(body)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity, -Infinity


def checked_name(name: object) -> str:
    """A file's name as the person gave it, to show them: text of 1 to 255 characters
    without control characters (a NUL, a new line...); its last path part only."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise UploadRefused(400, N_("upload_name_invalid"), limit=MAX_NAME)
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise UploadRefused(400, N_("upload_name_invalid"), limit=MAX_NAME)
    return name.replace("\\", "/").rsplit("/", 1)[-1] or "file"


class UploadFolder:
    """Resumable uploads kept in ``DIR/uploads/``: ``ID.part`` (the bytes so far) and
    ``ID.json`` (size, owner's account, and what the caller adds), one pair per upload,
    named by ids the node made. Used by the light client's API here and by the web
    application's uploader."""

    # The uploads a request is writing right now, by their part file. One process
    # serves a node directory (node.lock), and the check-and-add below runs without an
    # await between them in the event loop's thread: a second writer is refused.
    _writing: ClassVar[set[Path]] = set()

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(16)

    def _folder(self) -> Path:
        self.root.mkdir(mode=0o700, exist_ok=True)
        return self.root

    def create(self, size: int, account: int, **extra: object) -> str:
        if type(size) is not int or not 0 < size <= MAX_UPLOAD:
            raise UploadRefused(400, N_("upload_size_invalid"), limit=MAX_UPLOAD)
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

    @contextlib.contextmanager
    def writing(self, part: Path) -> Iterator[None]:
        """Held by the one request writing ``part`` (its body, then its import); a second
        one meanwhile is refused (409, the client asks where the upload stands)."""
        if part in UploadFolder._writing:
            raise UploadRefused(409, N_("upload_busy"))
        UploadFolder._writing.add(part)
        try:
            yield
        finally:
            UploadFolder._writing.discard(part)

    @staticmethod
    async def append(request: web.Request, part: Path, info: Mapping[str, Any]) -> int | None:
        """Append the request's body at ``Upload-Offset``; the new offset, or None when
        the offset is not where the upload stands (the client asks again and resumes).
        The caller holds ``writing(part)``."""
        offset = os.path.getsize(part)  # noqa: ASYNC240 - one stat of a local file
        claimed = request.headers.get("Upload-Offset", "")
        if not claimed.isascii() or not claimed.isdigit() or int(claimed) != offset:
            return None
        data = await read_body(request, MAX_CHUNK)
        if offset + len(data) > info["size"]:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_CHUNK, actual_size=len(data))
        with part.open("ab") as f:
            f.write(data)
        return offset + len(data)


def take_in(node_root: Path, part: Path, account: int) -> ImportReport:
    """The finished upload into the intake: the studies it makes are ``account``'s. The
    part file stays where it is (the caller deletes it once the import is done): an
    import that fails for an unforeseen reason can be asked for again."""
    return importer_for(node_root, owner=account).run([part])


def report_json(report: ImportReport, lang: str) -> dict[str, object]:
    """What an upload's import answers: the instances taken, the studies, and each file
    refused with its reason in ``lang``."""
    return {
        "count": len(report.taken),
        "taken": [r.sop_uid for r in report.taken],
        "studies": report.studies,
        "rejected": [
            {"name": shown_name(r.name), "reason": r.say(lang), "key": r.key}
            for r in report.rejected
        ],
        "burned_in": sum(1 for r in report.taken if r.burned_in),
    }


def shown_name(name: str) -> str:
    """What the sender is shown of a refused input's name: the member's path inside
    their archive, never a path on the node's disk."""
    return name.split("!", 1)[1] if "!" in name else "upload"
