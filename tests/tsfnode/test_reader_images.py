"""The reader's images (issue 23, STOW-RS and C-STORE back into a case) on real nodes,
with real clients: Marie stores a key object selection, a comprehensive SR and a
greyscale presentation state made from her case's study with dicomweb-client, and an SR
with dcmtk's storescu from her bound workstation; they are hers, in her case at her node
(Erasme), and once she signs the report they reach Koffi's node (Cotonou), byte for
byte, shown with the report and named on the printed report. An unbound AE title,
Paul's workstation (no case of his), a body that is not DICOM, a SOP class a reader
does not make and a body too large are each refused, naming why, and nothing is kept.

The network is test_dicom_qr's: Koffi sends a CT of six real slices to Marie; Marie's
workstation MARIEWS and Paul's PAULWS are bound at Erasme, whose DICOM port is open."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from tests.harness.people import REPORT, Browser
from tests.harness.studies import part10, reader_instance
from tests.harness.waiting import wait_for
from tests.tsfnode.test_dicom_qr import NODE_AE, QueryRetrieveNet
from tests.tsfnode.test_dicomweb import dicomweb_token
from tests.tsfnode.test_report_export_network import download, pdf_text

pytestmark = pytest.mark.slow
KOS = "1.2.840.10008.5.1.4.1.1.88.59"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
DICOM_PARTS = 'multipart/related; type="application/dicom"; boundary=tsf-test'


class ReaderImagesNet(QueryRetrieveNet):
    def __init__(self, base: Path) -> None:
        super().__init__(base)
        try:
            self.client = DICOMwebClient(url=self.url, headers=self.dicomweb)
            (self.source,) = self.client.retrieve_study(self.study())[:1]
        except BaseException:
            self.cluster.close()
            raise

    def study(self) -> str:
        (record,) = self.qido("/studies")
        return str(record["0020000D"]["Value"][0])

    def images(self, node: int) -> list[dict[str, Any]]:
        person = self.marie if node == 1 else self.koffi
        return list(person.case(self.case)["reader_images"])

    def held(self, node: int, digest: str) -> bytes:
        return (
            self.cluster.dirs[node] / "reader_images" / self.case / f"{digest}.dcm"
        ).read_bytes()

    def made(self, sop_class: str, modality: str, **extra: Any) -> Dataset:
        """An instance the reader's workstation makes from the case's study."""
        return reader_instance(sop_class, modality, self.source, **extra)

    def storescu(self, ae: str, path: Path) -> subprocess.CompletedProcess[str]:
        command = ["storescu", "-d", "-aet", ae, "-aec", NODE_AE, self.host, str(self.port), path]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    def stow(self, body: bytes, token: str | None = None, **headers: str) -> tuple[int, Any, Any]:
        """A raw STOW-RS request: its status, DICOM JSON answer (or text), headers."""
        parsed = urllib.parse.urlsplit(self.url)
        connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=60)
        auth = f"Bearer {token}" if token else self.dicomweb["Authorization"]
        sent = {"Content-Type": DICOM_PARTS, "Authorization": auth, **headers}
        try:
            connection.request("POST", f"{parsed.path}/studies", body=body, headers=sent)
            response = connection.getresponse()
            text = response.read().decode()
            with contextlib.suppress(ValueError):
                return response.status, json.loads(text), response.headers
            return response.status, text, response.headers
        finally:
            connection.close()


def parts(*bodies: bytes) -> bytes:
    out = b""
    for body in bodies:
        out += b"--tsf-test\r\nContent-Type: application/dicom\r\n\r\n" + body + b"\r\n"
    return out + b"--tsf-test--\r\n"


def failure_reasons(answer: dict[str, Any]) -> list[int]:
    return [item["00081197"]["Value"][0] for item in answer["00081198"]["Value"]]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReaderImagesNet]:
    with contextlib.closing(ReaderImagesNet(tmp_path_factory.mktemp("reader-images"))) as found:
        yield found


@pytest.fixture(scope="module")
def made(net: ReaderImagesNet) -> dict[str, Dataset]:
    """What Marie's workstation made: a KOS, an SR, a GSPS (stored by STOW-RS) and an SR
    stored by C-STORE."""
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator = "113000", "DCM"
    concept.CodeMeaning = "Of Interest"
    return {
        "kos": net.made(KOS, "KO", ConceptNameCodeSequence=[concept], ValueType="CONTAINER"),
        "sr": net.made(COMPREHENSIVE_SR, "SR", ValueType="CONTAINER", CompletionFlag="COMPLETE"),
        "gsps": net.made(GSPS, "PR", ContentLabel="MARIE", PresentationCreationDate="20261207"),
        "c-store sr": net.made(COMPREHENSIVE_SR, "SR", ValueType="CONTAINER"),
    }


def test_stow_rs_attaches_a_kos_an_sr_and_a_gsps_to_marie_case_as_hers(
    net: ReaderImagesNet, made: dict[str, Dataset]
) -> None:
    stored = [made["kos"], made["sr"], made["gsps"]]
    answer = net.client.store_instances(stored)
    referenced = {str(i.ReferencedSOPInstanceUID) for i in answer.ReferencedSOPSequence}
    assert referenced == {str(ds.SOPInstanceUID) for ds in stored}
    assert "FailedSOPSequence" not in answer
    images = net.images(1)
    assert {i["sop_uid"] for i in images} == referenced
    assert all(i["report"] is None for i in images)  # waiting for the report
    for image in images:  # kept as stored: not de-identified again
        held = net.held(1, image["digest"])
        assert blake3.blake3(held).hexdigest() == image["digest"]
        ds = pydicom.dcmread(io.BytesIO(held))
        sent = next(s for s in stored if s.SOPInstanceUID == ds.SOPInstanceUID)
        assert ds.PatientID == sent.PatientID
        assert ds.StudyInstanceUID == sent.StudyInstanceUID
    again = net.client.store_instances([made["kos"]])  # the same bytes: nothing changes
    assert len(again.ReferencedSOPSequence) == 1
    assert len(net.images(1)) == 3
    attached = [e for e in net.audit() if e["action"] == "attach reader image"]
    assert len(attached) == 3
    assert all(e["detail"].startswith("stow token account ") for e in attached)
    assert {e["detail"].split()[-2] for e in attached} == {KOS, COMPREHENSIVE_SR, GSPS}


def test_storescu_from_marie_bound_workstation_attaches_an_sr(
    net: ReaderImagesNet, made: dict[str, Dataset], tmp_path: Path
) -> None:
    path = tmp_path / "sr.dcm"
    made["c-store sr"].save_as(path, enforce_file_format=True)
    done = net.storescu("MARIEWS", path)
    assert done.returncode == 0, done.stderr
    images = {i["sop_uid"]: i for i in net.images(1)}
    assert str(made["c-store sr"].SOPInstanceUID) in images
    (entry,) = [e for e in net.audit() if e["detail"].startswith("c-store MARIEWS")]
    assert entry["action"] == "attach reader image"


def test_an_unbound_ae_title_and_paul_workstation_are_refused_and_nothing_is_kept(
    net: ReaderImagesNet, tmp_path: Path
) -> None:
    intake = net.cluster.dirs[1] / "intake"
    before = sorted(intake.rglob("*")) if intake.exists() else []
    count = len(net.images(1))
    for ae, sop_class, comment in (
        ("STRANGER", COMPREHENSIVE_SR, "Bind this AE title to your account"),
        ("STRANGER", CT, "Bind this AE title to your account"),  # not a new study either
        ("PAULWS", COMPREHENSIVE_SR, "Study of no case you may report on"),
    ):
        path = tmp_path / f"{ae}-{sop_class}.dcm"
        net.made(sop_class, "SR").save_as(path, enforce_file_format=True)
        done = net.storescu(ae, path)
        assert done.returncode != 0
        assert "0x0124" in done.stderr  # Refused: Not Authorized
        assert comment in done.stderr  # the Error Comment, shown by dcmtk
    assert len(net.images(1)) == count
    after = sorted(intake.rglob("*")) if intake.exists() else []
    assert after == before  # not taken into the intake as a new study


def test_stow_refuses_what_is_not_a_reader_instance_naming_why(
    net: ReaderImagesNet, made: dict[str, Dataset]
) -> None:
    count = len(net.images(1))
    status, answer, headers = net.stow(parts(b"%PDF-1.4 not a DICOM file"))
    assert status == 409
    assert failure_reasons(answer) == [0xC000]
    assert "not a DICOM instance" in headers["Warning"]
    ct = net.made(CT, "CT")  # a CT image: not what a reader makes
    status, answer, headers = net.stow(parts(part10(ct)), **{"Accept-Language": "fr"})
    assert status == 409
    assert failure_reasons(answer) == [0x0122]
    assert CT in headers["Warning"]
    changed = made["kos"].copy()
    changed.ContentLabel = "OTHER"  # the same SOP Instance UID, other bytes
    kept = net.made(KOS, "KO")
    status, answer, _ = net.stow(parts(part10(changed), part10(kept)))
    assert status == 202  # one kept, one refused
    assert failure_reasons(answer) == [0x0111]
    assert len(answer["00081199"]["Value"]) == 1
    paul = dicomweb_token(net.paul)
    status, answer, _ = net.stow(parts(part10(net.made(KOS, "KO"))), token=paul)
    assert status == 409  # Paul may not report on Marie's case
    assert failure_reasons(answer) == [0x0124]
    status, text, _ = net.stow(b"{}", **{"Content-Type": "application/json"})
    assert status == 415
    assert "multipart/related" in text
    status, text, _ = net.stow(
        b"{}", **{"Content-Type": 'multipart/related; type="application/dicom"'}
    )
    assert status == 400  # no boundary: the parts cannot be told apart
    assert "multipart/related" in text
    status, text, _ = net.stow(b"", **{"Content-Length": str(1 << 30)})
    assert status == 413
    assert "too large" in text
    assert len(net.images(1)) == count + 1  # only the one kept above


def test_after_the_report_the_sender_node_holds_and_shows_them(
    net: ReaderImagesNet, made: dict[str, Dataset]
) -> None:
    at_reader = {i["sop_uid"]: i for i in net.images(1)}
    net.marie.ok(f"/cases/{net.case}/report", "POST", REPORT)
    wait_for("the report and the reader's images at Koffi's node",
             lambda: len(net.images(0)) == len(at_reader))  # fmt: skip
    signed = [d for d in net.koffi.case(net.case)["documents"] if d["kind"] == "report"]
    assert len(signed) == 1
    for image in net.images(0):
        mine = at_reader[image["sop_uid"]]
        assert image["digest"] == mine["digest"]
        assert image["report"] is not None
        assert net.held(0, image["digest"]) == net.held(1, mine["digest"])  # byte for byte
    sr_digest = at_reader[str(made["sr"].SOPInstanceUID)]["digest"]
    stowed = read_dicom_bytes(net.held(0, sr_digest))
    assert stowed == made["sr"]  # what the workstation made, untouched by either node
    assert all(i["report"] is not None for i in net.images(1))  # sent with the report
    koffi = Browser(net.cluster.url(0))
    koffi.sign_in("koffi")
    status, _, page = koffi.get(f"/web/cases/{net.case}?lang=fr")
    assert status == 200
    assert "Images du lecteur" in page
    assert "Sélection d'images clés (KOS)" in page
    status, _, viewer = koffi.get(f"/web/cases/{net.case}/viewer?lang=en")
    assert status == 200
    assert "The reader's images" in viewer
    sop = str(made["gsps"].SOPInstanceUID)
    status, body, kind = download(koffi, f"/web/cases/{net.case}/reader-images/{sop}")
    assert status == 200
    assert kind == "application/dicom"
    assert read_dicom_bytes(body).SOPInstanceUID == sop
    status, pdf, _ = download(koffi, f"/web/cases/{net.case}/report.pdf?lang=fr")
    assert status == 200
    assert "Images du lecteur" in pdf_text(pdf)


def read_dicom_bytes(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))
