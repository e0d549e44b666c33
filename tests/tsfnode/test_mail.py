"""E-mail notices against a real SMTP server (aiosmtpd on a free loopback port), from a
node in process with a ManualClock: a case for a reader makes exactly one e-mail with no
patient data, in the reader's language; a daily digest sends one e-mail a day; "never"
sends none; a refusal (550) fails for good and the operator sees it; a 451, a timeout or
no server are tried again with a growing wait and sent once the server is back; a node
restarted mid-queue sends each e-mail once.

CHU Cotonou's node: Koffi sends, Awa reads (in a pair with Koffi) for the paediatric
group coordinated by Anne; all three have their account here.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydicom.uid import generate_uid

from bootstrap.network import load_network
from bootstrap.tools import attest_member
from protocol.codec import pack
from protocol.directory import countersign, new_pair_terms, sign_pair
from tests.harness.cluster import configure
from tests.harness.inprocess import LocalNode, WebBrowser, node_log, start_local_node
from tests.harness.nodes import tsfnode
from tests.harness.people import FORM, application
from tests.harness.records import paediatrics_and_hospital
from tests.harness.smtp import SmtpSink
from tests.harness.studies import CT
from tsfnode.app import create_app
from tsfnode.appkeys import CASES, DIRECTORY, MAIL
from tsfnode.auth.accounts import person_of_account
from tsfnode.clock import ManualClock
from tsfnode.config import load_config
from tsfnode.errors import NodeError
from tsfnode.intake.importer import importer_for
from tsfnode.intake.review import ReviewBook
from tsfnode.mail.messages import Notice, compose
from tsfnode.mail.service import next_digest
from tsfnode.nodedir import NodeDir
from tsfnode.store.mail import MailStore

Client = TestClient[web.Request, web.Application]
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def mail_config(sink: SmtpSink, **more: Any) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "smtp_security": "none",
        "smtp_from_address": "tsf@chu-cotonou.example",
        "smtp_link_url": "https://tsf.chu-cotonou.example",
        "smtp_timeout_s": 1,
        "notices_retry_base_s": 60,
        "notices_retry_cap_s": 3600,
        **more,
    }


@dataclass
class Cotonou:
    node: LocalNode
    sink: SmtpSink
    pair: str = ""
    group: str = ""
    ids: dict[str, int] = field(default_factory=dict)

    @property
    def mail(self) -> MailStore:
        return MailStore(self.node.store.db)

    async def set_email(self, who: str, email: str, mode: str) -> None:
        await self.mail.set_contact(self.ids[who], email, mode)

    async def case_for_awa(self) -> dict[str, Any]:
        """Koffi sends a study to his pair with Awa: the case id, its state once
        delivered here, and the patient."""
        study = await asyncio.to_thread(_node_input, self.node)
        koffi = self.node.accounts["koffi"]
        body = {"study_uid": study, "routing": "pair", "target": self.pair, "form": FORM}
        made = await koffi.ok("/cases", "POST", body)
        # The study reaches the reader's node (here, this one): the transfers' receipt
        transfers = self.node.app[CASES].transfers
        assert transfers.on_delivered is not None
        await transfers.on_delivered(
            bytes.fromhex(made["bundle_id"]),
            self.node.identity.public.key,
            self.node.clock.now_ms(),
        )
        found = await koffi.ok(f"/cases/{made['case_id']}")
        return {"case_id": made["case_id"], "state": found["state"], "patient": found["patient"]}

    async def wait_sent(self, count: int) -> list[Any]:
        """The sink's messages once there are ``count`` (the node's sender woken; at
        most 10 s)."""
        for _ in range(200):
            self.node.app[MAIL].wake()
            got = self.sink.received()
            if len(got) >= count:
                return got
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(self.sink.received())} e-mails, not {count}")

    async def settle(self) -> None:
        """Let the sender look at the queue at the clock's time (a few passes)."""
        for _ in range(3):
            await self.node.app[MAIL].send_due(self.node.clock.now_ms())
            await asyncio.sleep(0.02)


def _node_input(node: LocalNode) -> str:
    """A new study (the real CT slice, under new UIDs) taken in by the node, checked."""
    dataset = pydicom.dcmread(CT)
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    source = node.root.parent / f"{dataset.StudyInstanceUID}.dcm"
    dataset.save_as(source)
    book = ReviewBook(node.node_dir.intake)
    before = set(book.studies())
    importer_for(node.node_dir.root).run([source])
    (study,) = set(book.studies()) - before
    book.confirm(study, None, now_ms=0)
    return study


async def start_cotonou(
    root: Path,
    aiohttp_client: Any,
    sink: SmtpSink,
    awa_language: str = "en",
    mailing: dict[str, str] | None = None,
    **more: Any,
) -> Cotonou:
    """Cotonou's node in process, its people; ``mailing``: who gets e-mail (at
    WHO@example.org) and how (immediately, digest, never)."""
    node = await start_local_node(root, aiohttp_client, **mail_config(sink, **more))
    place = await people_of(node, sink, awa_language=awa_language)
    for who, mode in (mailing or {}).items():
        await place.set_email(who, f"{who}@example.org", mode)
    return place


async def people_of(
    node: LocalNode, sink: SmtpSink, *, made: bool = False, awa_language: str = "en"
) -> Cotonou:
    now = node.clock.now_ms()
    if not made:
        await node.account("koffi", "sender")
        await node.account("awa", "reader", language=awa_language)
        await node.account("anne", "coordinator")
    store, people = node.store, node.node_dir.people
    awa = await person_of_account(store, people, "awa")
    anne = await person_of_account(store, people, "anne")
    koffi = await person_of_account(store, people, "koffi")
    place = Cotonou(node, sink)
    for who in ("koffi", "awa", "anne"):
        account = await store.db.execute("SELECT id FROM accounts WHERE username = ?", (who,))
        place.ids[who] = int((await account.fetchone())[0])  # type: ignore[index]
    if made:
        return place
    network = load_network("demo")
    paediatrics, hospital, raws = paediatrics_and_hospital(anne, now)
    for signer, group, person, role in (
        (anne, paediatrics, anne, "coordinator"),
        (anne, paediatrics, awa, "reader"),
        (hospital, hospital, koffi, "sender"),
    ):
        raws.append(
            attest_member(
                network, signer, group=group.public, member=person.public, role=role,
                display_name=role.title(), registration="ONMB-1234", diploma="DES",
                charter_accepted=now, facility="CHU Cotonou", subspecialities=["paediatrics"],
                languages=["fr"], home_node=node.identity.public, weekly_capacity=5, now=now,
                days=365,
            )
        )  # fmt: skip
    terms = new_pair_terms(
        reader=awa.public.key,
        sender=koffi.public.key,
        nonce=os.urandom(16),
        weekly_quota=5,
        reading_delay_hours=48,
    )
    terms_bytes = pack(terms)
    raws.append(
        sign_pair(
            terms, signer=awa, countersignature=countersign(terms_bytes, koffi),
            terms_bytes=terms_bytes, network=network.name, version=now, now=now,
            ttl=365 * DAY_MS,
        )
    )  # fmt: skip
    outcome = await node.app[DIRECTORY].add(raws, now)
    assert outcome["added"] == len(raws), outcome
    place.pair = terms["pair_id"].hex()
    place.group = paediatrics.public.text
    return place


def raw(message: Any) -> str:
    return message.as_string()


async def settled_row(place: Cotonou, who: str) -> Any:
    (row,) = await place.mail.notices_of(place.ids[who])
    return row


async def test_a_case_for_a_reader_makes_one_email_with_no_patient_data(
    tmp_path: Path, aiohttp_client: Any, sink: SmtpSink
) -> None:
    place = await start_cotonou(tmp_path / "cotonou", aiohttp_client, sink)
    for who in ("koffi", "awa", "anne"):
        await place.set_email(who, f"{who}@example.org", "immediately")
    with node_log() as logged:
        case = await place.case_for_awa()
        (message,) = await place.wait_sent(1)
        await place.settle()
    assert case["state"] == "assigned"
    assert len(sink.received()) == 1  # Koffi and Anne have nothing to do yet
    assert sink.recipients == [["awa@example.org"]]
    ref = case["case_id"][:8]
    assert message["Subject"] == f"[tsf · CHU Cotonou] A case for you: {ref}"  # Awa: English
    assert message["Content-Language"] == "en"
    body = message.get_content()
    assert f"https://tsf.chu-cotonou.example/web/cases/{case['case_id']}" in body
    text = raw(message)
    patient = case["patient"]
    dataset = pydicom.dcmread(CT, stop_before_pixels=True)
    for secret in (
        patient["name"],
        patient["id"],
        patient["pseudonym"],
        str(dataset.PatientName),
        str(dataset.PatientID),
        FORM["question"],
        FORM["clinical_history"],
        FORM["preliminary_reading"],
    ):
        assert secret not in text, secret
    # The node's log says an e-mail went, never to whom nor about which patient.
    log = logged.getvalue()
    assert '"e-mail sent"' in log
    for secret in ("awa@example.org", patient["name"], FORM["question"]):
        assert secret not in log
    row = await settled_row(place, "awa")
    assert (row.state, row.attempts) == ("sent", 1)


async def test_a_french_reader_gets_french(
    tmp_path: Path, aiohttp_client: Any, sink: SmtpSink
) -> None:
    place = await start_cotonou(
        tmp_path / "cotonou",
        aiohttp_client,
        sink,
        awa_language="fr",
        mailing={"awa": "immediately"},
    )
    case = await place.case_for_awa()
    (message,) = await place.wait_sent(1)
    ref = case["case_id"][:8]
    assert message["Subject"] == f"[tsf · CHU Cotonou] Un cas pour vous : {ref}"
    assert message["Content-Language"] == "fr"
    body = message.get_content()
    assert "Connectez-vous pour le voir" in body
    assert "Aucune donnée de patient" in body
    assert FORM["question"] not in raw(message)


async def test_a_daily_digest_sends_one_email_a_day_and_never_sends_none(
    tmp_path: Path, aiohttp_client: Any, sink: SmtpSink
) -> None:
    place = await start_cotonou(
        tmp_path / "cotonou", aiohttp_client, sink, mailing={"awa": "digest"}
    )
    node = place.node
    first = await place.case_for_awa()
    node.clock.advance(2 * HOUR_MS)
    second = await place.case_for_awa()
    await place.settle()
    assert sink.received() == []  # held for the digest
    node.clock.advance(next_digest(node.clock.now_ms(), 7) - node.clock.now_ms())
    (digest,) = await place.wait_sent(1)
    assert digest["Subject"] == "[tsf · CHU Cotonou] 2 notices today"
    body = digest.get_content()
    assert first["case_id"] in body
    assert second["case_id"] in body
    node.clock.advance(HOUR_MS)
    await place.settle()
    assert len(sink.received()) == 1
    # The next day's case goes in the next day's digest, alone.
    third = await place.case_for_awa()
    node.clock.advance(6 * HOUR_MS)
    await place.settle()
    assert len(sink.received()) == 1
    node.clock.advance(next_digest(node.clock.now_ms(), 7) - node.clock.now_ms())
    got = await place.wait_sent(2)
    assert third["case_id"] in got[1].get_content()
    # "never": nothing queued, nothing sent.
    await place.set_email("awa", "awa@example.org", "never")
    await place.case_for_awa()
    node.clock.advance(DAY_MS)
    await place.settle()
    assert len(sink.received()) == 2
    assert len(await place.mail.notices_of(place.ids["awa"])) == 3


async def test_a_refusal_fails_for_good_and_the_operator_sees_it(
    tmp_path: Path, aiohttp_client: Any, sink: SmtpSink
) -> None:
    place = await start_cotonou(tmp_path / "cotonou", aiohttp_client, sink)
    await place.node.account("olga", "admin")
    await place.set_email("awa", "awa@example.org", "immediately")
    sink.answer = "550 5.1.1 <awa@example.org>: no such mailbox here"
    await place.case_for_awa()
    await place.settle()
    row = await settled_row(place, "awa")
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.last_error.startswith("550")
    assert "awa@example.org" not in row.last_error
    place.node.clock.advance(DAY_MS)
    sink.answer = None
    await place.settle()
    assert sink.received() == []  # never tried again
    browser: WebBrowser = await place.node.browser("olga")
    status, _, page = await browser.get("/web/admin")
    assert status == 200
    assert "awa@example.org" in page  # the operator sees whose address failed
    assert "550 5.1.1" in page


async def test_a_451_a_timeout_and_no_server_are_retried_until_it_comes_back(
    tmp_path: Path, aiohttp_client: Any, sink: SmtpSink
) -> None:
    place = await start_cotonou(tmp_path / "cotonou", aiohttp_client, sink)
    clock = place.node.clock
    await place.set_email("awa", "awa@example.org", "immediately")
    sink.answer = "451 4.3.0 try again later"
    case = await place.case_for_awa()
    await place.settle()
    row = await settled_row(place, "awa")
    assert (row.state, row.attempts) == ("queued", 1)
    assert row.next_attempt_ms == clock.now_ms() + 60_000  # retry_base_s
    await place.settle()
    assert (await settled_row(place, "awa")).attempts == 1  # not before its time
    # The server takes longer than the node waits (timeout_s = 1).
    sink.answer, sink.delay_s = None, 3.0
    clock.advance(60_000)
    await place.settle()
    row = await settled_row(place, "awa")
    assert (row.state, row.attempts) == ("queued", 2)
    assert row.next_attempt_ms == clock.now_ms() + 120_000  # doubled
    # No server at all.
    sink.delay_s = 0.0
    sink.stop()
    clock.advance(120_000)
    await place.settle()
    row = await settled_row(place, "awa")
    assert (row.state, row.attempts) == ("queued", 3)
    assert row.next_attempt_ms == clock.now_ms() + 240_000
    assert sink.received() == []
    # Back on the same port: sent once.
    sink.start()
    clock.advance(240_000)
    (message,) = await place.wait_sent(1)
    assert case["case_id"][:8] in message["Subject"]
    clock.advance(DAY_MS)
    await place.settle()
    assert len(sink.received()) == 1
    assert (await settled_row(place, "awa")).state == "sent"


async def test_a_node_restarted_mid_queue_sends_each_email_once(
    tmp_path: Path, aiohttp_client: Any, sink: SmtpSink
) -> None:
    root = tmp_path / "cotonou"
    place = await start_cotonou(root, aiohttp_client, sink, mailing={"awa": "immediately"})
    sink.stop()  # the server is down while the cases come
    cases = [await place.case_for_awa() for _ in range(3)]
    await place.settle()
    assert [r.state for r in await place.mail.notices_of(place.ids["awa"])] == ["queued"] * 3
    await place.node.client.close()  # the node stops (its cleanup: the store closed)
    sink.start()
    clock = ManualClock(place.node.clock.now_ms() + 10 * 60_000)
    app = create_app(NodeDir(root), place.node.config, place.node.identity, clock=clock)
    client = await aiohttp_client(app)
    again = LocalNode(
        root, place.node.config, place.node.identity, clock, app, client, aiohttp_client
    )
    again_place = await people_of(again, sink, made=True)
    got = await again_place.wait_sent(3)
    await again_place.settle()
    clock.advance(DAY_MS)
    await again_place.settle()
    assert len(sink.received()) == 3
    refs = sorted(m["Subject"].rsplit(" ", 1)[1] for m in sink.received())
    assert refs == sorted(c["case_id"][:8] for c in cases)
    assert len({m["Message-ID"] for m in got}) == 3


async def test_due_soon_and_overdue_are_told_to_the_reader_once_each(
    tmp_path: Path, aiohttp_client: Any, sink: SmtpSink
) -> None:
    place = await start_cotonou(tmp_path / "cotonou", aiohttp_client, sink)
    service, clock = place.node.app[CASES], place.node.clock
    await place.set_email("awa", "awa@example.org", "immediately")
    case = await place.case_for_awa()  # due in 48 h
    await place.wait_sent(1)
    for hours, expected in ((20, 1), (5, 2), (1, 2), (23, 3), (1, 3)):
        clock.advance(hours * HOUR_MS)
        await service.notices.deadlines(await service.rows.being_read(), clock.now_ms())
        await place.settle()
        assert len(sink.received()) == expected, hours
    _, soon, late = sink.received()
    ref = case["case_id"][:8]
    assert soon["Subject"] == f"[tsf · CHU Cotonou] Case {ref} is due within 23 h"
    assert late["Subject"] == f"[tsf · CHU Cotonou] Case {ref} is overdue"


async def test_people_set_their_address_and_choice_on_their_own_account_page(
    tmp_path: Path, aiohttp_client: Any, sink: SmtpSink
) -> None:
    place = await start_cotonou(tmp_path / "cotonou", aiohttp_client, sink)
    awa = await place.node.browser("awa")
    status, _, page = await awa.get("/web/account")
    assert status == 200
    assert "E-mail notices" in page  # Awa's account is in English
    status, _, page = await awa.post("/web/account", {"email": "awa@", "mode": "digest"})
    assert status == 400
    assert "not an e-mail address" in page
    assert 'value="awa@"' in page  # what she typed is still there to correct
    assert 'value="digest" checked' in page
    status, _, page = await awa.post(
        "/web/account", {"email": "a\r\nBcc: x@y.org", "mode": "digest"}
    )
    assert status == 400
    status, _, page = await awa.post(
        "/web/account", {"email": " awa@example.org ", "mode": "sometimes"}
    )
    assert status == 400
    contact = await place.mail.contact(place.ids["awa"])
    assert contact is not None
    assert (contact.email, contact.mode) == ("", "immediately")  # nothing changed
    status, _, page = await awa.post(
        "/web/account", {"email": " awa@example.org ", "mode": "digest"}
    )
    assert status == 200
    assert 'value="awa@example.org"' in page
    contact = await place.mail.contact(place.ids["awa"])
    assert contact is not None
    assert (contact.email, contact.mode) == ("awa@example.org", "digest")
    koffi = await place.node.browser("koffi")
    status, _, page = await koffi.get("/web/account")
    assert "Avis par e-mail" in page  # Koffi's is in French
    assert "awa@example.org" not in page  # and he never sees hers


def test_an_smtp_server_without_tls_must_be_on_this_machine(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    base = '[node]\nname = "CHU Cotonou"\n[smtp]\nfrom_address = "tsf@chu.example"\n'
    path.write_text(base + 'host = "smtp.example.org"\nsecurity = "none"\n')
    with pytest.raises(NodeError, match=r"\[smtp\] security = \"none\" only for a server"):
        load_config(path)
    path.write_text(base + 'host = "127.0.0.1"\nsecurity = "none"\n')
    assert load_config(path).smtp_security == "none"
    path.write_text(base + 'host = "smtp.example.org"\nsecurity = "ssl"\n')
    with pytest.raises(NodeError, match=r"\[smtp\] security must be"):
        load_config(path)
    path.write_text('[node]\nname = "x"\n[smtp]\nhost = "smtp.example.org"\n')
    with pytest.raises(NodeError, match=r"\[smtp\] from_address is missing"):
        load_config(path)


async def test_an_application_to_attest_is_emailed_to_the_groups_coordinator(
    tmp_path: Path, aiohttp_client: Any, sink: SmtpSink
) -> None:
    place = await start_cotonou(
        tmp_path / "cotonou", aiohttp_client, sink, mailing={"anne": "immediately"}
    )
    visitor = await place.node.browser()
    status, _, page = await visitor.get("/web/join")
    assert status == 200
    fields = application(place.group)
    status, _, page = await visitor.post("/web/join", fields)
    assert status == 200, page
    (message,) = await place.wait_sent(1)
    assert message["To"] == "anne@example.org"
    assert message["Subject"] == "[tsf · CHU Cotonou] Une candidature à attester pour Pédiatrie"
    assert "ONMB-77" not in raw(message)  # the applicant's details stay on the page
    assert "Dr Jo Lecteur" not in raw(message)


def test_doctor_checks_the_mail_server_without_sending(tmp_path: Path, sink: SmtpSink) -> None:
    node = tmp_path / "parakou"
    assert tsfnode("init", node, "--name", "CHU Parakou", "--port", "0").returncode == 0
    smtp = {"host": "127.0.0.1", "port": sink.port, "security": "none"}
    configure(node, smtp={**smtp, "from_address": "tsf@parakou.example", "timeout_s": 2})
    checked = tsfnode("doctor", node, "--lang", "en")
    assert f"✔ Mail server 127.0.0.1:{sink.port}: connected and greeted" in checked.stdout
    assert sink.received() == []
    sink.stop()
    checked = tsfnode("doctor", node, "--lang", "fr")
    assert f"✘ Serveur de messagerie 127.0.0.1:{sink.port} : cannot reach" in checked.stdout
    sink.start()


def test_a_name_with_line_breaks_from_a_record_cannot_add_headers_or_stop_the_queue() -> None:
    """A group's name comes from a record signed elsewhere: with a line break in it the
    e-mail library refused the subject, and the exception stopped every e-mail queued
    after that notice. The subject is one line; no header can be slipped in."""
    notice = Notice("application", None, {"group": "Pédiatrie\r\nBcc: mallory@example.org"})
    message = compose(
        [notice], lang="fr", node_name="CHU Cotonou", base_url="https://tsf.example.org",
        from_address="tsf@example.org", to_address="anne@example.org",
        message_id="<1.tsf@example.org>", now_ms=0,
    )  # fmt: skip
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"]
    assert "\r" not in message["Subject"]
    assert "Pédiatrie Bcc: mallory@example.org" in message["Subject"]
