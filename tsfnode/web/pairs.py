"""A person's pairs in the web application: the pairs they are in (suspend or end them),
the proposals waiting for them (accept), and a proposal to a colleague: a reader to a
sender or a sender to a reader, with the weekly quota and the reading delay. The same
`pairs.py` as the JSON API: either party proposes, the other accepts, and both have
signed the record that gossip carries."""

from __future__ import annotations

from aiohttp import web

from protocol.identity import PublicIdentity
from tsfnode.appkeys import CASES
from tsfnode.auth.sessions import posted_form, require
from tsfnode.cases import pairs
from tsfnode.clock import request_now
from tsfnode.errors import CaseError, NodeError
from tsfnode.i18n import N_, texts
from tsfnode.routes import Routes
from tsfnode.web.common import done, language_of, person_labels, person_of, render_page

ROUTES = Routes()

PARTIES = ("sender", "reader", "coordinator")


@ROUTES.get("/pairs")  # the page as it is, or drawn again with an error
async def pairs_page(
    request: web.Request, *, error: NodeError | None = None, status: int = 200
) -> web.Response:
    session = await require(request, *PARTIES)
    person = await person_of(request, session)
    service = request.config_dict[CASES]
    now = request_now(request)
    view = service.view(now)
    words = texts(language_of(request, session))
    mine = await pairs.listed(service, person.public.key, now)
    me = person.public.key.hex()
    others = [p["sender"] if p["reader"] == me else p["reader"] for p in mine["pairs"]]
    proposers = [p["proposer"] for p in mine["proposals"]]
    labels = person_labels(view, {bytes.fromhex(k) for k in others + proposers})
    for pair, other in zip(mine["pairs"], others, strict=True):
        pair["other"] = labels[bytes.fromhex(other)]
    for proposal in mine["proposals"]:
        proposal["other"] = labels[bytes.fromhex(proposal["proposer"])]
    wanted = (
        ("reader", "coordinator") if view.role_of(person.public.key) == "sender" else ("sender",)
    )
    labels = person_labels(
        view,
        (
            key
            for key, m in view.members.items()
            if m.body["role"] in wanted and key != person.public.key
        ),
    )
    colleagues = sorted(
        (
            {"id": PublicIdentity(key).text, "name": label,
             "where": view.members[key].body["facility"]
             or words.specialities(view.members[key].body["subspecialities"])}
            for key, label in labels.items()
        ),
        key=lambda c: c["name"],
    )  # fmt: skip
    return render_page(
        request,
        "pairs.html",
        session=session,
        pairs=mine["pairs"],
        proposals=mine["proposals"],
        colleagues=colleagues,
        error=error,
        status=status,
    )


@ROUTES.post("/pairs/{action:propose|accept|suspend|end}")
async def act(request: web.Request) -> web.Response:
    session, form = await posted_form(request, *PARTIES)
    person = await person_of(request, session)
    service = request.config_dict[CASES]
    now = request_now(request)
    action = request.match_info["action"]
    try:
        if action == "propose":
            try:
                quota = int(str(form.get("weekly_quota", "")))
                delay = int(str(form.get("reading_delay_hours", "")))
            except ValueError:
                raise CaseError(
                    400,
                    "weekly quota and reading delay: whole numbers",
                    key=N_("pair_whole_numbers"),
                ) from None
            await pairs.propose(
                service,
                person,
                other=str(form.get("with", "")),
                weekly_quota=quota,
                reading_delay_hours=delay,
                now=now,
            )
        else:
            try:
                pair_id = bytes.fromhex(str(form.get("pair", "")))
            except ValueError:
                raise CaseError(404, "no such pair", key=N_("no_such_pair")) from None
            if action == "accept":
                await pairs.accept(service, person, pair_id, now)
            else:
                status = {"suspend": "suspended", "end": "ended"}[action]
                await pairs.change(service, person, pair_id, status, now)
    except CaseError as exc:
        return await pairs_page(request, error=exc, status=exc.status)
    # A coordinator suspends or ends a pair of the group from the coordinator's page.
    back = "/web/coordinator" if form.get("back") == "coordinator" else "/web/pairs"
    said = {"propose": "proposed", "accept": "accepted", "suspend": "suspended", "end": "ended"}
    raise done(back, said[action])


def add_routes(app: web.Application) -> None:
    app.router.add_routes(ROUTES)
