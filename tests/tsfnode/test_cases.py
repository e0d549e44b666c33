"""Cases across three real nodes on loopback, through the local API, with people's keys
attested in the directory as a network's coordinators would:

- node 0, CHU Cotonou: Dr Koffi, a sender;
- node 1, Erasme: Dr Anne, coordinator of the paediatric group; Dr Marie, a reader of
  it; Dr Fatou, a volunteer of the community;
- node 2, Dakar: Dr Awa, a reader of the paediatric group; Dr Ousmane, coordinator and
  volunteer of the community.

Each routing goes the whole way: submit, deliver, assign or claim, report, the report
re-linked to the real patient at the sender's node, the evaluation back, the figures on
both sides and network-wide. Then: a claim race, the weekly quota, a suspended pair, an
overdue case escalated, images purged after closing, the audit chain and its tampering.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pydicom
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bootstrap.keys import write_key
from bootstrap.network import demo_anchor
from tests.harness.cluster import Cluster, add_records
from tests.harness.data import PYDICOM_FILES, read_dicom
from tests.harness.nodes import tsfnode
from tests.harness.people import FORM, PASSWORD, REPORT, Browser, Person, Records, call, pair_up
from tests.harness.waiting import wait_for
from tsfnode.cases.metrics import week_of
from tsfnode.i18n import texts

pytestmark = pytest.mark.slow

SOURCES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "JPEG-lossy.dcm",
    "liver_1frame.dcm",
    "693_J2KI.dcm",
    "image_dfl.dcm",
    "SC_rgb_jpeg.dcm",
    "SC_jpeg_no_color_transform.dcm",
    "SC_jpeg_no_color_transform_2.dcm",
    "SC_rgb_small_odd.dcm",
)
QUICK = {
    "transfer": {"poll_interval_ms": 500, "retry_base_ms": 200},
    "cases": {"scan_interval_ms": 300, "stats_interval_ms": 1000, "retention_days": 0},
}


class CaseNet:
    def __init__(self, base: Path, before_start: Callable[[Cluster], None] | None = None) -> None:
        """``before_start``: called with the cluster configured, before its nodes start."""
        anchor_key = base / "anchor.key"
        write_key(anchor_key, demo_anchor())
        self.base = base
        self.cluster = Cluster(base, anchor_key, 3, **QUICK)
        c = self.cluster
        self.koffi = Person(c, 0, "koffi", "sender", "Dr Koffi Émetteur")
        self.anne = Person(c, 1, "anne", "coordinator", "Dr Anne Coordinatrice")
        self.marie = Person(c, 1, "marie", "reader", "Dr Marie Lectrice")
        self.fatou = Person(c, 1, "fatou", "reader", "Dr Fatou Bénévole")
        self.awa = Person(c, 2, "awa", "reader", "Dr Awa Lectrice")
        self.ousmane = Person(c, 2, "ousmane", "coordinator", "Dr Ousmane Bénévole")
        records = Records(base, c)
        hospital_coordinator, self.hospital = records.hospital()
        self.paediatrics = records.group("Pédiatrie", "subspeciality", self.anne.id, "paediatrics")
        self.community = records.group("COVID Sénégal", "community", self.ousmane.id, "chest")
        records.attest(hospital_coordinator, self.hospital, self.koffi, "sender")
        anne_key, ousmane_key = self.anne.key, self.ousmane.key
        records.attest(anne_key, self.paediatrics, self.anne, "coordinator")
        records.attest(anne_key, self.paediatrics, self.marie, "reader")
        records.attest(anne_key, self.paediatrics, self.awa, "reader")
        records.attest(ousmane_key, self.community, self.ousmane, "coordinator")
        records.attest(ousmane_key, self.community, self.fatou, "reader")
        add_records(c.dirs[0], records.write())  # before the start: gossip carries them
        folder = base / "studies"
        folder.mkdir()
        self.studies: list[str] = []  # in the order of SOURCES: CT_small (named) first
        intake = c.dirs[0] / "intake"
        for name in SOURCES:
            (folder / name).mkdir()
            shutil.copy(PYDICOM_FILES / name, folder / name / name)
            before = {p.name for p in intake.iterdir()} if intake.exists() else set()
            imported = tsfnode("import", folder / name, "--node", c.dirs[0], "--quiet")
            assert imported.returncode == 0, imported.stderr
            (new,) = {p.name for p in intake.iterdir() if p.is_dir()} - before
            self.studies.append(new)
        for study in self.studies:
            done = tsfnode("review", study, "--node", c.dirs[0], "--confirm-all")
            assert done.returncode == 0, done.stderr
        if before_start is not None:
            before_start(c)
        c.start()
        people = [self.koffi, self.anne, self.marie, self.fatou, self.awa, self.ousmane]
        for i in range(3):
            wait_for(
                f"node {i} knows every person and node",
                lambda i=i: len(self._members(i)) == len(people) and self._nodes(i) == 3,
                timeout=60,
            )

    def close(self) -> None:
        self.cluster.close()

    def _members(self, i: int) -> list[Any]:
        return call(f"{self.cluster.url(i)}/api/v1/directory?kind=member", "")[1]  # type: ignore[no-any-return]

    def _nodes(self, i: int) -> int:
        return len(call(f"{self.cluster.url(i)}/api/v1/directory?kind=node", "")[1])

    def study(self) -> str:
        return self.studies.pop(0)

    def state(self, person: Person, case_id: str) -> str | None:
        status, found = person.api(f"/cases/{case_id}")
        return found["state"] if status == 200 else None


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseNet]:
    with contextlib.closing(CaseNet(tmp_path_factory.mktemp("cases"))) as network:
        yield network


def original_of(study_uid: str) -> pydicom.Dataset:
    for name in SOURCES:
        ds = read_dicom(PYDICOM_FILES / name, stop_before_pixels=True)
        if ds.StudyInstanceUID == study_uid:
            return ds
    raise AssertionError(f"no source file has study {study_uid}")


def make_pair(net: CaseNet, quota: int) -> str:
    """Marie proposes, Koffi accepts: both have signed, gossip carries the pair."""
    terms = {"with": net.koffi.id, "weekly_quota": quota, "reading_delay_hours": 48}
    # The id is derived from the two people and a nonce: a caller cannot choose it.
    status, refused = net.marie.api("/pairs", "POST", {**terms, "pair_id": "00" * 16})
    assert status == 400
    assert "derived" in refused["error"]
    proposal = net.marie.ok("/pairs", "POST", terms)
    pair_id = proposal["pair_id"]
    wait_for(
        "the proposal reaches Koffi's node",
        lambda: any(p["pair_id"] == pair_id for p in net.koffi.ok("/pairs")["proposals"]),
    )
    # Nobody else accepts it for him, and Marie cannot accept her own proposal.
    status, _ = net.marie.api(f"/pairs/{pair_id}/accept", "POST")
    assert status == 404
    net.koffi.ok(f"/pairs/{pair_id}/accept", "POST")
    wait_for(
        "the pair is in force at Marie's node",
        lambda: any(
            p["pair_id"] == pair_id and p["status"] == "active"
            for p in net.marie.ok("/pairs")["pairs"]
        ),
    )
    return str(pair_id)


def test_a_pairs_case_goes_the_whole_way_and_is_measured_on_both_sides(net: CaseNet) -> None:
    koffi, marie = net.koffi, net.marie
    pair_id = make_pair(net, quota=3)
    study = net.study()
    case = koffi.ok(
        "/cases", "POST", {"study_uid": study, "routing": "pair", "target": pair_id, "form": FORM}
    )
    case_id = case["case_id"]
    # At delivery a pair's case is assigned to the pair's reader, with its due date.
    wait_for("Marie has the case", lambda: net.state(marie, case_id) == "assigned")
    at_reader = marie.case(case_id)
    assert at_reader["reader"] == key_hex(marie.id)
    assert at_reader["due_ms"] - at_reader["delivered_ms"] == 48 * 3_600_000
    assert at_reader["form"]["question"] == FORM["question"]
    assert "patient" not in at_reader  # the reader never sees who the patient is
    (images,) = at_reader["images"]
    received = list((net.cluster.dirs[1] / images / "files").rglob("*.dcm"))
    assert received, "the images are on the reader's node"
    wait_for("the delivery is recorded", lambda: net.state(koffi, case_id) == "assigned")
    # A reader other than the pair's cannot report on it, nor even find it.
    status, refused = net.awa.api(f"/cases/{case_id}/report", "POST", REPORT)
    assert status == 404  # the case is not even on Awa's node
    status, refused = net.fatou.api(f"/cases/{case_id}/report", "POST", REPORT)
    assert status == 404  # on Fatou's, it is not hers to see: as if it were not there
    assert refused["error"] == "no such case on this node"
    marie.ok(f"/cases/{case_id}/report", "POST", REPORT)
    wait_for("the report is back", lambda: net.state(koffi, case_id) == "report_delivered")
    at_sender = koffi.case(case_id)
    (report,) = [d for d in at_sender["documents"] if d["kind"] == "report"]
    assert report["signer"] == key_hex(marie.id)
    assert report["impression"] == REPORT["impression"]
    # Re-linked to the real patient, on the sender's node only.
    original = original_of(at_sender["patient"]["study_uid"])
    assert at_sender["patient"]["name"] == str(original.PatientName)
    assert at_sender["patient"]["id"] == str(original.PatientID)
    wait_for(
        "the reader's node has the receipt",
        lambda: net.state(marie, case_id) == "report_delivered",
    )
    koffi.ok(
        f"/cases/{case_id}/evaluation",
        "POST",
        {
            "relevant": True,
            "useful": True,
            "changed_management": True,
            "teaching_consent": True,
            "comment": "Merci.",
        },
    )
    wait_for("the evaluation reaches Marie", lambda: net.state(marie, case_id) == "evaluated")
    assert marie.case(case_id)["useful"] is True
    check_teaching(net, case_id, original)
    # Figures on both sides, then across the network from the signed node_stats.
    sent = koffi.ok("/metrics")
    assert sent["pairs"][pair_id]["sent"] == 1
    assert sent["pairs"][pair_id]["reports_back"] == 1
    assert sent["pairs"][pair_id]["useful_share"] == 1.0
    assert isinstance(sent["total"]["transit_ms"], int)  # a median, not "no data"
    assert sent["total"]["turnaround_ms"] > 0
    read = marie.ok("/metrics")
    assert read["total"]["received"] >= 1
    assert read["total"]["read"] >= 1
    assert isinstance(read["total"]["reading_ms"], int)
    csv_status, csv_text = call(f"{net.cluster.url(0)}/api/v1/metrics?format=csv", koffi.token)
    assert csv_status == 200
    assert csv_text.splitlines()[0].startswith("scope,key,sent")
    assert any(line.startswith(f"pair,{pair_id},1,") for line in csv_text.splitlines())
    # Per period: the ISO week of submission, and any window of time asked for.
    submitted = koffi.case(case_id)["submitted_ms"]
    week = week_of(submitted)
    assert sent["weeks"][week]["reports_back"] >= 1
    assert any(line.startswith(f"week,{week},") for line in csv_text.splitlines())
    before = koffi.ok(f"/metrics?until_ms={submitted}")
    assert pair_id not in before["pairs"]
    assert before["total"]["sent"] == sent["total"]["sent"] - 1
    assert koffi.ok(f"/metrics?since_ms={submitted}")["pairs"][pair_id]["sent"] == 1
    for query, reason in (
        ("since_ms=yesterday", "since_ms: a time in ms since 1970, not 'yesterday'"),
        (f"since_ms={submitted}&until_ms={submitted}", "until_ms must come after since_ms"),
    ):
        status, refused = koffi.api(f"/metrics?{query}")
        assert status == 400
        assert refused["error"] == reason

    def network_sees_both() -> bool:
        nodes = {n["node"]: n for n in net.awa.ok("/metrics/network")["nodes"]}
        cotonou = nodes.get(key_hex(net.cluster.ids[0]), {})
        erasme = nodes.get(key_hex(net.cluster.ids[1]), {})
        return cotonou.get("reports_back", 0) >= 1 and erasme.get("read", 0) >= 1

    wait_for("Dakar shows Cotonou's and Erasme's signed figures", network_sees_both)
    with urllib.request.urlopen(f"{net.cluster.url(0)}/metrics", timeout=10) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    assert families["tsf_cases_sent"].samples[0].value >= 1
    assert families["tsf_cases_reports_back"].samples[0].value >= 1


def check_teaching(net: CaseNet, case_id: str, original: pydicom.Dataset) -> None:
    """With the sender's consent, Marie publishes the case; Dakar lists it and fetches
    its images, with no trace of the patient."""
    status, refused = net.koffi.api(f"/cases/{case_id}/teaching", "POST", {"title": "x"})
    assert status == 403
    assert "only the reader of the case publishes it" in refused["error"]
    published = net.marie.ok(
        f"/cases/{case_id}/teaching", "POST", {"title": "Pneumopathie lobaire de l'enfant"}
    )
    assert published["files"] >= 1

    def listed() -> list[Any]:
        return [e for e in net.awa.ok("/teaching") if e["teaching_id"] == published["teaching_id"]]

    wait_for("the library at Dakar lists it", lambda: len(listed()) == 1)
    (entry,) = listed()
    assert entry["impression"] == REPORT["impression"]
    assert (entry["modality"], entry["age_years"], entry["sex"]) == ("CT", 4, "F")
    assert "clinical_history" not in entry
    with urllib.request.urlopen(entry["images_url"], timeout=30) as response:
        archive = zipfile.ZipFile(io.BytesIO(response.read()))
    assert len(archive.namelist()) == entry["files"]
    for name in archive.namelist():
        data = archive.read(name)
        ds = pydicom.dcmread(io.BytesIO(data))
        assert str(ds.PatientName).startswith("TEACHING^")
        assert str(original.PatientName).encode() not in data
        assert str(original.PatientID).encode() not in data


def key_hex(text: str) -> str:
    from protocol.identity import PublicIdentity

    return PublicIdentity.from_text(text).key.hex()


def test_a_groups_case_is_assigned_by_the_coordinator_and_read_on_another_node(
    net: CaseNet,
) -> None:
    koffi, anne, awa, marie = net.koffi, net.anne, net.awa, net.marie
    # The sender asks which groups read paediatrics, and how busy they are.
    (suggested,) = koffi.ok("/groups?subspeciality=paediatrics")
    assert suggested["group"] == net.paediatrics
    assert (suggested["readers"], suggested["weekly_capacity"]) == (3, 9)
    assert suggested["open_cases"] == 0
    case_id = koffi.ok(
        "/cases",
        "POST",
        {
            "study_uid": net.study(),
            "routing": "group",
            "target": net.paediatrics,
            "form": {**FORM, "urgency": "urgent"},
            "reading_delay_hours": 24,
        },
    )["case_id"]
    # Its load, from the sender node's signed figures, is seen across the network.
    wait_for(
        "Dakar sees the group's new load",
        lambda: awa.ok("/groups?subspeciality=paediatrics")[0]["open_cases"] == 1,
    )
    assert awa.ok("/groups?subspeciality=paediatrics")[0]["load"] == round(1 / 9, 3)
    # It goes to every node of the group's readers, where it waits for a reader.
    for who in (anne, awa):
        wait_for("offered to the group", lambda who=who: net.state(who, case_id) == "delivered")
    assert any(n["case_id"] == case_id for n in awa.ok("/notifications"))
    # A reader of the group cannot assign; the coordinator can.
    status, refused = marie.api(f"/cases/{case_id}/assign", "POST", {"reader": awa.id})
    assert status == 409
    assert "only the coordinator or node may assign" in refused["error"]
    status, asked = anne.api(f"/cases/{case_id}/assign", "POST", {"reader": awa.id})
    assert status == 202
    assert asked["asked"] == "assign"
    wait_for("Awa has the case", lambda: net.state(awa, case_id) == "assigned")
    assert awa.case(case_id)["reader"] == key_hex(awa.id)
    wait_for("Erasme's copy says so", lambda: net.state(anne, case_id) == "assigned")
    awa.ok(f"/cases/{case_id}/messages", "POST", {"text": "Pouvez-vous envoyer un profil ?"})
    wait_for(
        "the message reaches the sender",
        lambda: any(d["kind"] == "case_message" for d in koffi.case(case_id)["documents"]),
    )
    # The sender adds the images asked for; they join the case on the reader's node.
    status, refused = awa.api(f"/cases/{case_id}/images", "POST", {"study_uid": "2.25.1"})
    assert status == 409
    assert "images are added on the sender's node" in refused["error"]
    assert koffi.ok(f"/cases/{case_id}/images", "POST", {"study_uid": net.study()})["part"] == 1
    wait_for("the new images reach Awa", lambda: len(awa.case(case_id)["images"]) == 2)
    assert any(
        n["case_id"] == case_id and n["kind"] == "images_added" for n in awa.ok("/notifications")
    )
    awa.ok(f"/cases/{case_id}/report", "POST", {**REPORT, "image_quality": "inadequate",
                                                  "quality_reason": "Pas de profil."})  # fmt: skip
    wait_for("the report is back", lambda: net.state(koffi, case_id) == "report_delivered")
    wait_for("Erasme's copy is answered", lambda: net.state(anne, case_id) == "report_delivered")
    at_sender = koffi.case(case_id)
    assert at_sender["image_quality"] == "inadequate"
    # An addendum corrects the report; the sender's messages reach the reader.
    addendum = {
        **REPORT,
        "findings": "Addendum : pas d'épanchement pleural.",
        "image_quality": "inadequate",
        "quality_reason": "Pas de profil.",
    }
    awa.ok(f"/cases/{case_id}/report", "POST", addendum)
    koffi.ok(f"/cases/{case_id}/messages", "POST", {"text": "Merci, profil envoyé."})

    def reports() -> list[dict[str, Any]]:
        return [d for d in koffi.case(case_id)["documents"] if d["kind"] == "report"]

    wait_for("the addendum is back", lambda: len(reports()) == 2)
    first, second = sorted(reports(), key=lambda d: d["created"])
    assert second["supersedes"] == first["digest"]
    assert second["findings"] == addendum["findings"]
    wait_for(
        "the sender's message reaches Awa",
        lambda: any(
            d["kind"] == "case_message" and d["signer"] == key_hex(koffi.id)
            for d in awa.case(case_id)["documents"]
        ),
    )
    koffi.ok(
        f"/cases/{case_id}/evaluation",
        "POST",
        {"relevant": True, "useful": False, "changed_management": False, "comment": ""},
    )
    wait_for("the evaluation reaches Dakar", lambda: net.state(awa, case_id) == "evaluated")
    status, refused = awa.api(f"/cases/{case_id}/teaching", "POST", {"title": "Lobar pneumonia"})
    assert status == 409
    assert "the sender did not consent" in refused["error"]
    group = koffi.ok("/metrics")["groups"][key_hex(net.paediatrics)]
    assert group["quality_inadequate"] >= 1
    assert group["evaluated"] >= 1


def test_a_pairs_case_is_not_seen_by_another_reader_of_the_group_on_the_readers_node(
    net: CaseNet,
) -> None:
    """Issue 22 item 3, as it was found: at Erasme, a paediatric reader attested minutes
    earlier opens the pair's case of Marie and Koffi (clinical data, report, images).
    (After the group's case: she would change the group's figures it checks.)"""
    (case,) = [c for c in net.marie.ok("/cases") if c["routing"] == "pair"]
    case_id, erasme = case["case_id"], net.cluster.url(1)
    zoe = Person(net.cluster, 1, "zoe", "reader", "Dr Zoé Lectrice")
    records = Records(net.base / "zoe", net.cluster)
    (net.base / "zoe").mkdir()
    records.attest(net.anne.key, net.paediatrics, zoe, "reader")
    request = urllib.request.Request(
        f"{erasme}/api/v1/directory/records", data=records.write().read_bytes(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["added"] == 1
    assert any(m["name"] == "zoe" for m in call(f"{erasme}/api/v1/directory?kind=member", "")[1])
    # Anne, the group's coordinator, sees it; Zoé finds it nowhere, as a wrong id.
    assert net.anne.ok(f"/cases/{case_id}")["form"]["question"] == FORM["question"]
    assert case_id not in json.dumps(zoe.ok("/cases"))
    status, refused = zoe.api(f"/cases/{case_id}")
    assert (status, refused["error"]) == (404, "no such case on this node")
    browser = Browser(erasme)
    browser.sign_in("zoe")
    for path in ("", "/series", "/frames/0/0.jpg", "/export.zip"):
        status, _, page = browser.get(f"/web/cases/{case_id}{path}")
        assert status == 404, path
        assert page == texts("fr")("no_such_case"), path  # Zoé reads French, as a wrong id
    status, _, page = browser.get("/web/cases")
    assert status == 200
    assert case_id not in page
    # DICOMweb: the group's own cases are hers (she may claim them), not the pair's study.
    (images,) = net.marie.case(case_id)["images"]
    first = next((net.cluster.dirs[1] / images / "files").rglob("*.dcm"))
    study = str(read_dicom(first, stop_before_pixels=True).StudyInstanceUID)
    anne = Browser(erasme)
    anne.sign_in("anne")
    assert study in anne.get("/dicomweb/studies")[2]
    status, _, found = browser.get("/dicomweb/studies")
    assert status == 200
    assert study not in found
    assert browser.get(f"/dicomweb/studies/{study}/metadata")[0] == 404


def test_a_community_case_goes_to_exactly_one_of_two_readers_who_claim_at_once(
    net: CaseNet,
) -> None:
    koffi, fatou, ousmane = net.koffi, net.fatou, net.ousmane
    case_id = koffi.ok(
        "/cases",
        "POST",
        {"study_uid": net.study(), "routing": "community", "target": net.community, "form": FORM},
    )["case_id"]
    for who in (fatou, ousmane):
        wait_for("posted to the pool", lambda who=who: net.state(who, case_id) == "delivered")
    with ThreadPoolExecutor(2) as pool:
        asked = list(pool.map(lambda p: p.api(f"/cases/{case_id}/claim", "POST"), [fatou, ousmane]))
    assert [status for status, _ in asked] == [202, 202]  # both asked the sender's node
    wait_for("the sender's node decided", lambda: net.state(koffi, case_id) == "assigned")
    winner = koffi.case(case_id)["reader"]
    assert winner in (key_hex(fatou.id), key_hex(ousmane.id))
    for who in (fatou, ousmane):  # both copies say it is taken
        wait_for(
            "the copies learn it was taken",
            lambda who=who: who.case(case_id)["taken"] and net.state(who, case_id) == "assigned",
        )
    loser = fatou if winner != key_hex(fatou.id) else ousmane
    # who has it: told to the winner and the community's coordinator (Ousmane), not to
    # the other reader (issue 21; policy.py)
    assert (ousmane if loser is fatou else fatou).case(case_id)["reader"] == winner
    assert loser.case(case_id)["reader"] == (winner if loser is ousmane else None)
    status, refused = loser.api(f"/cases/{case_id}/claim", "POST")
    assert status == 409
    assert "already taken" in refused["error"]
    status, refused = loser.api(f"/cases/{case_id}/report", "POST", REPORT)
    assert status == 409
    assert "only the reader may report" in refused["error"]

    def decisions() -> list[tuple[str, str]]:
        """The sender's node's audit entries of the two claims: who, what."""
        lines = tsfnode("audit", "export", net.cluster.dirs[0]).stdout.splitlines()
        entries = [json.loads(line) for line in lines]
        return sorted(
            (e["actor"], e["action"])
            for e in entries
            if e["case_id"] == case_id and e["action"] in ("claim", "refused case_event")
        )

    wait_for("both claims were decided", lambda: len(decisions()) == 2)
    assert decisions() == sorted([(winner, "claim"), (key_hex(loser.id), "refused case_event")])
    # The winner reads it; the report goes back; the other volunteer's copy says so.
    reader = ousmane if loser is fatou else fatou
    reader.ok(f"/cases/{case_id}/report", "POST", REPORT)
    wait_for("the report is back", lambda: net.state(koffi, case_id) == "report_delivered")
    wait_for(
        "the loser's copy is answered", lambda: net.state(loser, case_id) == "report_delivered"
    )
    koffi.ok(
        f"/cases/{case_id}/evaluation",
        "POST",
        {"relevant": True, "useful": True, "changed_management": False, "comment": "Merci"},
    )
    wait_for("evaluated at the reader's node", lambda: net.state(reader, case_id) == "evaluated")
    community = koffi.ok("/metrics")["groups"][key_hex(net.community)]
    assert (community["sent"], community["reports_back"], community["useful"]) == (1, 1, 1)
    assert reader.ok("/metrics")["total"]["read"] >= 1


def test_bad_requests_are_refused_with_the_reason_and_nothing_is_sent(net: CaseNet) -> None:
    koffi, marie = net.koffi, net.marie
    study = net.studies[0]
    before = len(koffi.ok("/cases"))
    bad_form = {k: v for k, v in FORM.items() if k != "question"}
    for body, status, reason in (
        ({"study_uid": study, "routing": "group", "target": net.paediatrics, "form": bad_form},
         400, "case lacks field 'question'"),
        ({"study_uid": study, "routing": "group", "target": net.paediatrics,
          "form": {**FORM, "age_years": 7, "age_months": 3}}, 400, "age_months"),
        ({"study_uid": study, "routing": "broadcast", "target": net.paediatrics, "form": FORM},
         400, "routing must be pair, group or community"),
        ({"study_uid": study, "routing": "community", "target": net.paediatrics, "form": FORM},
         404, "no such community"),
        ({"study_uid": "2.25.1", "routing": "group", "target": net.paediatrics, "form": FORM},
         404, "no study 2.25.1 of yours in this node's intake"),
    ):  # fmt: skip
        got, answer = koffi.api("/cases", "POST", body)
        assert got == status, answer
        assert reason in answer["error"]
    # A reader is not a sender; without a token, nobody.
    got, answer = marie.api(
        "/cases", "POST", {"study_uid": study, "routing": "group", "target": net.paediatrics,
                           "form": FORM},
    )  # fmt: skip
    assert got == 403
    assert "not attested as a sender" in answer["error"]
    assert call(f"{net.cluster.url(0)}/api/v1/cases", "tsf_forged")[0] == 401
    for raw, reason in ((b"{not json", "the body must be JSON"), (b"[1]", "a JSON object")):
        request = urllib.request.Request(
            f"{net.cluster.url(0)}/api/v1/cases", data=raw, method="POST"
        )
        request.add_header("Authorization", f"Bearer {koffi.token}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 400
        assert reason in refused.value.read().decode()
    assert len(koffi.ok("/cases")) == before


def test_beyond_the_weekly_quota_the_reader_accepts_and_a_suspended_pair_takes_nothing(
    net: CaseNet,
) -> None:
    koffi, awa = net.koffi, net.awa
    pair_id = make_pair_with(net, awa, quota=1)
    first, second = net.study(), net.study()
    body = {"study_uid": first, "routing": "pair", "target": pair_id, "form": FORM}
    koffi.ok("/cases", "POST", body)
    outbox = len(koffi.ok("/cases"))
    status, warned = koffi.api("/cases", "POST", {**body, "study_uid": second})
    assert status == 409
    assert "weekly quota is 1 and 1 case(s) went this week" in warned["error"]
    assert len(koffi.ok("/cases")) == outbox  # nothing was sent
    case_id = koffi.ok("/cases", "POST", {**body, "study_uid": second, "over_quota": True})[
        "case_id"
    ]
    wait_for("the case reaches Awa", lambda: net.state(awa, case_id) == "delivered")
    at_reader = awa.case(case_id)
    assert at_reader["needs_acceptance"] is True
    assert at_reader["reader"] is None  # not hers until she accepts
    assert any(n["kind"] == "ask_acceptance" for n in awa.ok("/notifications"))
    status, _asked = awa.api(f"/cases/{case_id}/accept", "POST")
    assert status == 202
    wait_for("accepted at the sender's node", lambda: net.state(koffi, case_id) == "assigned")
    wait_for("and at Awa's", lambda: net.state(awa, case_id) == "assigned")
    # Awa suspends the pair alone: no new case can be sent to it.
    assert awa.ok(f"/pairs/{pair_id}/suspend", "POST")["status"] == "suspended"

    def suspended_at_sender() -> bool:
        return any(
            p["pair_id"] == pair_id and p["status"] == "suspended"
            for p in koffi.ok("/pairs")["pairs"]
        )

    wait_for("the suspension reaches Cotonou", suspended_at_sender)
    status, refused = koffi.api("/cases", "POST", {**body, "over_quota": True})
    assert status == 409
    assert "the pair is suspended" in refused["error"]
    # Nobody outside the pair ends it: not a reader nor the coordinator of another group.
    for outsider in (net.fatou, net.ousmane):
        status, refused = outsider.api(f"/pairs/{pair_id}/end", "POST")
        assert status == 403, refused
    # The coordinator of Awa's group ends it from her page (Koffi, the sender, could too);
    # once Awa's node knows, nothing changes it any more.
    anne = Browser(net.cluster.url(1))
    anne.sign_in("anne")
    wait_for(
        "the suspended pair on the coordinator's page at Erasme",
        lambda: f'name="pair" value="{pair_id}"' in anne.get("/web/coordinator")[2],
    )
    status, url, _ = anne.post("/web/pairs/end", {"pair": pair_id, "back": "coordinator"})
    assert status == 200, anne.page
    assert url.endswith("/web/coordinator?done=ended")
    wait_for(
        "the end reaches Dakar",
        lambda: any(
            p["pair_id"] == pair_id and p["status"] == "ended" for p in awa.ok("/pairs")["pairs"]
        ),
    )
    status, refused = awa.api(f"/pairs/{pair_id}/suspend", "POST")
    assert status == 409
    assert "the pair has ended" in refused["error"]


def make_pair_with(net: CaseNet, reader: Person, quota: int) -> str:
    return pair_up(reader, net.koffi, quota=quota, hours=24)


def community_case(net: CaseNet) -> str:
    """A new case for the community, claimed by Fatou."""
    case_id = net.koffi.ok(
        "/cases",
        "POST",
        {"study_uid": net.study(), "routing": "community", "target": net.community, "form": FORM},
    )["case_id"]
    for who in (net.fatou, net.ousmane):
        wait_for("posted to the pool", lambda who=who: net.state(who, case_id) == "delivered")
    assert net.fatou.api(f"/cases/{case_id}/claim", "POST")[0] == 202
    wait_for("Fatou has it", lambda: net.state(net.fatou, case_id) == "assigned")
    return str(case_id)


def test_an_overdue_case_goes_back_to_the_pool_and_its_late_reader_cannot_take_it_again(
    net: CaseNet,
) -> None:
    koffi, fatou, ousmane = net.koffi, net.fatou, net.ousmane
    case_id = community_case(net)
    late = koffi.case(case_id)["reader"]
    other = fatou if late != key_hex(fatou.id) else ousmane
    late_person = ousmane if other is fatou else fatou
    # The deadline passes: the sender's node finds the case overdue when it next looks.
    net.cluster.stop_node(0)
    with sqlite3.connect(net.cluster.dirs[0] / "node.db") as db:
        db.execute("UPDATE cases SET due_ms = 1 WHERE case_id = ?", (bytes.fromhex(case_id),))
    net.cluster.start_node(0)
    wait_for("escalated at the sender's node", lambda: koffi.case(case_id)["escalations"] == 1)
    assert koffi.case(case_id)["state"] == "delivered"
    for who in (fatou, ousmane):
        wait_for(
            "the copies offer it again",
            lambda who=who: net.state(who, case_id) == "delivered",
        )
    # The coordinator is told (at his node), the late reader cannot claim it back.
    assert any(
        n["case_id"] == case_id and n["kind"] == "escalated" for n in ousmane.ok("/notifications")
    )
    status, refused = late_person.api(f"/cases/{case_id}/claim", "POST")
    assert status == 409
    assert "taken from you when it was overdue" in refused["error"]
    assert other.api(f"/cases/{case_id}/claim", "POST")[0] == 202
    wait_for("the other reader has it", lambda: koffi.case(case_id)["reader"] == key_hex(other.id))
    assert koffi.ok("/metrics")["total"]["escalations"] >= 1


def test_an_overdue_pairs_case_is_offered_to_the_readers_group_on_its_other_nodes(
    net: CaseNet,
) -> None:
    koffi, marie, awa = net.koffi, net.marie, net.awa
    (pair,) = [p for p in koffi.ok("/pairs")["pairs"] if p["reader"] == key_hex(marie.id)]
    body = {"study_uid": net.study(), "routing": "pair", "target": pair["pair_id"], "form": FORM}
    case_id = koffi.ok("/cases", "POST", body)["case_id"]
    wait_for("Marie has it", lambda: net.state(marie, case_id) == "assigned")
    # Before its deadline is moved: a delivery still in flight at the stop would record
    # the assignment after the restart, with a new deadline.
    wait_for("Cotonou knows it", lambda: net.state(koffi, case_id) == "assigned")
    assert net.state(awa, case_id) is None  # only Marie's node holds it
    net.cluster.stop_node(0)
    with sqlite3.connect(net.cluster.dirs[0] / "node.db") as db:
        db.execute("UPDATE cases SET due_ms = 1 WHERE case_id = ?", (bytes.fromhex(case_id),))
    net.cluster.start_node(0)
    # The paediatric group's other node (Dakar) receives it, waiting for a reader.
    wait_for("offered at Dakar", lambda: net.state(awa, case_id) == "delivered")
    wait_for("and at Erasme", lambda: net.state(marie, case_id) == "delivered")
    status, refused = marie.api(f"/cases/{case_id}/claim", "POST")
    assert status == 409
    assert "taken from you when it was overdue" in refused["error"]
    assert awa.api(f"/cases/{case_id}/claim", "POST")[0] == 202
    wait_for("Awa has it", lambda: koffi.case(case_id)["reader"] == key_hex(awa.id))
    wait_for("her node knows", lambda: net.state(awa, case_id) == "assigned")


def test_images_are_purged_after_the_case_closes_and_reports_are_kept(net: CaseNet) -> None:
    koffi, marie = net.koffi, net.marie
    (case,) = [
        c for c in koffi.ok("/cases") if c["routing"] == "pair" and c["state"] == "evaluated"
    ]
    case_id = case["case_id"]
    study = koffi.case(case_id)["patient"]
    images = marie.case(case_id)["images"]
    assert (net.cluster.dirs[1] / images[0]).exists()
    koffi.ok(f"/cases/{case_id}/close", "POST")
    # retention_days = 0 here: purged at the next scan, on both sides
    wait_for("purged at the sender's node", lambda: net.state(koffi, case_id) == "purged")
    wait_for("purged at the reader's node", lambda: net.state(marie, case_id) == "purged")
    assert not (net.cluster.dirs[1] / images[0]).exists()
    assert any((net.cluster.dirs[1] / "teaching").iterdir())  # the teaching copy stays
    intake = net.cluster.dirs[0] / "intake"
    assert study is not None
    assert not any(study["study_uid"] in p.name for p in intake.iterdir())
    kept = {d["kind"] for d in koffi.case(case_id)["documents"]}
    assert {"case_request", "report", "evaluation"} <= kept
    assert {"report", "evaluation"} <= {d["kind"] for d in marie.case(case_id)["documents"]}
    for node in (0, 1):
        lines = tsfnode("audit", "export", net.cluster.dirs[node]).stdout.splitlines()
        assert any(json.loads(line)["action"] == "purge" and case_id in line for line in lines), (
            node
        )


def test_people_work_on_a_case_in_their_browser_signed_in_and_checked(net: CaseNet) -> None:
    koffi, ousmane = net.koffi, net.ousmane
    case_id = koffi.ok(
        "/cases",
        "POST",
        {"study_uid": net.study(), "routing": "community", "target": net.community, "form": FORM},
    )["case_id"]
    wait_for("posted to the pool", lambda: net.state(ousmane, case_id) == "delivered")
    dakar, cotonou = net.cluster.url(2), net.cluster.url(0)
    # Signed out: every page leads to the sign-in page, coming back after it.
    reader = Browser(dakar)
    status, url, _ = reader.get(f"/web/cases/{case_id}")
    assert status == 200
    assert url.startswith(f"{dakar}/web/login?next=/web/cases/{case_id}")
    # A wrong password is refused, in the person's language; no session is made.
    status, _, page = reader.post(
        "/web/login", {"username": "ousmane", "password": "wrong password", "next": ""}
    )
    assert status == 401
    assert "Identifiant ou mot de passe incorrect." in page
    status, _, page = reader.sign_in("ousmane")
    assert status == 200
    assert "Liste de travail" in page  # the worklist, in French
    assert f"/web/cases/{case_id}" in page
    # Claim, then report, through the page's forms.
    reader.get(f"/web/cases/{case_id}")
    assert 'id="claim"' in reader.page
    status, _, page = reader.post(f"/web/cases/{case_id}/claim", {})
    assert status == 200
    assert "Demande envoyée au nœud de l'émetteur" in page
    wait_for(
        "the sender's node decided",
        lambda: 'id="report-form"' in reader.get(f"/web/cases/{case_id}")[2],
    )
    # A form without the session's token is refused and changes nothing.
    status, _, _ = reader.post(
        f"/web/cases/{case_id}/report", {"findings": "x", "image_quality": "adequate"}, csrf=False
    )
    assert status == 403
    reader.get(f"/web/cases/{case_id}")
    fields = {
        "language": "fr",
        "findings": REPORT["findings"],
        "impression": REPORT["impression"],
        "recommendations": "",
        "image_quality": "adequate",
        "quality_reason": "",
    }
    status, _, page = reader.post(f"/web/cases/{case_id}/report", fields)
    assert status == 200
    assert 'id="report-preview"' in page  # shown as it will be signed, not signed yet
    previewed = re.search(r'name="previewed" value="([0-9a-f]{64})"', page)
    assert previewed is not None
    status, _, page = reader.post(
        f"/web/cases/{case_id}/report", {**fields, "step": "sign", "previewed": previewed[1]}
    )
    assert status == 200
    assert REPORT["impression"] in page
    assert 'id="report-preview"' not in page
    # The sender reads the answer with the patient's name, in English, and evaluates.
    sender = Browser(cotonou)
    sender.get("/web/login?lang=en")
    status, _, page = sender.post("/web/login", {"username": "koffi", "password": PASSWORD})
    assert "My cases" in page
    wait_for(
        "the answer is back",
        lambda: "answer received" in sender.get(f"/web/cases/{case_id}")[2],
    )
    assert 'id="patient"' in sender.page
    assert 'id="evaluation-form"' in sender.page
    status, _, page = sender.post(
        f"/web/cases/{case_id}/evaluation",
        {"relevant": "yes", "useful": "yes", "changed_management": "no", "comment": "Thanks"},
    )
    assert status == 200
    assert net.state(koffi, case_id) == "evaluated"
    # Signing out ends the session: the pages lead to the sign-in page again.
    status, _, _ = sender.post("/web/logout", {})
    assert sender.get("/web/cases")[1].startswith(f"{cotonou}/web/login")
    # The node's IT person signs in, but case pages are not for that role.
    made = tsfnode(
        "account", "add", net.cluster.dirs[0], "it.cotonou", "--role", "admin",
        "--name", "Informatique", "--password-stdin", input_text=PASSWORD,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    admin = Browser(cotonou)
    admin.sign_in("it.cotonou")
    status, _, _ = admin.get(f"/web/cases/{case_id}")
    assert status == 403


CHROMIUM = Path("/usr/bin/chromium")  # Debian's (.ci/run installs it)


def test_in_chromium_a_reader_signs_in_and_works_in_both_languages(net: CaseNet) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "the browser tests need Debian's chromium: apt-get install chromium"
    base = net.cluster.url(1)
    shots = net.base / "screenshots"
    shots.mkdir(exist_ok=True)
    hosts: set[str] = set()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            for lang, worklist, case_word in (
                ("fr", "Liste de travail", "Cas"),
                ("en", "Worklist", "Case"),
            ):
                context = browser.new_context(locale=lang)  # the browser's language
                page = context.new_page()
                page.on("request", lambda r: hosts.add(urllib.parse.urlsplit(r.url).netloc))
                page.goto(f"{base}/web/cases")  # signed out: to the sign-in page
                assert "/web/login" in page.url
                if lang == "en":  # Marie's account says French: she picks English here
                    page.goto(f"{base}/web/login?lang=en&next=/web/cases")
                page.screenshot(path=str(shots / f"sign-in-{lang}.png"))
                page.fill("#username", "marie")
                page.fill("#password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url("**/web/cases")
                assert page.inner_text("h1") == worklist
                states = page.locator("tr.case td:nth-child(2)").all_inner_texts()
                open_ones = [s.startswith(("being read", "en lecture")) for s in states]
                assert open_ones == sorted(open_ones, reverse=True)  # cases to read first
                assert len(page.content().encode()) < 150_000  # light at 256 kbit/s
                page.screenshot(path=str(shots / f"worklist-{lang}.png"), full_page=True)
                page.click("tr.case a")
                page.wait_for_url("**/web/cases/*")
                assert page.inner_text("h1").startswith(case_word)
                assert FORM["question"] in page.inner_text("main")  # the clinical question
                page.screenshot(path=str(shots / f"case-{lang}.png"), full_page=True)
                page.click(".who button")  # sign out
                page.wait_for_url("**/web/login")
                context.close()
        finally:
            browser.close()
    assert hosts == {urllib.parse.urlsplit(base).netloc}  # nothing from outside the node
    for shot in shots.iterdir():
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list(shots.iterdir())) == 6


def test_sign_in_is_throttled_after_five_failures(net: CaseNet) -> None:
    browser = Browser(net.cluster.url(1))
    for _ in range(5):
        browser.get("/web/login")
        status, _, _ = browser.post("/web/login", {"username": "fatou", "password": "nope"})
        assert status == 401
    status, _, page = browser.sign_in("fatou")  # even the right password, for now
    assert status == 429
    assert "Trop d'essais" in page or "Too many attempts" in page
    status, _, page = Browser(net.cluster.url(1)).sign_in("marie")  # others are not locked
    assert status == 200


def test_every_field_the_sender_typed_reaches_the_reader_with_a_babys_age_in_months(
    net: CaseNet,
) -> None:
    """A 6-month-old sent to the paediatric group with the form as nodes have always
    signed it (whole years and months): at Erasme the reader reads every field, the
    prior imaging and the sender's own reading included, and the age in months, on the
    case page and in the viewer's panel, in French and in English."""
    form = {
        **FORM,
        "age_years": 0,
        "age_months": 6,
        "prior_imaging": "Radiographie du 3 mars : opacité basale droite.",
        "preliminary_reading": "Condensation lobaire inférieure droite ?",
    }
    body = {"study_uid": net.study(), "routing": "group", "target": net.paediatrics}
    case_id = net.koffi.ok("/cases", "POST", {**body, "form": form})["case_id"]
    wait_for("the case reaches Erasme", lambda: net.state(net.marie, case_id) == "delivered")
    reader = Browser(net.cluster.url(1))
    reader.get("/web/login?lang=fr")
    reader.sign_in("marie")
    for lang, age, reading in (("fr", "6 mois", "Lecture de l'émetteur"),
                               ("en", "6 months", "The sender's reading")):  # fmt: skip
        for path in (f"/web/cases/{case_id}?lang={lang}", f"/web/cases/{case_id}/viewer"):
            status, _, page = reader.get(path)
            assert status == 200, path
            for name in ("question", "clinical_history", "prior_imaging", "preliminary_reading"):
                assert form[name] in page, (path, name)
            assert reading in page
            assert f'<dd id="form-age" class="age">{age}</dd>' in page, path  # not "0 ans"
    at_reader = net.marie.case(case_id)  # and through the JSON API
    assert at_reader["age"] == {"value": 6, "unit": "months"}
    assert at_reader["form"]["preliminary_reading"] == form["preliminary_reading"]


def test_the_audit_chain_verifies_and_any_tampering_is_named(net: CaseNet) -> None:
    """(It leaves Erasme stopped with a broken chain: only tests that do not need Erasme
    may come after it in this module.)"""
    directory = net.cluster.dirs[1]
    intact = tsfnode("audit", "verify", directory)
    assert intact.returncode == 0, intact.stderr
    assert "intact" in intact.stdout
    net.cluster.stop_node(1)
    db_path = directory / "node.db"
    with sqlite3.connect(db_path) as db:
        count = db.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]
        assert count > 10  # every view, claim, report, purge... was written
        db.execute("UPDATE audit_log SET detail = 'adequate' WHERE seq = 3")
    broken = tsfnode("audit", "verify", directory)
    assert broken.returncode == 1
    assert "audit entry 4 does not follow entry 3" in broken.stderr
    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM audit_log WHERE seq >= 3")
    cut = tsfnode("audit", "verify", directory)
    assert cut.returncode == 1
    assert "entries were removed or changed at the end" in cut.stderr
