"""Cases, pairs and figures on the local API (a bearer token of the person's account).

POST /api/v1/cases                         {study_uid, routing, target, form, over_quota?,
                                            reading_delay_hours?, local_reference?} (a
                                            sender, on a study they may use:
                                            intake/owners.py; form: the keys of
                                            protocol/caseform.py's CASE_FORM;
                                            local_reference: kept on this node only)
GET  /api/v1/cases                         the cases this person may see (cases/policy.py;
                                            any other case answers 404, as no such case)
GET  /api/v1/cases/{id}                    one case: form (every key of CASE_FORM, null if
                                            unused), age {value, unit} as the sender gave
                                            it, documents, the real patient (on the
                                            sender's node, for the sender only)
POST /api/v1/cases/{id}/claim|release|accept|decline|cancel|close
POST /api/v1/cases/{id}/assign             {reader}                  (a coordinator)
POST /api/v1/cases/{id}/report             {findings, impression, recommendations,
                                            image_quality, quality_reason, language}
POST /api/v1/cases/{id}/messages           {text}
POST /api/v1/cases/{id}/images             {study_uid}   (the sender adds images)
POST /api/v1/cases/{id}/evaluation         {relevant, useful, changed_management,
                                            teaching_consent?, comment}
GET  /api/v1/groups[?subspeciality=]       groups that could read a case, and their load
POST /api/v1/cases/{id}/teaching           {title}  (the reader, with the sender's consent)
GET  /api/v1/teaching                      the network's teaching library
GET  /api/v1/notifications
GET  /api/v1/pairs; POST /api/v1/pairs     {with, weekly_quota, reading_delay_hours}
POST /api/v1/pairs/{id}/accept|suspend|end
GET  /api/v1/metrics[?format=csv][&since_ms=][&until_ms=]   this node's figures
GET  /api/v1/metrics/network                  every node's signed figures, and sums
GET  /metrics                                  Prometheus text (operators)
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from protocol.errors import ProtocolError
from protocol.identity import Identity, PublicIdentity
from tsfnode.appkeys import CASES, NODE_DIR, STORE, TRANSCODINGS
from tsfnode.auth.accounts import person_of_account
from tsfnode.auth.gate import PRINCIPAL
from tsfnode.auth.sessions import TokenHolder
from tsfnode.bodies import read_json_object
from tsfnode.cases import pairs as pairs_module
from tsfnode.cases.metrics import (
    as_csv,
    group_suggestions,
    local_figures,
    network_figures,
    prometheus_text,
)
from tsfnode.cases.pairs import listed, propose
from tsfnode.cases.service import CaseService
from tsfnode.cases.teaching import library, publish
from tsfnode.clock import request_now
from tsfnode.errors import CaseError, NodeError
from tsfnode.i18n import N_, choose_language, texts
from tsfnode.store.transfers import TransferStore

MAX_JSON = 256 * 1024


async def person_of(request: web.Request) -> tuple[str, str, Identity]:
    """(username, role, person key) of the bearer token's account."""
    _, username, role, person = await caller_of(request)
    return username, role, person


async def caller_of(request: web.Request) -> tuple[int, str, str, Identity]:
    """(account id, username, role, person key) of the bearer token's account (the
    API's gate checked the token: ``token_holder``)."""
    holder = request[PRINCIPAL]
    assert isinstance(holder, TokenHolder)  # noqa: S101 - the gate put it there
    account, username, role = holder.account_id, holder.username, holder.role
    try:
        person = await person_of_account(
            request.config_dict[STORE], request.config_dict[NODE_DIR].people, username
        )
    except NodeError as exc:
        raise web.HTTPForbidden(text=str(exc)) from None
    return account, username, role, person


async def _json(request: web.Request) -> dict[str, Any]:
    return await read_json_object(request, MAX_JSON)


def _case_id(request: web.Request) -> bytes:
    try:
        case_id = bytes.fromhex(request.match_info["id"])
    except ValueError:
        case_id = b""
    if len(case_id) != 16:
        raise web.HTTPNotFound(text="no such case on this node")
    return case_id


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refused(request: web.Request, exc: NodeError) -> dict[str, Any]:
    """A refusal as the API answers it: the node's reason, its key, and the message in
    the caller's language (a reason without a key after the lead-in that says so)."""
    words = texts(choose_language(request))
    if exc.key is not None:
        message = words(exc.key, **exc.values)
    else:
        message = words(N_("refused"), detail=str(exc))
    return {"error": str(exc), "key": exc.key, "message": message}


def answering(handler: Handler) -> Handler:
    """The handler, with what cannot be done about a case answered as ``{"error":
    reason, "key": its catalogue key, "message": said in the caller's language}`` and its
    status (the reason in English for scripts, the message for a person: Accept-Language
    chooses, as for the pages); a study that cannot be sealed (not reviewed, not in the
    intake) is a 409."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except NodeError as exc:
            status = exc.status if isinstance(exc, CaseError) else 409
            return web.json_response(_refused(request, exc), status=status)

    return wrapped


async def submit(request: web.Request) -> web.Response:
    account, _, _, person = await caller_of(request)
    body = await _json(request)
    form = body.get("form")
    if not isinstance(form, dict):
        return web.json_response({"error": "form: the clinical form is missing"}, status=400)
    delay = body.get("reading_delay_hours")
    if delay is not None and (not isinstance(delay, int) or not 1 <= delay <= 1440):
        return web.json_response({"error": "reading_delay_hours: 1 to 1440"}, status=400)
    result = await request.config_dict[CASES].submit(
        person,
        account=account,
        study_uid=str(body.get("study_uid", "")),
        routing=str(body.get("routing", "")),
        target=str(body.get("target", "")),
        form=form,
        over_quota=bool(body.get("over_quota", False)),
        reading_delay_hours=delay,
        local_reference=str(body.get("local_reference", "")),
        now=request_now(request),
    )
    return web.json_response(result, status=201)


async def listing(request: web.Request) -> web.Response:
    _, _, person = await person_of(request)
    found = await request.config_dict[CASES].summaries(person.public.key, request_now(request))
    return web.json_response(found)


async def detail(request: web.Request) -> web.Response:
    _, _, person = await person_of(request)
    found = await request.config_dict[CASES].detail(
        _case_id(request), person.public.key, request_now(request)
    )
    return web.json_response(found)


async def act(request: web.Request) -> web.Response:
    _, _, person = await person_of(request)
    event = request.match_info["event"]
    reader = None
    note = ""
    if request.can_read_body:
        body = await _json(request)
        note = str(body.get("note", ""))[:2000]
        if event == "assign":
            try:
                reader = PublicIdentity.from_text(str(body.get("reader", ""))).key
            except ProtocolError:
                return web.json_response({"error": "reader: a reader's id"}, status=400)
    result = await request.config_dict[CASES].act(
        _case_id(request), person, event, request_now(request), reader=reader, note=note
    )
    return web.json_response(result, status=202 if "asked" in result else 200)


# A document the case service signs for a person: (service, case, person, fields, now)
Signs = Callable[[CaseService, bytes, Identity, dict[str, Any], int], Awaitable[dict[str, Any]]]


async def _signed(request: web.Request, sign: Signs) -> web.Response:
    """The caller signs a document made by the case service's ``sign`` (its report or
    its evaluation) from the posted fields: 201 with what the service answers."""
    _, _, person = await person_of(request)
    body = await _json(request)
    cases = request.config_dict[CASES]
    result = await sign(cases, _case_id(request), person, body, request_now(request))
    return web.json_response(result, status=201)


async def report(request: web.Request) -> web.Response:
    return await _signed(request, CaseService.report)


async def teach(request: web.Request) -> web.Response:
    _, _, person = await person_of(request)
    body = await _json(request)
    result = await publish(
        request.config_dict[CASES],
        _case_id(request),
        person,
        str(body.get("title", "")),
        request_now(request),
    )
    return web.json_response(result, status=201)


async def teaching_library(request: web.Request) -> web.Response:
    await person_of(request)
    return web.json_response(library(request.config_dict[CASES], request_now(request)))


async def add_images(request: web.Request) -> web.Response:
    account, _, _, person = await caller_of(request)
    body = await _json(request)
    result = await request.config_dict[CASES].add_images(
        _case_id(request),
        person,
        str(body.get("study_uid", "")),
        request_now(request),
        account=account,
    )
    return web.json_response(result, status=201)


async def message(request: web.Request) -> web.Response:
    _, _, person = await person_of(request)
    body = await _json(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return web.json_response({"error": "text: the message is empty"}, status=400)
    result = await request.config_dict[CASES].message(
        _case_id(request), person, text, request_now(request)
    )
    return web.json_response(result, status=201)


async def evaluation(request: web.Request) -> web.Response:
    return await _signed(request, CaseService.evaluate)


async def notifications(request: web.Request) -> web.Response:
    """What happened to this person's cases, and to their groups' (a case offered to
    the group, escalated): newest first; of the group's, only cases they may see."""
    _, _, person = await person_of(request)
    me = person.public.key
    view = request.config_dict[CASES].view(request_now(request))
    member = view.members.get(me)
    groups = {g for g, coordinators in view.coordinators.items() if me in coordinators}
    if member is not None:
        groups.add(member.body["group"])
    keys = [me, *sorted(groups)]
    service = request.config_dict[CASES]
    shown: dict[bytes, bool] = {}  # a group's notification: only of a case this person sees
    listed = []
    for found in await service.rows.notifications(keys, limit=200):
        case_id, p = found.case_id, found.person
        if p != me and case_id not in shown:
            try:
                await service.seen(case_id, me, request_now(request))
                shown[case_id] = True
            except CaseError:
                shown[case_id] = False
        if p == me or shown[case_id]:
            listed.append(
                {
                    "case_id": case_id.hex(),
                    "kind": found.kind,
                    "at_ms": found.at_ms,
                    "for": "me" if p == me else "group",
                }
            )
    return web.json_response(listed)


# --- pairs -------------------------------------------------------------------------------


async def pairs_list(request: web.Request) -> web.Response:
    _, _, person = await person_of(request)
    return web.json_response(
        await listed(request.config_dict[CASES], person.public.key, request_now(request))
    )


async def pairs_propose(request: web.Request) -> web.Response:
    _, _, person = await person_of(request)
    body = await _json(request)
    quota, delay = body.get("weekly_quota"), body.get("reading_delay_hours")
    if not isinstance(quota, int) or not isinstance(delay, int):
        return web.json_response(
            {"error": "weekly_quota and reading_delay_hours: whole numbers"}, status=400
        )
    if "pair_id" in body:
        return web.json_response(
            {"error": "pair_id: derived from the two people, not chosen"}, status=400
        )
    result = await propose(
        request.config_dict[CASES],
        person,
        other=str(body.get("with", "")),
        weekly_quota=quota,
        reading_delay_hours=delay,
        now=request_now(request),
    )
    return web.json_response(result, status=201)


async def pairs_change(request: web.Request) -> web.Response:
    _, _, person = await person_of(request)
    try:
        pair_id = bytes.fromhex(request.match_info["id"])
    except ValueError:
        return web.json_response({"error": "no such pair"}, status=404)
    action = request.match_info["action"]
    service = request.config_dict[CASES]
    if action == "accept":
        result = await pairs_module.accept(service, person, pair_id, request_now(request))
    else:
        status = {"suspend": "suspended", "end": "ended"}[action]
        result = await pairs_module.change(service, person, pair_id, status, request_now(request))
    return web.json_response(result)


# --- figures -----------------------------------------------------------------------------


MAX_TIME_MS = 2**53  # about 285,000 years after 1970


async def metrics(request: web.Request) -> web.Response:
    await person_of(request)
    bounds: dict[str, int | None] = {"since_ms": 0, "until_ms": None}
    for name in bounds:
        raw = request.query.get(name)
        if raw is None:
            continue
        try:
            value = int(raw) if len(raw) <= 20 else -1
        except ValueError:
            value = -1
        if not 0 <= value <= MAX_TIME_MS:  # beyond, SQLite's integers overflow (was a 500)
            return web.json_response(
                {"error": f"{name}: a time in ms since 1970, not {raw[:40]!r}"}, status=400
            )
        bounds[name] = value
    since, until = bounds["since_ms"] or 0, bounds["until_ms"]
    if until is not None and until <= since:
        return web.json_response({"error": "until_ms must come after since_ms"}, status=400)
    mine = await local_figures(request.config_dict[CASES], request_now(request), since, until)
    if request.query.get("format") == "csv":
        return web.Response(text=as_csv(mine), content_type="text/csv", charset="utf-8")
    return web.json_response(mine)


async def groups(request: web.Request) -> web.Response:
    """Groups that could read a case, least loaded first (?subspeciality=...)."""
    await person_of(request)
    wanted = request.query.get("subspeciality") or None
    return web.json_response(
        group_suggestions(request.config_dict[CASES], request_now(request), wanted)
    )


async def network_metrics(request: web.Request) -> web.Response:
    await person_of(request)
    return web.json_response(network_figures(request.config_dict[CASES], request_now(request)))


async def prometheus(request: web.Request) -> web.Response:
    """For the operator's Prometheus: counts and durations only, no case, no person."""
    mine = await local_figures(request.app[CASES], request_now(request))
    transfers = await TransferStore(request.app[STORE].db).counts()
    from prometheus_client import CONTENT_TYPE_LATEST

    return web.Response(
        body=prometheus_text(mine, transfers, request.app[TRANSCODINGS].figures()),
        headers={"Content-Type": CONTENT_TYPE_LATEST, "X-Content-Type-Options": "nosniff"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/cases", answering(submit))
    app.router.add_get("/v1/cases", answering(listing))
    app.router.add_get("/v1/cases/{id}", answering(detail))
    app.router.add_post("/v1/cases/{id}/report", answering(report))
    app.router.add_post("/v1/cases/{id}/messages", answering(message))
    app.router.add_post("/v1/cases/{id}/images", answering(add_images))
    app.router.add_post("/v1/cases/{id}/teaching", answering(teach))
    app.router.add_get("/v1/teaching", answering(teaching_library))
    app.router.add_post("/v1/cases/{id}/evaluation", answering(evaluation))
    app.router.add_post(
        "/v1/cases/{id}/{event:claim|assign|release|accept|decline|cancel|close}",
        answering(act),
    )
    app.router.add_get("/v1/notifications", answering(notifications))
    app.router.add_get("/v1/pairs", answering(pairs_list))
    app.router.add_post("/v1/pairs", answering(pairs_propose))
    app.router.add_post("/v1/pairs/{id}/{action:accept|suspend|end}", answering(pairs_change))
    app.router.add_get("/v1/metrics", answering(metrics))
    app.router.add_get("/v1/metrics/network", answering(network_metrics))
    app.router.add_get("/v1/groups", answering(groups))
