"""Issue 21: case state leaked to people who are not its parties.

- A claim refused between members named who had the case ("already taken (by 52f1...)"),
  and the case's summary and documents told every member of the group who read it. A
  member who may see the case learns that it is taken; who has it is told only to its
  sender, its reader and the coordinators of its group (``cases/policy.py``
  ``may_know_reader``).
- A case a person may not see must be answered exactly as a case that does not exist, on
  every way in: the routes are taken from the application's router (web, JSON API,
  DICOMweb), so a route added later is walked too.

CHU Cotonou in process (the fixture of ``tests/tsfnode/test_case_access.py``), with one
more reader of the paediatric group, Yao, on the node."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web

from bootstrap.network import load_network
from bootstrap.tools import attest_member
from protocol.identity import PublicIdentity
from tests.harness.people import FORM, PASSWORD, REPORT
from tests.harness.studies import CT
from tests.tsfnode.test_case_access import NOBODYS_CASE, Cotonou, _node_input
from tests.tsfnode.test_case_access import cotonou as cotonou_fixture  # noqa: F401
from tsfnode.appkeys import DIRECTORY, IDENTITY, STORE, TRANSFERS
from tsfnode.auth.accounts import create_account, create_token, person_of_account
from tsfnode.auth.sessions import sign_in
from tsfnode.clock import CLOCK

NOBODYS_STUDY = "2.25.1234567890123456789"  # a valid UID of no study here


async def _add_reader(node: Cotonou, username: str) -> str:
    """A reader of the paediatric group with an account on the node (attested by Anne,
    its coordinator); their key in hexadecimal."""
    app = node.client.server.app
    store, now = app[STORE], app[CLOCK].now_ms()
    person = await create_account(
        store, username=username, display_name=username.title(), role="reader",
        password=PASSWORD, language="fr", now=now, people=node.node_dir.people,
    )  # fmt: skip
    assert person is not None
    anne = await person_of_account(store, node.node_dir.people, "anne")
    record = attest_member(
        load_network("demo"), anne, group=PublicIdentity.from_text(node.paediatrics),
        member=person, role="reader", display_name=username.title(), registration="ONMB-7",
        diploma="DES radiologie", charter_accepted=now, facility="CHU Cotonou",
        subspecialities=["paediatrics"], languages=["fr"], home_node=app[IDENTITY].public,
        weekly_capacity=5, now=now,
    )  # fmt: skip
    assert (await app[DIRECTORY].add([record], now))["added"] == 1
    node.tokens[username] = await create_token(
        store, username=username, purpose="send", days=30, now=now
    )
    cookie, session = await sign_in(store, username, PASSWORD, source="test", now=now)
    node.sessions[username] = (cookie, session.csrf)
    node.people[username] = person
    return person.key.hex()


async def _delivered(node: Cotonou, made: dict[str, Any]) -> None:
    """The recipients' receipts for a case's bundle reach the node (Erasme does not run
    here): the case is delivered, as when the receipts come over the network."""
    app = node.client.server.app
    transfers = app[TRANSFERS]
    manifest = await transfers.manifest_of(bytes.fromhex(made["bundle_id"]))
    assert manifest is not None
    assert transfers.on_delivered is not None
    for recipient in manifest.recipients:
        await transfers.on_delivered(manifest.bundle_id, recipient.key, app[CLOCK].now_ms())


async def test_a_claim_refused_between_members_does_not_name_who_has_the_case(
    cotonou_fixture: Cotonou,  # noqa: F811 - the fixture imported above
) -> None:
    node = cotonou_fixture
    yao = await _add_reader(node, "yao")
    awa = node.people["awa"].key.hex()
    study = await asyncio.to_thread(_node_input, node.node_dir, CT)
    body = {"study_uid": study, "routing": "group", "target": node.paediatrics, "form": FORM}
    status, made = await node.api("koffi", "POST", "/cases", body)
    assert status == 201, made
    case = made["case_id"]
    await _delivered(node, made)
    assert await node.api("awa", "POST", f"/cases/{case}/claim") == (200, {"state": "assigned"})

    # Yao, a reader of the group, may see the case and may know it is taken: not by whom.
    status, refused = await node.api("yao", "POST", f"/cases/{case}/claim")
    assert status == 409
    assert refused["error"] == "the case is already taken"
    status, seen = await node.api("yao", "GET", f"/cases/{case}")
    assert status == 200
    assert (seen["reader"], seen["taken"], seen["claim_sent_by"]) == (None, True, None)
    assert {d["signer"] for d in seen["documents"]} == {node.people["koffi"].key.hex()}
    assert awa not in json.dumps(seen)
    status, listed = await node.api("yao", "GET", "/cases")
    assert status == 200
    assert [c["case_id"] for c in listed] == [case]
    assert awa not in json.dumps(listed)
    status, page = await node.web("yao", "GET", f"/web/cases/{case}")
    assert status == 200
    assert awa not in page.decode()
    assert "Awa" not in page.decode()
    assert yao not in json.dumps(seen)  # nor does he appear where he did nothing

    # The coordinator of the group, the sender and the reader know who has it.
    status, refused = await node.api("anne", "POST", f"/cases/{case}/claim")
    assert (status, refused["error"]) == (409, f"the case is already taken (by {awa[:12]})")
    for who in ("anne", "koffi", "awa"):
        status, seen = await node.api(who, "GET", f"/cases/{case}")
        assert (status, seen["reader"], seen["taken"]) == (200, awa, True), who
        assert awa in {d["signer"] for d in seen["documents"]}, who  # her claim


def _routes(app: web.Application, prefix: str = "") -> list[tuple[str, str]]:
    """(method, path template) of every route of the application and its sub-apps."""
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        if "app" in info:
            out += _routes(info["app"], prefix + info.get("prefix", ""))
            continue
        path = info.get("formatter") or info.get("path")
        if path and route.method != "HEAD":
            out.append((route.method, prefix + str(path)))
    return out


# What a route's other parts are filled with (each value is tried); the case's own id or
# study against one of no case.
FILL = {
    "event": ["claim", "release", "accept", "decline", "cancel", "close", "assign"],
    "action": ["claim", "report", "message", "evaluation"],
    "s": ["0"],
    "f": ["0"],
    "frames": ["1"],
    "tag": ["7FE00010"],
}


def _expand(template: str, values: dict[str, str]) -> list[str]:
    paths = [template]
    for name, choices in {**FILL, **{k: [v] for k, v in values.items()}}.items():
        paths = [p.replace(f"{{{name}}}", c) for p in paths for c in choices]
    return paths


async def test_every_case_route_answers_a_non_party_as_for_no_such_case(
    cotonou_fixture: Cotonou,  # noqa: F811 - the fixture imported above
) -> None:
    node = cotonou_fixture
    study = await asyncio.to_thread(_node_input, node.node_dir, CT)
    (instance,) = (node.node_dir.intake / study).glob("*/*.dcm")
    series, sop = instance.parent.name, instance.stem
    body = {"study_uid": study, "routing": "pair", "target": node.pair, "form": FORM}
    status, made = await node.api("koffi", "POST", "/cases", body)
    assert status == 201, made
    await _delivered(node, made)
    case = made["case_id"]
    assert (await node.api("koffi", "GET", f"/cases/{case}"))[0] == 200

    routes = [
        (m, p)
        for m, p in _routes(node.client.server.app)
        if re.search(r"/cases/\{id[^}]*\}", p) or p.startswith("/dicomweb/studies/{study}")
    ]
    assert len(routes) >= 20, routes  # the walk found the routes
    answers: dict[str, list[tuple[str, int]]] = {}
    for who in ("awa", "ines"):  # a member of the reader's group; another sender
        for method, template in routes:
            template = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", template)  # {id:[0-9a-f]{32}}
            theirs = {"id": case, "study": study, "series": series, "sop": sop}
            nobodys = {"id": NOBODYS_CASE, "study": NOBODYS_STUDY, "series": series, "sop": sop}
            for path, other in zip(
                _expand(template, theirs), _expand(template, nobodys), strict=True
            ):
                mine = await _ask(node, who, method, path)
                none = await _ask(node, who, method, other)
                assert mine == none, (who, method, path, mine, none)
                answers.setdefault(who, []).append((path, mine[0]))
    for who, found in answers.items():  # mostly not found; never anything of the case
        assert sum(status == 404 for _, status in found) >= len(found) // 2, (who, found)


async def _ask(node: Cotonou, who: str, method: str, path: str) -> tuple[int, str]:
    """The answer to ``who``: the API with their token, the web app and DICOMweb with
    their session (a form with its CSRF token for a web POST); the ids of the path taken
    out, so that the two answers compare."""
    if path.startswith("/api/v1/"):
        body: Any = {"text": "Bonjour", "title": "Cas", "study_uid": NOBODYS_STUDY, **REPORT}
        status, answer = await node.api(who, method, path.removeprefix("/api/v1"), body)
        text = json.dumps(answer)
    else:
        data = {"csrf": node.sessions[who][1], "text": "Bonjour"} if method == "POST" else None
        status, raw = await node.web(who, method, path, data=data)
        text = raw.decode(errors="replace")
    return status, _neutral(text, path)


def _neutral(text: str, path: str) -> str:
    """An answer with the ids of the request taken out (an answer may repeat its URL)."""
    for part in path.split("/"):
        if len(part) > 8:
            text = text.replace(part, "<part>")
    return text
