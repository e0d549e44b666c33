"""Web pages for people at work: sign-in, the sender's cases, the reader's worklist, a
case page with what the person may do there (claim, report, message, evaluate).

Every page checks the role that may use it; every form carries the session's CSRF token.
What people do goes through the same CaseService as the JSON API.
"""

from __future__ import annotations

import secrets
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from protocol.cases import BY_EVENT
from tsfnode.appkeys import CASES, STORE
from tsfnode.auth.sessions import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SignInRefused,
    check_csrf,
    home_of,
    posted_form,
    require,
    safe_next,
    set_cookie,
    sign_in,
    sign_out,
)
from tsfnode.cases.policy import shown_to
from tsfnode.cases.service import summary
from tsfnode.clock import request_now
from tsfnode.errors import CaseError, NodeError
from tsfnode.i18n import N_, texts
from tsfnode.routes import Routes
from tsfnode.web.caseform import shown_form
from tsfnode.web.common import (
    done,
    group_labels,
    http_error,
    language_of,
    names_of,
    person_labels,
    person_of,
    refusal,
    render_page,
    when,
    zone_of,
)
from tsfnode.web.live import followed
from tsfnode.web.report_templates import all_templates
from tsfnode.web.reporting import (
    REPORT_PAGES,
    draft_digest,
    may_report,
    report_draft,
    report_form,
)
from tsfnode.web.tools import destinations_of
from tsfnode.web.viewer import page as viewer_page
from tsfnode.web.viewer import warm
from tsfnode.web.worklist import ListChoice

ROUTES = Routes()

PEOPLE = ("sender", "reader", "coordinator")
READING = ("delivered", "assigned", "reported")  # the viewer is likely to open next
FINISHED = ("closed", "cancelled", "purged")  # out of the worklist, under it
# protocol/cases.py's add_images: a study more, while the case is open
ADDING_STUDIES = tuple(sorted(s.value for s in BY_EVENT["add_images"].sources))


@ROUTES.get("/login")
async def login_page(request: web.Request) -> web.Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = render_page(
        request,
        "login.html",
        csrf=token,
        next=safe_next(request.query.get("next", "")),
        error=None,
        minutes=0,
        seconds=0,
        username="",
    )
    set_cookie(request, response, LOGIN_COOKIE, token)
    return response


@ROUTES.post("/login")
async def login(request: web.Request) -> web.Response:
    form = await request.post()
    token = request.cookies.get(LOGIN_COOKIE, "")
    username = str(form.get("username", "")).strip()
    target = safe_next(str(form.get("next", "")))
    if not token or not secrets.compare_digest(str(form.get("csrf", "")), token):
        error, status, minutes, seconds = N_("form_expired"), 403, 0, 0
    else:
        try:
            session_token, signed = await sign_in(
                request.config_dict[STORE],
                username,
                str(form.get("password", "")),
                source=request.remote or "",
                now=request_now(request),
            )
        except SignInRefused as refused:
            error, status = refused.key, refused.status
            minutes, seconds = refused.minutes, refused.seconds
        else:
            response = web.HTTPSeeOther(target or home_of(signed.role))
            set_cookie(request, response, SESSION_COOKIE, session_token)
            raise response
    fresh = secrets.token_urlsafe(24)
    page = render_page(
        request,
        "login.html",
        csrf=fresh,
        next=target,
        error=error,
        minutes=minutes,
        seconds=seconds,
        username=username,
        status=status,
    )
    set_cookie(request, page, LOGIN_COOKIE, fresh)
    return page


@ROUTES.post("/logout")
async def logout(request: web.Request) -> web.Response:
    session = await require(request)
    await check_csrf(request, session)
    await sign_out(request)
    response = web.HTTPSeeOther("/web/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


@ROUTES.get("/cases")
async def cases(request: web.Request) -> web.Response:
    session = await require(request, *PEOPLE)
    choice = ListChoice.of(
        request.query,
        texts(language_of(request, session)),
        default="submitted" if session.role == "sender" else "priority",
    )
    person = await person_of(request, session)
    now = request_now(request)
    lang = language_of(request, session)
    zone = zone_of(request, session)
    service = request.config_dict[CASES]
    view = service.view(now)
    rows = []
    found_rows = await service.visible(person.public.key, now)
    senders = person_labels(view, {f.case.sender for f in found_rows})
    groups = group_labels(view, {f.case.target for f in found_rows if f.pair_id is None}, lang)
    references = await service.rows.local_references([f.case_id for f in found_rows])
    for found in found_rows:
        row = shown_to(person.public.key, found.case, summary(found), view)
        row["overdue"] = found.case.overdue(now)
        form = found.form
        row["modality"] = str(form.get("modality", ""))
        row["subject"] = f"{form.get('modality', '')} · {form.get('body_part', '')}"
        row["sender_name"] = senders[found.case.sender]
        group = view.group_records.get(found.case.target)
        row["group"] = "pair" if found.pair_id is not None else groups[found.case.target]
        row["group_name"] = group.body["name"] if group is not None else row["group"]
        row["local_reference"] = references.get(found.case_id, "")
        rows.append(row)
    for row in rows:
        row["submitted"] = when(row["submitted_ms"], lang, zone)
        row["due"] = when(row["due_ms"], lang, zone)
    # The sender's cases newest first; a worklist: cases to read first (overdue, urgent,
    # nearest due), then the rest; either as the person chose (worklist.py). Finished
    # cases are folded under them, still readable, out of the way.
    title = N_("my_cases") if session.role == "sender" else N_("worklist")
    shown = choice.arrange([r for r in rows if r["state"] not in FINISHED])
    finished = choice.arrange([r for r in rows if r["state"] in FINISHED])
    warm(request.config_dict, [bytes.fromhex(r["case_id"]) for r in shown if r["state"] in READING])
    return render_page(
        request,
        "cases.html",
        session=session,
        rows=shown,
        finished=finished,
        title=title,
        every=len(rows),
        controls=choice.controls(rows),
        **await followed(request, session),
    )


@ROUTES.get("/cases/{id:[0-9a-f]{32}}")  # the page as it is, or drawn again with an error
async def case_page(
    request: web.Request,
    *,
    error: NodeError | None = None,
    status: int = 200,
    draft: dict[str, str] | None = None,
) -> web.Response:
    session = await require(request, *PEOPLE)
    person = await person_of(request, session)
    try:
        case_id = bytes.fromhex(request.match_info["id"])
        found = await request.config_dict[CASES].detail(
            case_id, person.public.key, request_now(request)
        )
    except ValueError:
        raise refusal(request, web.HTTPNotFound, N_("no_such_case")) from None
    except CaseError as exc:
        raise http_error(request, exc) from None
    me = person.public.key.hex()
    lang = language_of(request, session)
    found.update(_parties(request, found, lang))
    zone = zone_of(request, session)
    if found["state"] in READING:
        warm(request.config_dict, [case_id])
    found["submitted"] = when(found["submitted_ms"], lang, zone)
    found["due"] = when(found["due_ms"], lang, zone)
    names = names_of(request)
    for doc in found["documents"]:
        doc["when"] = when(doc.get("created"), lang, zone)
        doc["author"] = names.get(doc["signer"], doc["signer"][:8])
    signed = [d for d in found["documents"] if d["kind"] == "report"]
    # The first signature is the report; each later one an addendum under it (it names
    # the report it completes in ``supersedes``), at the reader's and the sender's node.
    reports = [d for d in signed if not d.get("supersedes")]
    addenda = [d for d in signed if d.get("supersedes")]
    messages = [d for d in found["documents"] if d["kind"] == "case_message"]
    evaluations = [d for d in found["documents"] if d["kind"] == "evaluation"]
    can = {
        "claim": found["state"] == "delivered"
        and "member" in found["roles"]
        and found["claim_sent_by"] != me,
        "report": may_report(found["kept_as"], found["reader"], me, found["state"]),
        "evaluate": found["kept_as"] == "sender"
        and "sender" in found["roles"]
        and found["state"] == "report_delivered",
        "report_out": found["kept_as"] == "sender" and "sender" in found["roles"] and bool(reports),
        "message": found["state"]
        in ("delivered", "assigned", "reported", "report_delivered", "evaluated"),
        "add_study": found["kept_as"] == "sender"
        and "sender" in found["roles"]
        and found["state"] in ADDING_STUDIES,
        "close": found["kept_as"] == "sender"
        and "sender" in found["roles"]
        and found["state"] in ("report_delivered", "evaluated"),
    }
    return render_page(
        request,
        "case.html",
        session=session,
        case=found,
        reports=reports,
        addenda=addenda,
        messages=messages,
        can=can,
        me=me,
        error=error,
        evaluations=evaluations,
        clinical=shown_form(found["form"], lang),
        timeline=await _timeline(request, found, lang, zone),
        sent=request.query.get("sent") == "1",
        destinations=await destinations_of(request, session.account_id),
        status=status,
        **report_form(found["form"], draft=draft, failed=error is not None, page="case"),
        # drawn again after a form (a preview, a refusal): not replaced under the person
        **(await followed(request, session) if draft is None and error is None else {}),
    )


@ROUTES.get("/cases/{id:[0-9a-f]{32}}/reader-images/{sop:[0-9.]{1,64}}")
async def reader_image(request: web.Request) -> web.FileResponse:
    """One of the reader's images of a case the person may see, as it was signed
    (application/dicom), for their own workstation; each download an audit entry."""
    session = await require(request, *PEOPLE)
    person = await person_of(request, session)
    service = request.config_dict[CASES]
    now = request_now(request)
    case_id = bytes.fromhex(request.match_info["id"])
    try:
        images = await service.reader_images_of(case_id, person.public.key, now)
    except CaseError as exc:
        raise http_error(request, exc) from None
    found = [i for i in images if i.sop_uid == request.match_info["sop"]]
    if not found:
        raise refusal(request, web.HTTPNotFound, N_("no_such_reader_image"))
    await service.audit.append(
        actor=person.public.key, case_id=case_id, action="download reader image",
        detail=f"{found[0].sop_class} {found[0].sop_uid}", now=now,
    )  # fmt: skip
    return web.FileResponse(
        service.reader_image_path(found[0]),
        headers={
            "Content-Type": "application/dicom",
            "Content-Disposition": f'attachment; filename="{found[0].sop_uid}.dcm"',
        },
    )


def _parties(request: web.Request, case: dict[str, Any], lang: str) -> dict[str, str]:
    """Who sent the case, from which hospital, and who it was sent to: a pair's reader,
    or a group or community, as the directory names them."""
    view = request.config_dict[CASES].view(request_now(request))
    sender = bytes.fromhex(case["sender"])
    target = bytes.fromhex(case["target"])
    member = view.members.get(sender)
    node = view.nodes.get(bytes.fromhex(case["sender_node"]))
    hospital = member.body["facility"] if member is not None else ""
    if not hospital and node is not None:
        hospital = node.body["institution"] or node.body["name"]
    if case["routing"] == "pair":
        recipient = person_labels(view, [target])[target]
    else:
        recipient = group_labels(view, [target], lang)[target]
    return {
        "sender_label": person_labels(view, [sender])[sender],
        "hospital": hospital,
        "recipient": recipient,
    }


STEPS = (  # the timeline of a case: (step, the time that marks it)
    ("submitted", "submitted_ms"),
    ("delivered", "delivered_ms"),
    ("read", "reported_ms"),
    ("report_back", "report_back_ms"),
    ("evaluated", "evaluated_ms"),
    ("closed", "closed_ms"),
)


async def _timeline(
    request: web.Request, case: dict[str, Any], lang: str, zone: ZoneInfo
) -> list[dict[str, Any]]:
    """Each step of the case, done (with its time) or still to come; while the images are
    on their way, how far they have gone."""
    steps = [
        {"step": step, "when": when(case[field], lang, zone), "done": case[field] is not None}
        for step, field in STEPS
    ]
    if case["kept_as"] == "sender" and case["delivered_ms"] is None:
        rows = request.config_dict[CASES].rows
        progress = await rows.images_progress(bytes.fromhex(case["case_id"]))
        if progress is not None:
            steps.insert(
                1,
                {
                    "step": "in_transit",
                    "when": "",
                    "done": False,
                    "bytes_done": progress.bytes_done,
                    "size": progress.size,
                    "rate": progress.rate,
                    "percent": int(100 * progress.bytes_done / progress.size),
                },
            )
    return steps


DONE_AFTER = {  # what the case page says after each of its forms
    "claim": "claimed",
    "report": "reported",
    "message": "message",
    "evaluation": "evaluated",
    "close": "closed",
}


@ROUTES.post("/cases/{id:[0-9a-f]{32}}/{action:claim|report|message|evaluation|close}")
async def act(request: web.Request) -> web.Response:
    """The forms of the case page: claim, report, message, evaluation, close."""
    session, form = await posted_form(request, *PEOPLE)
    person = await person_of(request, session)
    service = request.config_dict[CASES]
    case_id = bytes.fromhex(request.match_info["id"])
    action = request.match_info["action"]
    now = request_now(request)
    draft = None
    page = str(form.get("from", "case"))
    if page not in REPORT_PAGES or action != "report":
        page = "case"
    drawn_again = viewer_page if page == "viewer" else case_page
    try:
        if action in ("claim", "close"):
            await service.act(case_id, person, action, now)
        elif action == "report":
            draft = report_draft(form)
            findings = draft["findings"].strip()
            if findings in {t.strip() for t in all_templates(draft["language"]).values()}:
                raise CaseError(
                    400,
                    "findings: the template's headings are not filled in",
                    key=N_("report_unfilled"),
                )
            if form.get("step") != "sign":  # first the reader sees what will be signed
                if not findings and not draft["impression"].strip():
                    raise CaseError(
                        400, "a report needs findings or an impression", key=N_("report_empty")
                    )
                return await drawn_again(request, draft=draft)
            if form.get("previewed") != draft_digest(draft):
                raise CaseError(
                    409, "the report changed after its preview", key=N_("report_changed")
                )
            await service.report(case_id, person, draft, now)
        elif action == "message":
            text = str(form.get("text", "")).strip()
            if not text:
                raise CaseError(400, "the message is empty", key=N_("message_empty"))
            await service.message(case_id, person, text, now)
        elif action == "evaluation":
            fields = {
                name: form.get(name) == "yes"
                for name in ("relevant", "useful", "changed_management", "teaching_consent")
            }
            await service.evaluate(
                case_id, person, {**fields, "comment": str(form.get("comment", ""))}, now
            )
    except CaseError as exc:  # drawn again, the report's text as it was typed
        return await drawn_again(request, error=exc, status=exc.status, draft=draft)
    raise done(f"/web/cases/{case_id.hex()}{REPORT_PAGES[page]}", DONE_AFTER[action])


def add_routes(app: web.Application) -> None:
    app.router.add_routes(ROUTES)
