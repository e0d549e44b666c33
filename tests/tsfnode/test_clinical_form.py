"""The clinical form, in process: every field of the schema (protocol/caseform.py) is
asked by the form page, shown on the case page and in the viewer's panel, given by the
JSON API, in French and English; ages are shown in the unit they were given.

One real node through aiohttp's test client: Dr Koffi, a sender attested in the
directory, uploads a CT, fills in the form and sends the case to a paediatric group
whose readers work at another node (not running: the case waits in the outbox)."""

from __future__ import annotations

import asyncio
import html
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bootstrap.network import demo_anchor, load_network
from bootstrap.tools import admit_node, attest_member, create_group
from protocol.caseform import AGE_UNITS, CASE_FORM, FIELDS, Age
from protocol.identity import Identity
from tests.tsfnode.intake.conftest import PYDICOM_FILES
from tsfnode.app import create_app
from tsfnode.auth.accounts import create_account, create_token
from tsfnode.clock import ManualClock
from tsfnode.config import NodeConfig
from tsfnode.i18n import LANGUAGES, texts, translator
from tsfnode.network.directory import DirectoryService
from tsfnode.node import init_node
from tsfnode.nodedir import NodeDir
from tsfnode.store import Store
from tsfnode.web.caseform import age_text, shown_form

Client = TestClient[web.Request, web.Application]
NOW = 1_780_000_000_000  # 28 May 2026, held still
PASSWORD = "correct horse battery"
ANSWERS = {
    "urgency": "urgent",
    "age": "6",
    "age_unit": "months",
    "sex": "F",
    "modality": "CT",
    "body_part": "THORAX",
    "question": "Pneumopathie ? Épanchement ?",
    "clinical_history": "Toux fébrile depuis 10 jours.\nCrépitants à droite.",
    "prior_imaging": "Radiographie du 3 mars : opacité basale droite.",
    "preliminary_reading": "Condensation lobaire inférieure droite ?",
    "answer_language": "fr",
}


# --- the schema, its words and its ages ----------------------------------------------


def test_every_field_has_its_words_in_both_languages() -> None:
    for field in FIELDS:
        keys = [field.label, field.shown, *([field.help] if field.help else [])]
        keys += [field.choice_key(c) for c in field.choices]
        keys += [f"unit_{u.name}" for u in field.units]
        for key in keys:
            for lang in LANGUAGES:
                assert translator(lang).get(key, "").strip(), (field.name, key, lang)
        for unit in field.units:  # a count of each unit, in each language's plural forms
            for lang in LANGUAGES:
                one, many = (
                    texts(lang).plural(f"count_{unit.name}", 1),
                    texts(lang).plural(f"count_{unit.name}", 7),
                )
                assert one.startswith("1 "), (unit.name, lang)
                assert many.startswith("7 "), (unit.name, lang)
                assert not one.startswith("count_"), (unit.name, lang)


@pytest.mark.parametrize(
    ("age", "fr", "en"),
    [
        (Age(6, "months"), "6 mois", "6 months"),
        (Age(1, "months"), "1 mois", "1 month"),
        (Age(3, "weeks"), "3 semaines", "3 weeks"),
        (Age(1, "weeks"), "1 semaine", "1 week"),
        (Age(10, "days"), "10 jours", "10 days"),
        (Age(0, "days"), "0 jour", "0 days"),
        (Age(45, "years"), "45 ans", "45 years"),
        (Age(1, "years"), "1 an", "1 year"),
    ],
)
def test_an_age_is_shown_as_people_write_it(age: Age, fr: str, en: str) -> None:
    assert (age_text(age, "fr"), age_text(age, "en")) == (fr, en)


def test_a_form_signed_by_an_older_node_shows_every_field_and_its_age_in_months() -> None:
    older = {  # as nodes before the one schema signed it: whole years and months
        "study_uid": "2.25.1",
        "urgency": "routine",
        "age_years": 0,
        "age_months": 6,
        "sex": "M",
        "clinical_history": "",
        "question": "Invagination ?",
        "modality": "US",
        "body_part": "ABDOMEN",
        "prior_imaging": "ASP normal",
        "preliminary_reading": "Cocarde ?",
        "answer_language": "en",
    }
    shown = {f.name: f for f in shown_form(older, "fr")}
    assert list(shown) == [f.name for f in FIELDS]
    assert shown["age"].text == "6 mois"
    assert shown["prior_imaging"].text == "ASP normal"
    assert (shown["preliminary_reading"].label, shown["preliminary_reading"].text) == (
        "Lecture de l'émetteur",
        "Cocarde ?",
    )
    assert shown["modality"].text == "US · échographie"
    assert shown["answer_language"].text == "anglais"
    assert shown["clinical_history"].text == ""  # shown as "not given"


# --- one node, in process ----------------------------------------------------------


@dataclass
class Node:
    client: Client
    group: str  # the paediatric group's id (text)
    token: str  # Dr Koffi's API token


async def _make_node(root: Path) -> tuple[NodeConfig, Identity, str, str]:
    """A node of the demo network with Dr Koffi (a sender, attested by his hospital's
    coordinator) and a paediatric group whose coordinator and reader are at Erasme."""
    config = NodeConfig(name="CHU Cotonou", country="BJ", http_port=0, discovery_mdns=False)
    identity = await asyncio.to_thread(init_node, root, config)
    node_dir = NodeDir(root)
    network = load_network("demo")
    store = await Store.open(node_dir.database)
    try:
        koffi = await create_account(
            store,
            username="koffi",
            display_name="Dr Koffi Émetteur",
            role="sender",
            password=PASSWORD,
            language="fr",
            now=NOW,
            people=node_dir.people,
        )
        assert koffi is not None
        token = await create_token(store, username="koffi", purpose="send", days=30, now=NOW)
        hospital, hospital_coordinator, paediatrics, anne, marie, erasme = (
            Identity.generate(os.urandom) for _ in range(6)
        )
        records = [
            admit_node(network, demo_anchor(), identity.public, now=NOW),
            admit_node(network, demo_anchor(), erasme.public, now=NOW),
        ]
        for group, name, kind, coordinator, covers in (
            (hospital, "CHU Cotonou", "institutional", hospital_coordinator, ()),
            (paediatrics, "Pédiatrie", "subspeciality", anne, ("paediatrics",)),
        ):
            records += create_group(
                network,
                demo_anchor(),
                group,
                name=name,
                kind=kind,
                routing="assign",
                may_admit=False,
                coordinators=[coordinator.public],
                subspecialities=covers,
                now=NOW,
            )
        for signer, group, who, role, home in (
            (hospital_coordinator, hospital, koffi, "sender", identity.public),
            (anne, paediatrics, anne.public, "coordinator", erasme.public),
            (anne, paediatrics, marie.public, "reader", erasme.public),
        ):
            records.append(
                attest_member(
                    network,
                    signer,
                    group=group.public,
                    member=who,
                    role=role,
                    display_name=f"Dr {role}",
                    registration="" if role == "sender" else "ONMB-1234",
                    diploma="" if role == "sender" else "DES radiologie",
                    charter_accepted=NOW,
                    facility="CHU Cotonou" if role == "sender" else "",
                    subspecialities=[],
                    languages=["fr"],
                    home_node=home,
                    weekly_capacity=3,
                    now=NOW,
                )
            )
        directory = DirectoryService(network, identity, store)
        await directory.load(NOW)
        outcome = await directory.add(records, NOW)
        assert not [k for k in outcome if k.startswith("ignored")], outcome
    finally:
        await store.close()
    return config, identity, paediatrics.public.text, token


@pytest.fixture
async def node(tmp_path: Path, aiohttp_client: Any) -> Node:
    config, identity, group, token = await _make_node(tmp_path / "cotonou")
    app = create_app(NodeDir(tmp_path / "cotonou"), config, identity, clock=ManualClock(NOW))
    return Node(await aiohttp_client(app), group, token)


async def _sign_in(client: Client, lang: str) -> None:
    page = await (await client.get(f"/web/login?lang={lang}")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    fields = {"csrf": csrf[1], "username": "koffi", "password": PASSWORD, "next": "/web/new"}
    response = await client.post("/web/login", data=fields)
    assert response.status == 200
    assert str(response.url).endswith("/web/new")


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found[1]


async def _upload(client: Client, csrf: str, path: Path) -> tuple[str, str]:
    """The file sent as the form page sends it: a batch, its bytes, the import, and the
    images that may show identity confirmed. The batch and the study found."""
    headers = {"X-CSRF-Token": csrf}
    data = await asyncio.to_thread(path.read_bytes)
    made = await client.post(
        "/web/uploads", json={"name": path.name, "size": len(data)}, headers=headers
    )
    assert made.status == 201, await made.text()
    upload = await made.json()
    sent = await client.patch(
        f"/web/uploads/{upload['id']}",
        data=data,
        headers={
            **headers,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert sent.status == 200, await sent.text()
    found = await (
        await client.post(f"/web/batches/{upload['batch']}/import", headers=headers)
    ).json()
    (study,) = found["studies"]
    for flag in study["flags"]:
        confirmed = await client.post(
            f"/web/studies/{study['study_uid']}/review",
            json={"image": flag["sop_uid"]},
            headers=headers,
        )
        assert confirmed.status == 200, await confirmed.text()
    return upload["batch"], study["study_uid"]


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _clinical(page: str) -> dict[str, str]:
    """The clinical form as the page shows it: each field's value by its name."""
    block = re.search(r'<dl id="clinical".*?</dl>', page, re.S)
    assert block is not None, "the page shows no clinical form"
    return {
        name: _text(value).strip()
        for name, value in re.findall(r'<dd id="form-(\w+)"[^>]*>(.*?)</dd>', block[0], re.S)
    }


async def _send(node: Node, lang: str, **changes: str) -> tuple[int, str]:
    await _sign_in(node.client, lang)
    page = await (await node.client.get("/web/new")).text()
    csrf = _csrf(page)
    batch, study = await _upload(node.client, csrf, PYDICOM_FILES / "CT_small.dcm")
    answers = {**ANSWERS, **changes}
    fields = {"csrf": csrf, "batch": batch, "study_uid": study, "route": f"group:{node.group}"}
    response = await node.client.post("/web/new", data={**fields, **answers})
    return response.status, await response.text()


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_form_page_asks_every_field_of_the_schema(node: Node, lang: str) -> None:
    await _sign_in(node.client, lang)
    page = await (await node.client.get("/web/new")).text()
    text = html.unescape(page)
    words = translator(lang)
    asked = set(re.findall(r'<(?:input|select|textarea)[^>]* name="(\w+)"', page))
    for field in FIELDS:
        assert field.name in asked, field.name
        assert words[field.label] in text, field.label
        if field.help:
            assert words[field.help] in text, field.help
        for choice in field.choices:
            assert f'name="{field.name}" value="{choice}"' in page or (
                f'<option value="{choice}"' in page
            ), (field.name, choice)
    assert "age_unit" in asked
    for unit in AGE_UNITS:
        assert f'<option value="{unit.name}" data-max="{unit.max}"' in page
    assert "age_years" not in asked  # one field, in its unit


async def test_every_field_typed_reaches_the_case_page_the_viewer_and_the_api(
    node: Node,
) -> None:
    status, page = await _send(node, "fr")
    assert status == 200, _text(page)[:2000]
    shown = _clinical(page)
    assert list(shown) == [f.name for f in FIELDS]
    assert shown["age"] == "6 mois"
    assert shown["prior_imaging"] == ANSWERS["prior_imaging"]
    assert shown["preliminary_reading"] == ANSWERS["preliminary_reading"]
    assert shown["clinical_history"] == ANSWERS["clinical_history"]
    assert shown["question"] == ANSWERS["question"]
    assert shown["urgency"] == "urgent"
    assert shown["sex"] == "féminin"
    assert shown["modality"] == "CT · scanner"
    assert shown["body_part"] == "THORAX"
    assert shown["answer_language"] == "français"
    assert "Lecture de l'émetteur" in _text(page)
    case_id = re.search(r'href="/web/cases/([0-9a-f]{32})/viewer"', page)
    assert case_id is not None
    # In English, the same case; and in the viewer's panel, beside the images.
    english = await (await node.client.get(f"/web/cases/{case_id[1]}?lang=en")).text()
    assert _clinical(english)["age"] == "6 months"
    assert "The sender's reading" in _text(english)
    title = re.search(r"<title>(.*?)</title>", english, re.S)
    assert title is not None
    assert title[1] == f"Case {case_id[1][:8]} · tsf"  # the tab's name, nothing else
    viewer = await (await node.client.get(f"/web/cases/{case_id[1]}/viewer?lang=en")).text()
    in_panel = _clinical(viewer)
    assert list(in_panel) == [f.name for f in FIELDS]
    assert in_panel["age"] == "6 months"
    assert in_panel["prior_imaging"] == ANSWERS["prior_imaging"]
    assert in_panel["preliminary_reading"] == ANSWERS["preliminary_reading"]
    # The JSON API: every key of the signed form, and the age as it was given.
    answer = await node.client.get(
        f"/api/v1/cases/{case_id[1]}", headers={"Authorization": f"Bearer {node.token}"}
    )
    found = await answer.json()
    assert list(found["form"]) == list(CASE_FORM.fields)
    assert found["age"] == {"value": 6, "unit": "months"}
    assert (found["form"]["age_years"], found["form"]["age_months"]) == (0, 6)
    assert found["form"]["prior_imaging"] == ANSWERS["prior_imaging"]


@pytest.mark.parametrize(
    ("age", "unit", "lang", "message"),
    [
        ("30", "months", "fr", "Âge en mois : un nombre entier de 0 à 23."),
        ("six", "weeks", "en", "Age in weeks: a whole number from 0 to 52."),
        ("", "years", "en", "Age in years: a whole number from 0 to 130."),
    ],
)
async def test_an_age_beyond_its_unit_is_refused_in_the_persons_language_and_nothing_is_lost(
    node: Node, age: str, unit: str, lang: str, message: str
) -> None:
    status, page = await _send(node, lang, age=age, age_unit=unit)
    assert status == 400
    assert message in html.unescape(page)
    assert ANSWERS["prior_imaging"] in html.unescape(page)  # kept as typed
    assert f'<option value="{unit}" data-max' in page
    assert re.search(rf'<option value="{unit}" data-max="\d+" selected>', page)


async def test_the_local_reference_typed_with_the_form_is_shown_to_the_sender_and_not_sent(
    node: Node,
) -> None:
    reference = "Dossier 88 KPADONOU"
    status, page = await _send(node, "fr", local_reference=reference)
    assert status == 200, _text(page)[:2000]
    form = await (await node.client.get("/web/new?lang=en")).text()
    assert "Local reference (file, name)" in form
    assert "Visible in this hospital only" in form
    assert f'<dd id="local-reference">{reference}</dd>' in page
    listing = await (await node.client.get("/web/cases")).text()
    assert f'<span class="local-reference">{reference}</span>' in listing
    case_id = re.search(r'href="/web/cases/([0-9a-f]{32})/viewer"', page)
    assert case_id is not None
    answer = await node.client.get(
        f"/api/v1/cases/{case_id[1]}", headers={"Authorization": f"Bearer {node.token}"}
    )
    found = await answer.json()
    assert found["local_reference"] == reference  # the sender's own API, on his node
    assert "KPADONOU" not in str(found["documents"])  # in nothing signed, nothing sent
    assert "KPADONOU" not in str(found["form"])
