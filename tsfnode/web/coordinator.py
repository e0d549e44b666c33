"""Joining the network and coordinating a group, in the web application.

- ``/web/join`` (public): a radiologist applies to read for a group, or a doctor to send
  to it; they accept the network's charter and choose their password. Nothing is made
  until a coordinator of the group, signed in on this node, attests them: then their
  account and person key are made here and the member record, signed by the
  coordinator's person key, goes into the directory (gossip carries it). A declined
  application keeps its reason and nothing else happens.
- ``/web/coordinator``: the groups this coordinator runs: applications, members and
  their attestations, pairs, the cases held here (to assign, overdue), the nudges
  against silent pairs and members (``cases/nudges.py``, with their figures) and the
  quality dashboard (turnaround, usefulness, image quality and volume per pair, as
  charts). An application is e-mailed to the group's coordinators here
  (``cases/notices.py``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web

from bootstrap.tools import attest_member
from protocol.directory import View, pair_terms
from protocol.errors import LocalProtocolError
from protocol.identity import Identity, PublicIdentity
from tsfnode.appkeys import CASES, NODE_DIR, STORE
from tsfnode.auth.accounts import _USERNAME, hash_password, person_key_for
from tsfnode.auth.sessions import LOGIN_COOKIE, check_csrf, require, set_cookie
from tsfnode.cases.service import summary
from tsfnode.clock import request_now
from tsfnode.errors import CaseError, NodeError
from tsfnode.i18n import N_, Key, texts, translator
from tsfnode.logs import log
from tsfnode.mail.messages import Notice, title
from tsfnode.routes import Routes
from tsfnode.store.accounts import AccountStore, Application, UsernameTaken
from tsfnode.web.common import (
    done,
    language_of,
    names_of,
    person_labels,
    person_of,
    refusal,
    when,
    zone_of,
)
from tsfnode.web.common import render_page as render
from tsfnode.web.live import followed
from tsfnode.web.worklist import ListChoice

ROUTES = Routes()

MAX_PENDING_PER_SOURCE = 5  # a public form: at most this many waiting from one address
ATTESTATION_DAYS = 365
MEMBER_FIELDS = ("registration", "diploma", "facility", "equipment", "subspecialities")


def render_page(request: web.Request, name: str, **context: Any) -> web.Response:
    return render(request, name, **context)


def _groups_here(view: View, coordinators_here: set[bytes]) -> list[dict[str, Any]]:
    """Groups one of whose coordinators has an account on this node: they can review."""
    out = []
    for group, record in sorted(view.group_records.items(), key=lambda g: g[1].body["name"]):
        if group in view.groups and view.coordinators.get(group, set()) & coordinators_here:
            out.append(
                {
                    "key": PublicIdentity(group).text,
                    "name": record.body["name"],
                    "kind": record.body["kind"],
                    "subspecialities": list(record.body["subspecialities"]),
                }
            )
    return out


async def _coordinator_keys(request: web.Request) -> set[bytes]:
    return set(await _accounts(request).coordinator_keys())


def _accounts(request: web.Request) -> AccountStore:
    return AccountStore(request.config_dict[STORE].db)


# --- joining --------------------------------------------------------------------------


@ROUTES.get("/join")
async def join_page(
    request: web.Request,
    *,
    error: str | NodeError | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
    done: bool = False,
) -> web.Response:
    view = request.config_dict[CASES].view(request_now(request))
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    page = render_page(
        request,
        "join.html",
        groups=_groups_here(view, await _coordinator_keys(request)),
        csrf=token,
        error=error,
        values=values or {},
        done=done,
        status=status,
    )
    set_cookie(request, page, LOGIN_COOKIE, token)
    return page


def _application(form: dict[str, str], groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The application, checked field by field (NodeError names the first wrong one)."""
    role = form.get("role", "")
    if role not in ("reader", "sender"):
        raise NodeError("role: reader or sender", key=N_("join_error_role"))
    group = form.get("group", "")
    if group not in {g["key"] for g in groups}:
        raise NodeError("group: choose one of the groups listed", key=N_("join_error_group"))
    username = form.get("username", "").strip()
    if not _USERNAME.match(username):
        raise NodeError(
            "username: 2-64 lower-case letters, digits, '.', '_' or '-'",
            key=N_("join_error_username"),
        )
    name = form.get("display_name", "").strip()
    if not 2 <= len(name) <= 100:
        raise NodeError(
            "display_name: your name as colleagues know it (2-100 characters)",
            key=N_("join_error_display_name"),
        )
    if len(form.get("password", "")) < 10:
        raise NodeError("password: at least 10 characters", key=N_("join_error_password"))
    if form.get("password") != form.get("password_again"):
        raise NodeError(
            "password_again: the two passwords differ", key=N_("join_error_password_again")
        )
    if form.get("charter") != "yes":
        raise NodeError(
            "charter: the charter must be accepted to take part", key=N_("join_error_charter")
        )
    details: dict[str, Any] = {k: form.get(k, "").strip()[:200] for k in MEMBER_FIELDS}
    languages = [x for x in form.get("languages", "").replace(",", " ").split() if x][:16]
    if not languages or not all(2 <= len(x) <= 16 for x in languages):
        raise NodeError(
            "languages: the languages you read and write, e.g. fr en",
            key=N_("join_error_languages"),
        )
    details["languages"] = languages
    if role == "reader":
        if not (details["registration"] and details["diploma"]):
            raise NodeError(
                "registration: a reader gives the medical council number and diploma",
                key=N_("join_error_registration"),
            )
        try:
            capacity = int(form.get("weekly_capacity", ""))
        except ValueError:
            capacity = -1
        if not 1 <= capacity <= 1000:
            raise NodeError(
                "weekly_capacity: how many cases a week you can read (1-1000)",
                key=N_("join_error_capacity"),
            )
        details["weekly_capacity"] = capacity
    else:
        if not details["facility"]:
            raise NodeError(
                "facility: the hospital or health centre where you work",
                key=N_("join_error_facility"),
            )
        details["weekly_capacity"] = 0
    details["subspecialities"] = [
        x for x in details["subspecialities"].replace(",", " ").split() if x
    ][:16]
    language = form.get("language", "fr")
    return {
        "role": role,
        "group": group,
        "username": username,
        "display_name": name,
        "password": form["password"],
        "language": language if language in ("fr", "en") else "fr",
        "details": details,
    }


@ROUTES.post("/join")
async def apply(request: web.Request) -> web.Response:
    form = {k: str(v) for k, v in (await request.post()).items()}
    token = request.cookies.get(LOGIN_COOKIE, "")
    values = {k: v for k, v in form.items() if not k.startswith("password") and k != "csrf"}
    if not token or not secrets.compare_digest(form.get("csrf", ""), token):
        return await join_page(request, error=N_("form_expired"), values=values, status=403)
    accounts = _accounts(request)
    view = request.config_dict[CASES].view(request_now(request))
    groups = _groups_here(view, await _coordinator_keys(request))
    try:
        found = _application(form, groups)
        counts = await accounts.join_counts(found["username"], request.remote or "")
        if counts.account_exists or counts.pending_for_name:
            raise NodeError(
                "username: already taken on this node, choose another", key=N_("join_error_taken")
            )
        if counts.pending_from_source >= MAX_PENDING_PER_SOURCE:
            raise NodeError(
                "too many applications are waiting from this address", key=N_("join_error_too_many")
            )
    except NodeError as exc:
        return await join_page(request, error=exc, values=values, status=400)
    group_key = PublicIdentity.from_text(found["group"]).key
    application_id = await accounts.add_application(
        role=found["role"],
        group_key=group_key,
        username=found["username"],
        display_name=found["display_name"],
        password_hash=await asyncio.to_thread(hash_password, found["password"]),
        language=found["language"],
        details=json.dumps(found["details"], ensure_ascii=False),
        source=request.remote or "",
        now=request_now(request),
    )
    log("application received", role=found["role"])
    now = request_now(request)
    await request.config_dict[CASES].notices.application(
        application_id, group_key, found["role"], view, now
    )  # the group's coordinators here are told by e-mail, as they chose
    return await join_page(request, done=True)


# --- the coordinator's pages ----------------------------------------------------------


async def _coordinator(request: web.Request) -> tuple[Any, Identity, list[bytes]]:
    """The signed-in coordinator, their person key and the groups they coordinate."""
    session = await require(request, "coordinator")
    person = await person_of(request, session)
    view = request.config_dict[CASES].view(request_now(request))
    mine = sorted(g for g, keys in view.coordinators.items() if person.public.key in keys)
    return session, person, mine


@ROUTES.get("/coordinator")
async def coordinator_page(request: web.Request) -> web.Response:
    session, _, mine = await _coordinator(request)
    service = request.config_dict[CASES]
    now = request_now(request)
    view = service.view(now)
    lang = language_of(request, session)
    names = names_of(request)
    groups = []
    for group in mine:
        record = view.group_records[group]
        members = [
            {
                "name": m.body["display_name"],
                "role": m.body["role"],
                "registration": m.body["registration"],
                "diploma": m.body["diploma"],
                "facility": m.body["facility"],
                "subspecialities": texts(lang).specialities(m.body["subspecialities"]),
                "capacity": m.body["weekly_capacity"],
                "charter": texts(lang).date(m.body["charter_accepted"]),
                "expires": texts(lang).date(m.body["expires"]),
                "node": view.nodes[m.body["home_node"]].body["name"]
                if m.body["home_node"] in view.nodes
                else "",
            }
            for m in sorted(view.members.values(), key=lambda m: m.body["display_name"])
            if m.body["group"] == group
        ]
        readers = {k for k, m in view.members.items() if m.body["group"] == group}
        pairs = []
        for pair_id, doc in sorted(view.pairs.items()):
            terms = pair_terms(doc)
            if terms["reader"] in readers:
                pairs.append(
                    {
                        "id": pair_id.hex()[:8],
                        "pair_id": pair_id.hex(),  # the coordinator may suspend or end it
                        "reader": names.get(terms["reader"].hex(), "?"),
                        "sender": names.get(terms["sender"].hex(), "?"),
                        "quota": terms["weekly_quota"],
                        "delay": terms["reading_delay_hours"],
                        "status": terms["status"],
                        "this_week": await service.week_count(pair_id, now),
                    }
                )
        groups.append(
            {
                "key": PublicIdentity(group).text,
                "name": record.body["name"],
                "kind": record.body["kind"],
                "members": members,
                "pairs": pairs,
                "readers": sorted(
                    (
                        {"key": k.hex(), "name": label}
                        for k, label in person_labels(
                            view,
                            (
                                k
                                for k in readers
                                if view.members[k].body["role"] in ("reader", "coordinator")
                            ),
                        ).items()
                    ),
                    key=lambda r: r["name"],
                ),
            }
        )
    pending = [
        {
            "id": application.id,
            "role": application.role,
            "username": application.username,
            "display_name": application.display_name,
            "details": json.loads(application.details),
            "group": view.group_records[application.group_key].body["name"],
            "when": when(application.created_ms, lang, zone_of(request, session)),
        }
        for application in await _accounts(request).pending_applications()
        if application.group_key in mine
    ]
    choice = ListChoice.of(request.query, texts(lang))  # the cases to follow: sorted, filtered
    every = await _group_cases(request, mine, now, lang, zone_of(request, session))
    cases = choice.arrange(every)
    nudges = [
        {
            "kind": nudge.kind,
            "group": view.group_records[nudge.group].body["name"],
            "text": title(Notice(nudge.kind, None, nudge.figures), lang),
        }
        for nudge in await service.nudges(now)
        if nudge.group in mine and nudge.group in view.group_records
    ]
    return render_page(
        request,
        "coordinator.html",
        session=session,
        nudges=nudges,
        groups=groups,
        applications=pending,
        cases=cases,
        every=len(every),
        controls=choice.controls(every),
        charts=await _charts(request, mine, now, lang),
        error=_shown(request.query.get("error"), lang, request.query.get("values")),
        **await followed(request, session),
    )


async def _group_cases(
    request: web.Request, mine: list[bytes], now: int, lang: str, zone: ZoneInfo
) -> list[dict[str, Any]]:
    """The cases held here that were routed to these groups and still wait for a reader,
    or are overdue; with the group's readers to assign them to."""
    if not mine:
        return []
    names = names_of(request)
    view = request.config_dict[CASES].view(now)
    rows = await request.config_dict[CASES].rows.waiting_in_groups(mine)
    out = []
    for row in rows:
        case = summary(row)
        case["overdue"] = row.case.overdue(now)
        case["due"] = when(row.case.due_ms, lang, zone)
        case["reader_name"] = names.get(case["reader"] or "", "")
        case["group"] = PublicIdentity(row.case.target).text
        case["form"] = row.form
        case["modality"] = str(row.form.get("modality", ""))
        record = view.group_records.get(row.case.target)
        case["group_name"] = record.body["name"] if record is not None else ""
        out.append(case)
    return out


async def _charts(request: web.Request, mine: list[bytes], now: int, lang: str) -> dict[str, str]:
    """The quality dashboard of the groups' cases held here, as SVG charts."""
    import asyncio

    view = request.config_dict[CASES].view(now)
    readers = {k for k, m in view.members.items() if m.body["group"] in mine}
    pair_names = {}
    names = names_of(request)
    for pair_id, doc in view.pairs.items():
        terms = pair_terms(doc)
        if terms["reader"] in readers:
            reader = names.get(terms["reader"].hex(), "?")
            pair_names[pair_id] = f"{reader} / {names.get(terms['sender'].hex(), '?')}"
    rows = await request.config_dict[CASES].rows.every_case()
    ours = [
        r
        for r in rows
        if r.case.target in mine or (r.pair_id is not None and r.pair_id in pair_names)
    ]
    # matplotlib (tens of MiB) is loaded by the first chart drawn, not at the node's start
    from tsfnode.web.charts import quality_charts

    return await asyncio.to_thread(quality_charts, ours, pair_names, texts(lang), now)


@ROUTES.post("/coordinator/applications/{id:[0-9]+}/{action:attest|decline}")
async def decide(request: web.Request) -> web.Response:
    """Attest or decline an application."""
    session, person, mine = await _coordinator(request)
    form = await check_csrf(request, session)
    accounts = _accounts(request)
    found = await accounts.pending_applications(int(request.match_info["id"]))
    if not found or found[0].group_key not in mine:
        raise refusal(request, web.HTTPNotFound, N_("no_such_application"))
    application = found[0]
    now = request_now(request)
    if request.match_info["action"] == "decline":
        reason = str(form.get("reason", "")).strip()[:500]
        await accounts.decline_application(
            application.id, by=person.public.key, now=now, reason=reason
        )
        log("application declined")
        raise done("/web/coordinator", "declined")
    try:
        await _attest(request, person, application, now)
    except (NodeError, CaseError, LocalProtocolError) as exc:
        raise _back_with(exc) from None
    raise done("/web/coordinator", "attested")


async def _attest(
    request: web.Request, coordinator: Identity, application: Application, now: int
) -> None:
    """The coordinator's attestation into the directory, then, in one transaction, the
    applicant's account (with the password they chose) and the application attested.
    Nothing is written if the directory does not take the attestation."""
    service = request.config_dict[CASES]
    accounts = _accounts(request)
    if await accounts.account(application.username) is not None:
        raise _taken(application.username)
    details = json.loads(application.details)
    person = await asyncio.to_thread(
        person_key_for, request.config_dict[NODE_DIR].people, application.username
    )
    record = attest_member(
        service.directory.network,
        coordinator,
        group=PublicIdentity(application.group_key),
        member=person.public,
        role=application.role,
        display_name=application.display_name,
        registration=details.get("registration", ""),
        diploma=details.get("diploma", ""),
        charter_accepted=application.charter_ms,
        facility=details.get("facility", ""),
        subspecialities=details.get("subspecialities", []),
        languages=details.get("languages", []),
        home_node=PublicIdentity(service.me),
        weekly_capacity=int(details.get("weekly_capacity", 0)),
        now=now,
        days=ATTESTATION_DAYS,
    )
    outcome = await service.directory.add([record], now)
    if not outcome["added"]:
        raise NodeError(f"the directory did not take the attestation ({', '.join(outcome)})")
    try:
        await accounts.attest_application(
            application, by=coordinator.public.key, now=now, person_key=person.public.key
        )
    except UsernameTaken:
        raise _taken(application.username) from None
    await service.audit.append(
        actor=coordinator.public.key,
        case_id=b"",
        action="member attest",
        detail=person.public.text,
        now=now,
    )
    log("member attested", role=application.role)


def _taken(username: str) -> NodeError:
    return NodeError(
        f"an account named {username!r} already exists on this node",
        key=N_("attest_error_taken"),
    )


@ROUTES.post("/coordinator/cases/{id:[0-9a-f]{32}}/assign")
async def assign(request: web.Request) -> web.Response:
    """The coordinator gives a group's case to one of its readers."""
    session, person, _mine = await _coordinator(request)
    form = await check_csrf(request, session)
    case_id = bytes.fromhex(request.match_info["id"])
    try:
        reader = bytes.fromhex(str(form.get("reader", "")))
        await request.config_dict[CASES].act(
            case_id, person, "assign", request_now(request), reader=reader
        )
    except ValueError:
        raise refusal(request, web.HTTPBadRequest, N_("choose_reader")) from None
    except CaseError as exc:
        raise _back_with(exc) from None
    raise done("/web/coordinator", "assigned")


def _back_with(exc: Exception) -> web.HTTPSeeOther:
    """Back to the page, which shows the refusal: its catalogue key with its values (a
    value that is itself a key, a state, kept as one), or the node's words."""
    if isinstance(exc, NodeError) and exc.key is not None:
        values = {
            k: {"key": str(v)} if isinstance(v, Key) else str(v) for k, v in exc.values.items()
        }
        said = f"{quote(exc.key)}&values={quote(json.dumps(values))}" if values else exc.key
        return web.HTTPSeeOther(f"/web/coordinator?error={said}")
    return web.HTTPSeeOther(f"/web/coordinator?error={quote(str(exc)[:200])}")


def _shown(error: str | None, lang: str, values: str | None = None) -> str | NodeError | None:
    """A refusal given back to the page: a catalogue key (with its values), other words
    as a refusal of the node (said to be in English)."""
    if not error:
        return None
    known = translator(lang)
    if error not in known:
        return NodeError(error)
    try:
        given = json.loads(values) if values else {}
    except ValueError:
        given = {}
    if not isinstance(given, dict) or not given:
        return error
    shown: dict[str, object] = {}
    for name, value in given.items():
        if isinstance(value, dict) and value.get("key") in known:
            shown[str(name)] = Key(value["key"])
        else:
            shown[str(name)] = str(value)[:200]
    try:  # values that do not fit the text (a link written by hand): the text alone
        texts(lang)(error, **shown)
    except (KeyError, IndexError, ValueError):
        return error
    return NodeError(error, key=error, values=shown)


def add_routes(app: web.Application) -> None:
    app.router.add_routes(ROUTES)
