"""The report back into the hospital across two real nodes on loopback (tests/harness
PairedNet: CHU Cotonou with Dr Koffi, a sender; Erasme with Dr Marie, his pair's
reader): a case of pydicom's CT_small goes, Marie's signed report comes back, and Koffi,
on his node's case page, prints it, downloads it as FHIR and sends it to the hospital's
PACS (dcmtk's storescp) in the original study; ``tsfnode verify`` checks the printed
code; the reader's node never sees who the patient is nor the study's original UIDs.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from fhir.resources.R4B.bundle import Bundle
from pypdf import PdfReader

from tests.harness.data import PYDICOM_FILES, read_dicom
from tests.harness.nodes import tsfnode
from tests.harness.pacs import free_port, listening
from tests.harness.people import REPORT, Browser, PairedNet
from tests.harness.waiting import wait_for
from tests.tsfnode.test_report_export import dciodvfy_errors

pytestmark = pytest.mark.slow

QUICK = {
    "transfer": {"poll_interval_ms": 500, "retry_base_ms": 200},
    "cases": {"scan_interval_ms": 300},
}


def read(path: Path) -> pydicom.Dataset:
    return read_dicom(path)


class Reported:
    """A case whose report is back at Koffi's node, and a storescp as the hospital's PACS."""

    def __init__(self, base: Path) -> None:
        self.net = PairedNet(base, **QUICK)
        folder = base / "ct"
        folder.mkdir()
        shutil.copy(PYDICOM_FILES / "CT_small.dcm", folder / "CT_small.dcm")
        self.source = read(folder / "CT_small.dcm")
        net = self.net
        self.case_id = net.submit(folder, {"routing": "pair", "target": net.pair})
        wait_for("Marie has the case", lambda: net.marie.state(self.case_id) == "assigned")
        net.marie.ok(f"/cases/{self.case_id}/report", "POST", REPORT)
        wait_for("the report is back", lambda: net.koffi.state(self.case_id) == "report_delivered")
        self.pacs_port = free_port()
        self.pacs = base / "pacs"
        self.pacs.mkdir()
        command = ["storescp", "--aetitle", "PACS", "-uf", "-od", str(self.pacs),
                   str(self.pacs_port)]  # fmt: skip
        self.storescp = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for("storescp listening", lambda: listening(self.pacs_port), timeout=20)

    def browser(self, node: int, username: str) -> Browser:
        browser = Browser(self.net.cluster.url(node))
        status, _, _ = browser.sign_in(username)
        assert status == 200
        return browser

    def close(self) -> None:
        self.storescp.terminate()
        self.storescp.wait(10)
        self.net.close()


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reported]:
    found = Reported(tmp_path_factory.mktemp("report-out"))
    try:
        yield found
    finally:
        found.close()


def download(browser: Browser, path: str) -> tuple[int, bytes, str]:
    try:
        with browser.opener.open(browser.base + path, timeout=30) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers["Content-Type"]


def pdf_text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def test_the_sender_prints_the_report_and_the_code_verifies_on_his_node(
    reported: Reported, tmp_path: Path
) -> None:
    koffi = reported.browser(0, "koffi")
    case = reported.case_id
    status, _, page = koffi.get(f"/web/cases/{case}?lang=fr")
    assert status == 200
    assert "Imprimer le compte rendu (PDF)" in page
    assert "Télécharger le DiagnosticReport FHIR (JSON)" in page
    status, pdf, kind = download(koffi, f"/web/cases/{case}/report.pdf?lang=fr")
    assert status == 200
    assert kind == "application/pdf"
    text = pdf_text(pdf)
    for part in (
        "CHU Cotonou",  # Koffi's facility, as his attestation says
        "CT1 CompressedSamples",  # the patient as the hospital knows them
        str(reported.source.PatientID),
        "Pneumopathie ? Épanchement ?",
        REPORT["findings"],
        REPORT["impression"],
        "Lecteur marie",
        "DES radiologie",
        "Question clinique",
    ):
        assert part in text, part
    (code,) = set(re.findall(r"[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}", text))
    status, english, _ = download(koffi, f"/web/cases/{case}/report.pdf?lang=en")
    assert status == 200
    assert "Clinical question" in pdf_text(english)
    # The code names the signed report at the sender's node; changed, it names none.
    node = reported.net.cluster.dirs[0]
    checked = tsfnode("verify", code, "--node", node)
    assert checked.returncode == 0, checked.stderr
    assert f"{code}: valid report signed by" in checked.stdout
    assert f"case_id     {case}" in checked.stdout
    printed = tmp_path / "report.pdf"
    printed.write_bytes(pdf)
    assert tsfnode("verify", printed, "--node", node).returncode == 0
    changed = ("B" if code[0] != "B" else "C") + code[1:]
    refused = tsfnode("verify", changed, "--node", node)
    assert refused.returncode == 1
    assert "NO report of this node has this code" in refused.stderr
    assert tsfnode("verify", code).returncode == 2  # no node named: said so
    # The exports are in the audit log, with the code and never the patient.
    audit = tsfnode("audit", "export", node)
    assert audit.returncode == 0, audit.stderr
    entries = [json.loads(line) for line in audit.stdout.splitlines()]
    assert {"report pdf"} <= {e["action"] for e in entries}
    assert "CompressedSamples" not in audit.stdout


def test_the_sender_downloads_a_fhir_bundle_that_validates(reported: Reported) -> None:
    koffi = reported.browser(0, "koffi")
    status, data, kind = download(koffi, f"/web/cases/{reported.case_id}/report.fhir.json")
    assert status == 200
    assert kind.startswith("application/fhir+json")
    bundle = Bundle.model_validate(json.loads(data))
    resources = {e.resource.get_resource_type(): e.resource for e in bundle.entry}
    assert resources["DiagnosticReport"].status == "final"
    assert resources["DiagnosticReport"].conclusion == REPORT["impression"]
    uid = reported.source.StudyInstanceUID
    assert resources["ImagingStudy"].identifier[0].value == f"urn:oid:{uid}"
    assert resources["Patient"].identifier[0].value == str(reported.source.PatientID)


def test_the_sender_sends_the_report_to_the_hospitals_pacs_in_the_original_study(
    reported: Reported,
) -> None:
    koffi = reported.browser(0, "koffi")
    case = reported.case_id
    koffi.get("/web/tools")
    fields = {"label": "PACS de l'hôpital", "ae_title": "PACS", "host": "127.0.0.1",
              "port": str(reported.pacs_port), "calling_ae": "TSFNODE"}  # fmt: skip
    status, _, _ = koffi.post("/web/tools/destinations", fields)
    assert status == 200
    status, _, page = koffi.get(f"/web/cases/{case}?lang=en")
    assert "Send to the hospital's PACS" in page
    (destination,) = re.findall(
        r'id="report-destination" name="destination"><option value="(\d+)"', page
    )
    # No destination chosen: refused, and said why.
    status, _, refused = koffi.post(f"/web/cases/{case}/report/pacs", {"destination": "999"})
    assert status == 400
    assert "Choose one of your DICOM destinations" in refused
    koffi.get(f"/web/cases/{case}?lang=en")
    status, _, _ = koffi.post(f"/web/cases/{case}/report/pacs", {"destination": destination})
    assert status == 200
    wait_for("the PACS has both objects", lambda: len(list(reported.pacs.iterdir())) == 2)
    source = reported.source
    classes = set()
    for path in sorted(reported.pacs.iterdir()):
        assert dciodvfy_errors(path) == [], path.name
        ds = read(path)
        classes.add(ds.SOPClassUID)
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.PatientName == source.PatientName
        assert ds.PatientID == source.PatientID
        if "CurrentRequestedProcedureEvidenceSequence" in ds:
            (study,) = ds.CurrentRequestedProcedureEvidenceSequence
            (series,) = study.ReferencedSeriesSequence
            assert series.SeriesInstanceUID == source.SeriesInstanceUID
            (sop,) = series.ReferencedSOPSequence
            assert sop.ReferencedSOPInstanceUID == source.SOPInstanceUID
            assert ds.VerificationFlag == "VERIFIED"
    assert classes == {"1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.88.11"}
    wait_for("the sending is done", lambda: "done" in koffi.get("/web/tools?lang=en")[2])
    audit = tsfnode("audit", "export", reported.net.cluster.dirs[0])
    actions = {json.loads(line)["action"] for line in audit.stdout.splitlines()}
    assert "report to pacs" in actions


def test_the_reader_can_make_none_of_it_and_her_node_never_sees_the_patient(
    reported: Reported,
) -> None:
    marie = reported.browser(1, "marie")
    case = reported.case_id
    status, _, page = marie.get(f"/web/cases/{case}?lang=en")
    assert status == 200
    assert "report-pdf" not in page
    for path in ("report.pdf", "report.fhir.json"):
        status, body, _ = download(marie, f"/web/cases/{case}/{path}?lang=en")
        assert status == 403
        assert b"Only the case's sender" in body
    # Nothing that names the patient or the original study is anywhere on her node:
    # its database, its received (decrypted) images, anything else it keeps.
    source = reported.source
    secrets = {
        str(source.PatientName).encode(),
        str(source.PatientID).encode(),
        source.StudyInstanceUID.encode(),
        source.SeriesInstanceUID.encode(),
        source.SOPInstanceUID.encode(),
    }
    files = [p for p in reported.net.cluster.dirs[1].rglob("*") if p.is_file()]
    assert any(p.suffix == ".dcm" for p in files), "the reader's node holds the images"
    for path in files:
        data = path.read_bytes()
        found = [s for s in secrets if s in data]
        assert not found, (path, found)
    # The positive control: the same search finds them in what the PACS received.
    pacs = b"".join(p.read_bytes() for p in reported.pacs.iterdir())
    assert all(s in pacs for s in secrets)


def test_a_sender_who_chose_it_gets_every_report_in_the_pacs_by_itself(
    reported: Reported, storescp: Callable[..., tuple[int, Path]], tmp_path: Path
) -> None:
    port, out = storescp()
    koffi = reported.browser(0, "koffi")
    koffi.get("/web/tools")
    fields = {"label": "PACS automatique", "ae_title": "HOROS", "host": "127.0.0.1",
              "port": str(port), "calling_ae": "TSFNODE"}  # fmt: skip
    assert koffi.post("/web/tools/destinations", fields)[0] == 200
    status, _, page = koffi.get("/web/tools?lang=en")
    found = re.search(
        r"<td>PACS automatique</td>.*?name=\"destination\" value=\"(\d+)\"", page, re.S
    )
    assert found is not None
    destination = found.group(1)
    status, _, page = koffi.post(
        "/web/tools/destinations/reports", {"destination": destination, "on": "yes"}
    )
    assert status == 200
    assert f'id="reports-auto-{destination}">Stop</button>' in page
    # A new case (MR_small): its report goes to that PACS with nobody asking.
    folder = tmp_path / "mr"
    folder.mkdir()
    shutil.copy(PYDICOM_FILES / "MR_small.dcm", folder / "MR_small.dcm")
    source = read(folder / "MR_small.dcm")
    net = reported.net
    case = net.submit(folder, {"routing": "pair", "target": net.pair})
    wait_for("Marie has the case", lambda: net.marie.state(case) == "assigned", timeout=120)
    net.marie.ok(f"/cases/{case}/report", "POST", REPORT)
    wait_for("the report is back", lambda: net.koffi.state(case) == "report_delivered", 120)
    wait_for("the PACS has the report by itself", lambda: len(list(out.iterdir())) == 2, 120)
    for path in sorted(out.iterdir()):
        assert dciodvfy_errors(path) == [], path.name
        ds = read(path)
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.PatientID == source.PatientID
    audit = tsfnode("audit", "export", net.cluster.dirs[0])
    actions = [json.loads(line) for line in audit.stdout.splitlines()]
    assert any(
        e["action"] == "report to pacs (automatic)" and e["case_id"] == case for e in actions
    )
