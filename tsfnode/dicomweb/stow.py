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
failure saying why in the caller's language; 200 when every instance was kept, 202 when
some were, 409 when none was; 415 for a body that is not multipart/related of
application/dicom; 413 for a body beyond ``MAX_BODY_BYTES`` (from its Content-Length,
else as soon as it is read past it). Only a DICOMweb token stores (Bearer, or Basic with
the token): the web session's cookie, which a page elsewhere might make a browser send,
is refused for STOW (403).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.helpers import ChainMapProxy

from tsfnode.appkeys import CASES
from tsfnode.cases.images import Listings
from tsfnode.cases.reader_images import (
    CANNOT_UNDERSTAND,
    DOES_NOT_MATCH,
    MAX_INSTANCE_BYTES,
    NOT_AUTHORIZED,
    READER_CLASSES,
    ReaderInstance,
    Refusal,
    parse_instance,
)
from tsfnode.clock import request_now
from tsfnode.dicomweb.caller import language_of, person_of, refused, url_of
from tsfnode.dicomweb.index import CATALOGUES, Catalogue, catalogue_of
from tsfnode.dicomweb.media import DICOM_JSON
from tsfnode.i18n import N_, texts
from tsfnode.logs import log

MAX_BODY_BYTES = 4 * MAX_INSTANCE_BYTES  # one request: a few instances of the reader's
MAX_PARTS = 256


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


async def _read_part(part: BodyPartReader, room: int) -> bytes:
    data = bytearray()
    while piece := await part.read_chunk(1 << 20):
        data += piece
        if len(data) > room:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=len(data))
    return bytes(data)


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
    now = request_now(request)
    say = texts(language_of(request) or "en")
    via = f"stow {person.via} account {person.account_id}"
    stored: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    warnings: list[str] = []
    total = 0
    try:
        reader = MultipartReader(request.headers, request.content)
    except (ValueError, AssertionError):  # no boundary, say
        raise refused(request, web.HTTPBadRequest, N_("stow_media_type")) from None
    while True:
        try:
            part = await reader.next()
        except (ValueError, AssertionError):  # a body that breaks the multipart layout
            raise refused(request, web.HTTPBadRequest, N_("stow_media_type")) from None
        if part is None:
            break
        if not isinstance(part, BodyPartReader) or len(stored) + len(failed) >= MAX_PARTS:
            raise refused(request, web.HTTPBadRequest, N_("stow_parts"), limit=MAX_PARTS)
        try:
            data = await _read_part(part, MAX_BODY_BYTES - total)
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(request, total + 1) from None
        total += len(data)
        try:
            media = part.headers.get("Content-Type", "application/dicom").split(";")[0].strip()
            if media.lower() != "application/dicom":
                raise Refusal(CANNOT_UNDERSTAND, N_("reader_image_not_dicom"))
            instance, kept = await attach_instance(
                request.config_dict, request.app[CATALOGUES], person.key, data, via, now, study
            )
        except Refusal as refusal:
            item = {"00081197": _element("US", refusal.status)}
            if refusal.sop_class:
                item["00081150"] = _element("UI", refusal.sop_class)
            if refusal.sop_uid:
                item["00081155"] = _element("UI", refusal.sop_uid)
            failed.append(item)
            warnings.append(say(refusal.key, **refusal.values))
            log("stow refused", account=person.account_id, status=f"{refusal.status:04X}",
                reason=refusal.key)  # fmt: skip
            continue
        stored.append(
            {
                "00081150": _element("UI", instance.sop_class),
                "00081155": _element("UI", instance.sop_uid),
            }
        )
        log("stow stored", account=person.account_id, kept=kept,
            sop_class=READER_CLASSES[instance.sop_class])  # fmt: skip
    if not stored and not failed:
        raise refused(request, web.HTTPBadRequest, N_("stow_empty"))
    answer: dict[str, Any] = {}
    if study is not None:
        answer["00081190"] = _element("UR", url_of(request, "studies", study))
    if stored:
        answer["00081199"] = {"vr": "SQ", "Value": stored}
    if failed:
        answer["00081198"] = {"vr": "SQ", "Value": failed}
    status = 200 if not failed else 202 if stored else 409
    headers = [("Warning", f'299 tsfnode: "{_quoted(w)}"') for w in warnings]
    # the media type alone, without a charset (JSON is UTF-8): clients compare it whole
    response = web.Response(
        status=status, body=json.dumps(answer).encode(), headers={"Content-Type": DICOM_JSON}
    )
    for name, value in headers:
        response.headers.add(name, value)
    return response


def _quoted(text: str) -> str:
    """A reason as an HTTP quoted-string (RFC 9110 §5.6.4), in ASCII with French
    accents escaped as they are percent-encoded in the standard's examples."""
    clean = text.replace("\\", "\\\\").replace('"', '\\"')
    return clean.encode("ascii", "backslashreplace").decode("ascii")


def add_stow_routes(app: web.Application, study: str) -> None:
    app.router.add_post("/studies", store_instances)
    app.router.add_post(study, store_instances)
