"""Who sees a case and who uses a study, through every entry point, on one node in
process: the application of ``create_app``, driven by aiohttp's test client.

CHU Cotonou's node. Koffi and Ines send from it. Awa, a radiologist of the hospital,
reads for the paediatric group, coordinated by Anne (who has an account here too).
Marie, the group's other reader, reads at Erasme (a node that does not run here: what
is sealed for it waits in the outbox) and is in a pair with Koffi. The attacks are made
as they were on a running node (issue 21 item 2, issue 22 item 3): a group member who
is not in the pair opens the pair's case; a second sender lists, reviews and sends the
first sender's study.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bootstrap.network import load_network
from bootstrap.tools import attest_member
from protocol.codec import pack
from protocol.directory import countersign, new_pair_terms, sign_pair
from protocol.identity import Identity, PublicIdentity
from tests.harness.people import FORM, PASSWORD
from tests.harness.records import paediatrics_and_hospital
from tests.harness.studies import CT
from tests.tsfnode.intake.conftest import PYDICOM_FILES
from tsfnode.app import create_app
from tsfnode.appkeys import CASES, DIRECTORY, STORE
from tsfnode.auth.accounts import create_account, create_token, person_of_account
from tsfnode.auth.sessions import SESSION_COOKIE, sign_in
from tsfnode.cases.pairs import keep_proposal
from tsfnode.clock import CLOCK, Clock
from tsfnode.config import NodeConfig
from tsfnode.intake.importer import importer_for
from tsfnode.intake.review import ReviewBook
from tsfnode.node import init_node
from tsfnode.nodedir import NodeDir
from tsfnode.store.pairs import PairStore

Client = TestClient[web.Request, web.Application]
DAY_MS = 86_400_000
NOBODYS_CASE = "0123456789abcdef0123456789abcdef"  # no such case anywhere


@dataclass
class Cotonou:
    client: Client
    node_dir: NodeDir
    people: dict[str, PublicIdentity]
    tokens: dict[str, str] = field(default_factory=dict)  # the API's (purpose "send")
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)  # (cookie, csrf)
    pair: str = ""
    paediatrics: str = ""

    async def api(self, who: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        async with self.client.request(
            method, f"/api/v1{path}", json=body, headers=headers
        ) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    async def web(
        self, who: str, method: str, path: str, *, csrf: bool = False, **kwargs: Any
    ) -> tuple[int, bytes]:
        """A signed-in person's browser (the session cookie; the CSRF header of the
        uploader's calls when ``csrf``)."""
        cookie, token = self.sessions[who]
        headers = {"Cookie": f"{SESSION_COOKIE}={cookie}", **kwargs.pop("headers", {})}
        if csrf:
            headers["X-CSRF-Token"] = token
        async with self.client.request(
            method, path, headers=headers, allow_redirects=False, **kwargs
        ) as response:
            return response.status, await response.read()

    async def upload(self, who: str, source: Path) -> str:
        """``source`` sent with the web application's uploader and imported: its study."""
        _, (study,) = await self.upload_batch(who, source)
        return study

    async def upload_batch(self, who: str, source: Path) -> tuple[str, list[str]]:
        """``source`` sent with the uploader and imported: the batch, the studies shown."""
        data = await asyncio.to_thread(source.read_bytes)
        status, made = await self.web(
            who, "POST", "/web/uploads", csrf=True, json={"name": source.name, "size": len(data)}
        )
        assert status == 201, made
        upload = json.loads(made)
        status, done = await self.web(
            who,
            "PATCH",
            f"/web/uploads/{upload['id']}",
            csrf=True,
            data=data,
            headers={"Upload-Offset": "0"},
        )
        assert status == 200, done
        status, found = await self.web(
            who, "POST", f"/web/batches/{upload['batch']}/import", csrf=True
        )
        assert status == 200, found
        return upload["batch"], [str(s["study_uid"]) for s in json.loads(found)["studies"]]


def terms_of(reader: Identity, sender: Identity, *, quota: int, hours: int) -> dict[str, Any]:
    """A new pair's terms between these two people, its id derived from them."""
    return new_pair_terms(
        reader=reader.public.key, sender=sender.public.key, nonce=os.urandom(16),
        weekly_quota=quota, reading_delay_hours=hours,
    )  # fmt: skip


def _erasme() -> Identity:
    return Identity.generate(os.urandom)


@pytest.fixture
async def cotonou(tmp_path: Path, aiohttp_client: Any) -> Cotonou:
    return await open_cotonou(tmp_path, aiohttp_client)


async def open_cotonou(
    tmp_path: Path, aiohttp_client: Any, *, clock: Clock | None = None, **settings: Any
) -> Cotonou:
    """The ``cotonou`` fixture's node and people; a test may give it a clock of its own
    and settings of NodeConfig."""
    config = NodeConfig(name="CHU Cotonou", country="BJ", http_port=0, **settings)
    identity = await asyncio.to_thread(init_node, tmp_path / "cotonou", config)
    node_dir = NodeDir(tmp_path / "cotonou")
    client = await aiohttp_client(create_app(node_dir, config, identity, clock))
    app = client.server.app
    store, now = app[STORE], app[CLOCK].now_ms()
    people = {}
    for username, role in (
        ("koffi", "sender"),
        ("ines", "sender"),
        ("awa", "reader"),
        ("anne", "coordinator"),
    ):
        person = await create_account(
            store, username=username, display_name=username.title(), role=role,
            password=PASSWORD, language="fr", now=now, people=node_dir.people,
        )  # fmt: skip
        assert person is not None
        people[username] = person
    erasme, marie = _erasme(), Identity.generate(os.urandom)
    people["marie"] = marie.public
    network = load_network("demo")
    anne = await person_of_account(store, node_dir.people, "anne")
    koffi = await person_of_account(store, node_dir.people, "koffi")
    paediatrics, hospital, raws = paediatrics_and_hospital(anne, now)
    for signer, group, who, role, home in (
        (anne, paediatrics, "anne", "coordinator", identity.public),
        (anne, paediatrics, "awa", "reader", identity.public),
        (anne, paediatrics, "marie", "reader", erasme.public),
        (hospital, hospital, "koffi", "sender", identity.public),
        (hospital, hospital, "ines", "sender", identity.public),
    ):
        raws.append(
            attest_member(
                network, signer, group=group.public, member=people[who], role=role,
                display_name=who.title(), registration="ONMB-1234", diploma="DES radiologie",
                charter_accepted=now, facility="CHU Cotonou", subspecialities=["paediatrics"],
                languages=["fr"], home_node=home, weekly_capacity=5, now=now,
            )
        )  # fmt: skip
    terms = terms_of(marie, koffi, quota=5, hours=48)
    pair_id = terms["pair_id"]
    terms_bytes = pack(terms)
    raws.append(
        sign_pair(
            terms, signer=marie, countersignature=countersign(terms_bytes, koffi),
            terms_bytes=terms_bytes, network=network.name, version=now, now=now, ttl=DAY_MS,
        )
    )  # fmt: skip
    outcome = await app[DIRECTORY].add(raws, now)
    assert outcome["added"] == len(raws), outcome
    node = Cotonou(client, node_dir, people, pair=pair_id.hex())
    node.paediatrics = paediatrics.public.text
    for username in ("koffi", "ines", "awa", "anne"):
        node.tokens[username] = await create_token(
            store, username=username, purpose="send", days=30, now=now
        )
        cookie, session = await sign_in(store, username, PASSWORD, source="test", now=now)
        node.sessions[username] = (cookie, session.csrf)
    return node


def _node_input(node_dir: NodeDir, source: Path) -> str:
    """A study taken in by the node itself (as the operator's import or the listener),
    its images checked: the study's UID."""
    before = set(ReviewBook(node_dir.intake).studies())
    importer_for(node_dir.root).run([source])
    (study,) = set(ReviewBook(node_dir.intake).studies()) - before
    ReviewBook(node_dir.intake).confirm(study, None, now_ms=0)
    return study


async def test_a_pairs_case_is_nowhere_to_be_found_by_a_member_of_the_readers_group(
    cotonou: Cotonou,
) -> None:
    node = cotonou
    study = await asyncio.to_thread(_node_input, node.node_dir, CT)
    body = {"study_uid": study, "routing": "pair", "target": node.pair, "form": FORM}
    status, made = await node.api("koffi", "POST", "/cases", body)
    assert status == 201, made
    case = made["case_id"]
    # Its sender and the coordinator of the reader's group see it, with its images.
    for who in ("koffi", "anne"):
        status, found = await node.api(who, "GET", f"/cases/{case}")
        assert status == 200, (who, found)
        assert found["form"]["question"] == FORM["question"]
        assert (await node.web(who, "GET", f"/web/cases/{case}/series"))[0] == 200
        status, listed = await node.web(who, "GET", "/dicomweb/studies")
        assert status == 200
        assert study in listed.decode()
    assert (await node.web("koffi", "GET", f"/web/cases/{case}/export.zip"))[0] == 200
    # Awa reads for the same group, but the case is Koffi's and Marie's: for her it is
    # not there, on every way in, and answered as a case that does not exist at all.
    status, listed = await node.api("awa", "GET", "/cases")
    assert status == 200
    assert case not in json.dumps(listed)
    for method, path in (
        ("GET", "/cases/{}"),
        ("POST", "/cases/{}/claim"),
        ("POST", "/cases/{}/messages"),
    ):
        body = {"text": "Bonjour"} if path.endswith("messages") else None
        mine = await node.api("awa", method, path.format(case), body)
        nobodys = await node.api("awa", method, path.format(NOBODYS_CASE), body)
        assert mine == nobodys, (path, mine)
        assert mine[0] == 404
    status, page = await node.web("awa", "GET", "/web/cases")
    assert status == 200
    assert case not in page.decode()
    for path in (
        "/web/cases/{}",
        "/web/cases/{}/viewer",
        "/web/cases/{}/series",
        "/web/cases/{}/frames/0/0.jpg",
        "/web/cases/{}/frames/0/0/attributes",
        "/web/cases/{}/export.zip",
    ):
        mine = await node.web("awa", "GET", path.format(case))
        assert mine == await node.web("awa", "GET", path.format(NOBODYS_CASE)), path
        assert mine[0] == 404, path
    status, searched = await node.web("awa", "GET", "/dicomweb/studies")
    assert (status, json.loads(searched)) == (200, [])
    for path in (f"/dicomweb/studies/{study}", f"/dicomweb/studies/{study}/metadata"):
        status, _ = await node.web("awa", "GET", path)
        assert status == 404, path
    status, told = await node.api("awa", "GET", "/notifications")
    assert status == 200
    assert case not in json.dumps(told)


async def test_a_second_sender_finds_none_of_the_first_senders_studies(cotonou: Cotonou) -> None:
    node = cotonou
    koffis = await node.upload("koffi", CT)
    ines = await node.upload("ines", PYDICOM_FILES / "MR_small.dcm")
    # Koffi's study is his, Ines's hers.
    status, listed = await node.api("koffi", "GET", "/studies")
    assert status == 200
    assert [s["study_uid"] for s in listed] == [koffis]
    status, listed = await node.api("ines", "GET", "/studies")
    assert [s["study_uid"] for s in listed] == [ines]
    # Ines can neither look at Koffi's study, nor review it, nor send it as a case, nor
    # add it to a case of hers: for her it is not there, as a study that does not exist.
    for path in (f"/studies/{koffis}", "/studies/2.25.1"):
        status, _ = await node.api("ines", "GET", path)
        assert status == 404, path
    status, _ = await node.api("ines", "POST", f"/studies/{koffis}/review", {"confirm": "all"})
    assert status == 404
    group = {"routing": "group", "target": node.paediatrics, "form": FORM}
    status, refused = await node.api("ines", "POST", "/cases", {**group, "study_uid": koffis})
    assert status == 404, refused
    status, none = await node.api("ines", "POST", "/cases", {**group, "study_uid": "2.25.1"})
    assert (status, none["error"]) == (404, refused["error"].replace(koffis, "2.25.1"))
    assert (await node.api("ines", "GET", "/cases")) == (200, [])
    status, made = await node.api("ines", "POST", "/cases", {**group, "study_uid": ines})
    assert status == 201, made
    status, refused = await node.api(
        "ines", "POST", f"/cases/{made['case_id']}/images", {"study_uid": koffis}
    )
    assert status == 404, refused
    # Nor in her browser; and the same images uploaded again by her make a study of
    # her own (her uploads' UIDs are hers: issue 21): Koffi's stays his, not sent by her.
    status, _ = await node.web(
        "ines", "POST", f"/web/studies/{koffis}/review", csrf=True, json={"image": "1.2"}
    )
    assert status == 404
    batch, shown = await node.upload_batch("ines", CT)
    assert len(shown) == 1
    assert koffis not in shown
    form = {k: "" if v is None else str(v) for k, v in FORM.items()}
    posted = {
        **form,
        "csrf": node.sessions["ines"][1],
        "batch": batch,
        "study_uid": koffis,
        "route": f"group:{node.paediatrics}",
    }
    status, page = await node.web("ines", "POST", "/web/new", data=posted)
    assert status == 400  # Koffi's study is not among those her files made
    assert "trouvées dans vos fichiers" in page.decode()
    # Koffi sends his; the real patient is shown to him, on this node only.
    status, made = await node.api("koffi", "POST", "/cases", {**group, "study_uid": koffis})
    assert status == 201, made
    status, found = await node.api("koffi", "GET", f"/cases/{made['case_id']}")
    assert status == 200
    assert found["patient"]["study_uid"]
    assert found["patient"]["name"]


async def test_a_study_the_node_took_in_itself_is_every_senders(cotonou: Cotonou) -> None:
    node = cotonou
    study = await asyncio.to_thread(_node_input, node.node_dir, CT)
    for who in ("koffi", "ines"):
        status, listed = await node.api(who, "GET", "/studies")
        assert status == 200
        assert [s["study_uid"] for s in listed] == [study]


async def test_a_submission_is_written_in_one_commit(
    cotonou: Cotonou, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case, its signed request, its images' bundle and deliveries, the
    notifications and the audit entries of a submission: one decision, one commit."""
    node = cotonou
    app = node.client.server.app
    service, db = app[CASES], app[STORE].db
    study = await asyncio.to_thread(_node_input, node.node_dir, CT)
    inside: list[asyncio.Task[Any] | None] = []  # the task in submit, while it is
    commits = 0
    real_submit, real_commit = service.submit, db.commit

    async def submit(*args: Any, **kwargs: Any) -> dict[str, Any]:
        inside.append(asyncio.current_task())
        try:
            return await real_submit(*args, **kwargs)
        finally:
            inside.clear()

    async def commit() -> None:
        nonlocal commits
        commits += asyncio.current_task() in inside  # not the transfer service's
        await real_commit()

    monkeypatch.setattr(service, "submit", submit)
    monkeypatch.setattr(db, "commit", commit)
    body = {"study_uid": study, "routing": "pair", "target": node.pair, "form": FORM}
    status, made = await node.api("koffi", "POST", "/cases", body)
    assert status == 201, made
    assert commits == 1
    status, found = await node.api("koffi", "GET", f"/cases/{made['case_id']}")
    assert status == 200, found
    assert [d["kind"] for d in found["documents"]] == ["case_request"]


async def test_a_pair_proposal_under_another_pairs_id_is_refused(cotonou: Cotonou) -> None:
    """Issue 21: ids are derived, so a proposal (sealed to this node by the proposer's)
    whose id is not its members' derivation, e.g. the id of Marie and Koffi's pair, is
    refused before it is kept; the same terms under their derived id are kept."""
    app = cotonou.client.server.app
    service, store, now = app[CASES], app[STORE], app[CLOCK].now_ms()
    koffi = await person_of_account(store, cotonou.node_dir.people, "koffi")
    awa = await person_of_account(store, cotonou.node_dir.people, "awa")
    assert koffi is not None
    assert awa is not None
    terms = terms_of(awa, koffi, quota=2, hours=24)
    chosen = pack({**terms, "pair_id": bytes.fromhex(cotonou.pair)})
    refused = await keep_proposal(
        service, chosen, countersign(chosen, koffi), koffi.public.key, now
    )
    assert refused == "refused: the pair id is not derived from its members"
    assert await PairStore(store.db).proposals() == []
    derived = pack(terms)
    kept = await keep_proposal(service, derived, countersign(derived, koffi), koffi.public.key, now)
    assert kept == "pair proposal kept"
    (waiting,) = await PairStore(store.db).proposals()
    assert waiting.pair_id == terms["pair_id"]
