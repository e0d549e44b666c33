"""STOW-RS (PS3.18 §10.5): the reader's workstation stores what it made back into a case.

    POST /dicomweb/studies            multipart/related; type="application/dicom"
    POST /dicomweb/studies/{study}    the same, every instance of that study

Only the instances a reader makes (cases/reader_images.py ``READER_CLASSES``: key object
selections, presentation states, SR, secondary captures, an encapsulated PDF), only into
a case the caller may report on here (the case table's report rule, roles from
cases/policy.py), found by the instance's Study Instance UID among the studies of the
cases the caller sees (the same catalogue as QIDO, index.py). ``attach_instance`` is the
one way in, for STOW-RS and for the C-STORE of a bound workstation (qr.py).

The answer is the Store Instances Response Module in DICOM JSON: ReferencedSOPSequence
for the instances kept (or already held with the same bytes), FailedSOPSequence with a
FailureReason for the others, and a ``Warning`` header (``299 tsfnode: "..."``) per
failure saying why in the caller's language, ``MAX_WARNINGS`` at most (the last then
says how many more parts were refused: clients refuse an answer of more than 100
headers, and the failures are all in FailedSOPSequence); 200 when every instance was
kept, 202 when some were, 409 when none was; 415 for a body that is not
multipart/related of application/dicom; 413 for a body beyond ``MAX_BODY_BYTES`` (from
its Content-Length, else as soon as it is read past it); 507 when the node's disk is
full as a part is written (with what was stored before it, as for 413). Only a DICOMweb
token stores (Bearer, or Basic with the token): the web session's cookie, which a page
elsewhere might make a browser send, is refused for STOW (403).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.helpers import ChainMapProxy

from tsfnode.appkeys import CASES, NODE_DIR
from tsfnode.cases.images import Listings
from tsfnode.cases.reader_images import (
    CANNOT_UNDERSTAND,
    DOES_NOT_MATCH,
    MAX_INSTANCE_BYTES,
    NOT_AUTHORIZED,
    OUT_OF_RESOURCES,
    READER_CLASSES,
    ReaderInstance,
    Refusal,
    incoming_dir,
    named_in,
    parse_instance,
)
from tsfnode.clock import request_now
from tsfnode.dicomweb.caller import Person, language_of, person_of, refused, url_of
from tsfnode.dicomweb.index import CATALOGUES, Catalogue, catalogue_of
from tsfnode.dicomweb.media import DICOM_JSON
from tsfnode.i18n import N_, texts
from tsfnode.logs import log

MAX_BODY_BYTES = 4 * MAX_INSTANCE_BYTES  # one request: a few instances of the reader's
MAX_PARTS = 256
MAX_WARNINGS = 10  # Warning headers in an answer, the last one then counting the rest
SPOOL_CHUNK = 1 << 20  # a part is written to its file a MiB at a time
# Instances read into memory at once per node (up to MAX_INSTANCE_BYTES each, as they
# are parsed and attached): the parts themselves are written to DIR/reader_images/
# .incoming/ as they come, outside this bound, so a client sending slowly holds no slot
# (and its connection is closed by app.py's slow_bodies if it stops sending).
STOWING = web.AppKey("dicomweb_stowing", asyncio.Semaphore)
STOWING_AT_ONCE = 1


async def case_of_study(
    app: ChainMapProxy, listings: Listings[Catalogue], person: bytes, study: str, now: int
) -> bytes | None:
    """The case, among those ``person`` sees (policy.py), one of whose studies is
    ``study``; None if there is none."""
    for row in await app[CASES].visible(person, now):
        found = await catalogue_of(app, listings, row.case_id)
        if study in found.by_study:
            return row.case_id
    return None


async def case_holding_study(app: ChainMapProxy, listings: Listings[Catalogue], study: str) -> bool:
    """Whether ``study`` is a study of a case this node holds as a copy (a reader's)."""
    cases = app[CASES]
    for row in await cases.rows.every_case():
        if row.role == "copy":
            found = await catalogue_of(app, listings, row.case_id)
            if study in found.by_study:
                return True
    return False


async def attach_instance(
    app: ChainMapProxy,
    listings: Listings[Catalogue],
    person: bytes,
    data: bytes,
    via: str,
    now: int,
    study: str | None = None,
) -> tuple[ReaderInstance, bool]:
    """Attach ``data`` to the case of its study as the reader's (True: kept now, False:
    held already with the same bytes); Refusal naming why otherwise, nothing kept."""
    instance = parse_instance(data)
    if study is not None and instance.study_uid != study:
        raise Refusal(DOES_NOT_MATCH, N_("reader_image_other_study"), sop_uid=instance.sop_uid,
                      sop_class=instance.sop_class)  # fmt: skip
    case_id = await case_of_study(app, listings, person, instance.study_uid, now)
    try:
        if case_id is None:
            raise Refusal(NOT_AUTHORIZED, N_("reader_image_not_yours"))
        kept = await app[CASES].attach(case_id, person, instance, via, now)
    except Refusal as refusal:
        refusal.sop_uid, refusal.sop_class = instance.sop_uid, instance.sop_class
        raise
    return instance, kept


def _too_large(request: web.Request, size: int) -> web.HTTPRequestEntityTooLarge:
    """413, saying the limit in the caller's language."""
    text = texts(language_of(request) or "en")(
        N_("stow_too_large"), limit=MAX_BODY_BYTES // (1024 * 1024)
    )
    return web.HTTPRequestEntityTooLarge(
        max_size=MAX_BODY_BYTES, actual_size=size, text=f"413: {text}"
    )


def _element(vr: str, value: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": [value]}


def _is_dicom_parts(content_type: str) -> bool:
    """multipart/related with type application/dicom (PS3.18 §10.5.1.1: the only one
    this node takes: the reader's instances whole, not metadata and bulk data)."""
    main, *params = (p.strip() for p in content_type.split(";"))
    if main.lower() != "multipart/related":
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "type":
            return value.strip().strip('"').lower() == "application/dicom"
    return False


class _RequestTooLarge(Exception):
    """The request went past ``MAX_BODY_BYTES`` in the part being read."""


class _DiskFull(Exception):
    """The node's disk (or its quota) had no room for the part being written."""


async def _spool_part(part: BodyPartReader, path: Path, room: int) -> int:
    """Write ``part`` to ``path`` as it comes, up to ``MAX_INSTANCE_BYTES + 1`` bytes
    (one more says it is too large); the rest of a part too large is read and dropped.
    Its size; _RequestTooLarge once it goes past ``room``, what is left of the
    request's limit."""
    size, buffer = 0, bytearray()
    out = await asyncio.to_thread(path.open, "wb")
    try:
        while piece := await part.read_chunk(SPOOL_CHUNK):
            size += len(piece)
            if size > room:
                raise _RequestTooLarge
            if size - len(piece) <= MAX_INSTANCE_BYTES:
                buffer += piece[: MAX_INSTANCE_BYTES + 1 - (size - len(piece))]
            if len(buffer) >= SPOOL_CHUNK:
                await _write(out, buffer)
                buffer = bytearray()
        await _write(out, buffer)
    finally:
        with contextlib.suppress(OSError):  # what was buffered could not be written
            await asyncio.to_thread(out.close)
    return size


async def _write(out: BinaryIO, data: bytearray) -> None:
    try:
        await asyncio.to_thread(out.write, data)
        await asyncio.to_thread(out.flush)  # ENOSPC is seen here, not at close
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _DiskFull from exc
        raise


async def _store_part(
    request: web.Request, person: Person, path: Path, size: int, via: str, now: int,
    study: str | None, media: str,
) -> tuple[ReaderInstance, bool]:  # fmt: skip
    """The part written at ``path`` attached as an instance of the reader's (True: kept
    now, False: held already); Refusal naming why otherwise."""
    if media.lower() != "application/dicom":
        raise Refusal(CANNOT_UNDERSTAND, N_("reader_image_not_dicom"))
    if size > MAX_INSTANCE_BYTES:  # never read whole: named from its head if it can be
        sop_class, sop_uid = await asyncio.to_thread(named_in, path)
        raise Refusal(OUT_OF_RESOURCES, N_("reader_image_too_large"), sop_uid=sop_uid,
                      sop_class=sop_class)  # fmt: skip
    async with request.app[STOWING]:  # the instance in memory: one request at a time
        data = await asyncio.to_thread(path.read_bytes)
        return await attach_instance(
            request.config_dict, request.app[CATALOGUES], person.key, data, via, now, study
        )


async def store_instances(request: web.Request) -> web.Response:
    """STOW-RS: each part an instance of the reader's, attached to its case."""
    person = await person_of(request)
    if person.via != "token":  # a change made with the session's cookie alone: refused
        raise refused(request, web.HTTPForbidden, N_("stow_token_only"))
    study = request.match_info.get("study")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _too_large(request, request.content_length)
    if not _is_dicom_parts(request.headers.get("Content-Type", "")):
        raise refused(request, web.HTTPUnsupportedMediaType, N_("stow_media_type"))
    try:
        reader = MultipartReader(request.headers, request.content)
    except (ValueError, AssertionError):  # no boundary, say
        raise refused(request, web.HTTPBadRequest, N_("stow_media_type")) from None
    answer = _Answer(say=texts(language_of(request) or "en"))
    path = await asyncio.to_thread(_spool_file, request.config_dict[NODE_DIR].root)
    try:
        return await _store_parts(request, person, reader, path, study, answer)
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


async def clear_incoming(app: web.Application) -> None:
    """At the node's start (no request in progress): the parts a node stopped while
    receiving them left behind are removed."""
    await asyncio.to_thread(shutil.rmtree, incoming_dir(app[NODE_DIR].root), True)


def _spool_file(root: Path) -> Path:
    """A new file of the node's own, where a request's parts are written one by one."""
    incoming = incoming_dir(root)
    incoming.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="stow-", suffix=".part", dir=incoming)
    os.close(handle)
    return Path(name)


@dataclass
class _Answer:
    """The Store Instances Response Module as it is made, part by part."""

    say: Callable[..., str]
    stored: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cut: bool = False

    def count(self) -> int:
        return len(self.stored) + len(self.failed)

    def refused(self, refusal: Refusal) -> None:
        item = {"00081197": _element("US", refusal.status)}
        if refusal.sop_class:
            item["00081150"] = _element("UI", refusal.sop_class)
        if refusal.sop_uid:
            item["00081155"] = _element("UI", refusal.sop_uid)
        self.failed.append(item)
        self.warnings.append(self.say(refusal.key, **refusal.values))

    def kept(self, instance: ReaderInstance) -> None:
        self.stored.append(
            {
                "00081150": _element("UI", instance.sop_class),
                "00081155": _element("UI", instance.sop_uid),
            }
        )

    def response(self, request: web.Request, study: str | None, status: int) -> web.Response:
        body: dict[str, Any] = {}
        if study is not None:
            body["00081190"] = _element("UR", url_of(request, "studies", study))
        if self.stored:
            body["00081199"] = {"vr": "SQ", "Value": self.stored}
        if self.failed:
            body["00081198"] = {"vr": "SQ", "Value": self.failed}
        # the media type alone, without a charset (JSON is UTF-8): clients compare it whole
        response = web.Response(
            status=status, body=json.dumps(body).encode(), headers={"Content-Type": DICOM_JSON}
        )
        for warning in self.shown_warnings():
            response.headers.add("Warning", f'299 tsfnode: "{_quoted(warning)}"')
        return response

    def shown_warnings(self) -> list[str]:
        """The warnings, ``MAX_WARNINGS`` at most: past it, the first ones and a last
        one counting the refusals not named (the last warning, saying why the request
        was cut, is always kept)."""
        if len(self.warnings) <= MAX_WARNINGS:
            return self.warnings
        cut = self.warnings[-1] if self.cut else None
        named = self.warnings[: MAX_WARNINGS - 1 - (cut is not None)]
        more = len(self.warnings) - len(named) - (cut is not None)
        shown = [*named, self.say(N_("stow_more_refused"), count=more)]
        return [*shown, cut] if cut is not None else shown

    def cut_short(self, warning: str) -> None:
        """The request was not read to its end: ``warning`` says why (shown last)."""
        self.warnings.append(warning)
        self.cut = True


async def _store_parts(
    request: web.Request, person: Person, reader: MultipartReader, path: Path,
    study: str | None, answer: _Answer,
) -> web.Response:  # fmt: skip
    """Each part written to ``path`` as it comes, then attached (or refused) before the
    next is read; a request that goes past its limit is answered 413 with what was
    stored and refused before it (all of it true: nothing after was read)."""
    now = request_now(request)
    via = f"stow {person.via} account {person.account_id}"
    total = 0
    while True:
        try:
            part = await reader.next()
        except (ValueError, AssertionError):  # a body that breaks the multipart layout
            raise refused(request, web.HTTPBadRequest, N_("stow_media_type")) from None
        if part is None:
            break
        if (
            not isinstance(part, BodyPartReader)
            or len(answer.stored) + len(answer.failed) >= MAX_PARTS
        ):
            raise refused(request, web.HTTPBadRequest, N_("stow_parts"), limit=MAX_PARTS)
        try:
            size = await _spool_part(part, path, MAX_BODY_BYTES - total)
        except _RequestTooLarge:
            if not answer.count():
                raise _too_large(request, total + 1) from None
            answer.cut_short(
                answer.say(N_("stow_too_large_partway"), limit=MAX_BODY_BYTES // (1024 * 1024))
            )
            log("stow request too large", account=person.account_id, kept=len(answer.stored))
            return answer.response(request, study, web.HTTPRequestEntityTooLarge.status_code)
        except _DiskFull:
            log("stow refused: disk full", account=person.account_id, kept=len(answer.stored))
            if not answer.count():
                raise refused(request, web.HTTPInsufficientStorage, N_("stow_disk_full")) from None
            answer.cut_short(answer.say(N_("stow_disk_full_partway")))
            return answer.response(request, study, web.HTTPInsufficientStorage.status_code)
        total += size
        media = part.headers.get("Content-Type", "application/dicom").split(";")[0].strip()
        try:
            instance, kept = await _store_part(request, person, path, size, via, now, study, media)
        except Refusal as refusal:
            answer.refused(refusal)
            log("stow refused", account=person.account_id, status=f"{refusal.status:04X}",
                reason=refusal.key)  # fmt: skip
            continue
        answer.kept(instance)
        log("stow stored", account=person.account_id, kept=kept,
            sop_class=READER_CLASSES[instance.sop_class])  # fmt: skip
    if not answer.count():
        raise refused(request, web.HTTPBadRequest, N_("stow_empty"))
    status = 200 if not answer.failed else 202 if answer.stored else 409
    return answer.response(request, study, status)


def _quoted(text: str) -> str:
    """A reason as an HTTP quoted-string (RFC 9110 §5.6.4), in ASCII with French
    accents escaped as they are percent-encoded in the standard's examples."""
    clean = text.replace("\\", "\\\\").replace('"', '\\"')
    return clean.encode("ascii", "backslashreplace").decode("ascii")


def add_stow_routes(app: web.Application, study: str) -> None:
    app[STOWING] = asyncio.Semaphore(STOWING_AT_ONCE)
    app.router.add_post("/studies", store_instances)
    app.router.add_post(study, store_instances)
