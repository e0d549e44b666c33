"""The Query/Retrieve SCP on real nodes, called by real clients: dcmtk's findscu,
movescu and getscu, and Orthanc as a Q/R SCU. Marie binds her workstation to her account
and finds, moves and gets the study of her case as from a PACS; what she sees is what
DICOMweb shows her.

The network is tests.harness.people.PairedNet: Koffi sends at Cotonou (node 0) a CT
series of six real slices to Marie, who reads at Erasme (node 1), whose DICOM port is
open. Paul, a reader of no group at Erasme, has no case."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import JPEGLSLossless

from protocol.identity import PublicIdentity
from tests.harness.data import read_dicom as read
from tests.harness.nodes import tsfnode
from tests.harness.pacs import free_port, orthanc_get, orthanc_post, orthanc_running
from tests.harness.people import Browser, PairedNet, Person
from tests.harness.studies import ct_series
from tests.harness.waiting import wait_for
from tests.tsfnode.test_dicomweb import dicomweb_token, get, parts

pytestmark = pytest.mark.slow
QUICK = {
    "transfer": {"poll_interval_ms": 500, "retry_base_ms": 200},
    "cases": {"scan_interval_ms": 300, "stats_interval_ms": 1000},
}
SLICES = 6
NODE_AE = "TSFNODE"


class QueryRetrieveNet(PairedNet):
    def __init__(self, base: Path, **sections: Any) -> None:
        super().__init__(base, dicom={"port": free_port()}, **QUICK, **sections)
        try:
            ct = base / "ct"
            ct.mkdir()
            ct_series(ct, SLICES)
            self.case = self.submit(ct, {"routing": "pair", "target": self.pair})
            wait_for("the case at Marie's node", lambda: self.marie.state(self.case) == "assigned")
            self.paul = Person(self.cluster, 1, "paul", "reader", "Dr Paul Sans-Groupe")
            self.host = self.cluster.hosts[1]
            self.port = int(self._dicom_port())
            self.bind("marie", "MARIEWS", 11112)
            self.bind("paul", "PAULWS", 11113)
            self.dicomweb = {"Authorization": f"Bearer {dicomweb_token(self.marie)}"}
            self.url = f"{self.cluster.url(1)}/dicomweb"
        except BaseException:
            self.cluster.close()
            raise

    def _dicom_port(self) -> str:
        config = (self.cluster.dirs[1] / "config.toml").read_text()
        found = re.search(r"\[dicom\][^\[]*?port = (\d+)", config)
        assert found is not None, config
        return found.group(1)

    def bind(self, account: str, ae: str, port: int, host: str = "127.0.0.1") -> None:
        made = tsfnode(
            "dicom", "bind", self.cluster.dirs[1], "--account", account, "--ae", ae,
            "--host", host, "--port", str(port),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr

    def dcmtk(self, tool: str, ae: str, *args: str) -> subprocess.CompletedProcess[str]:
        """A dcmtk Q/R tool calling the node as ``ae`` (-d: every response shown)."""
        command = [tool, "-d", "-aet", ae, "-aec", NODE_AE, *args, self.host, str(self.port)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    def move_study(self, study: str, to: str = "HOROS") -> dict[str, str]:
        """movescu, as Marie's workstation, of a study to ``to``: the final answer."""
        moved = self.dcmtk(
            "movescu", "MARIEWS", "-S", "-aem", to, "-k", "QueryRetrieveLevel=STUDY",
            "-k", f"StudyInstanceUID={study}",
        )  # fmt: skip
        assert moved.returncode == 0, moved.stderr
        return _final(moved.stdout + moved.stderr)

    def find(self, ae: str, model: str, *keys: str, out: Path) -> list[pydicom.Dataset]:
        """findscu's matches, as the data sets it received (written by -X)."""
        out.mkdir()
        args = [model, "-X", "-od", str(out)]
        for key in keys:
            args += ["-k", key]
        done = self.dcmtk("findscu", ae, *args)
        assert done.returncode == 0, done.stderr
        return [read(p) for p in sorted(out.glob("rsp*.dcm"))]

    def qido(self, path: str) -> list[dict[str, Any]]:
        status, _, body = get(f"{self.url}{path}", self.dicomweb)
        assert status == 200, body
        return list(json.loads(body))

    def audit(self) -> list[dict[str, Any]]:
        exported = tsfnode("audit", "export", self.cluster.dirs[1])
        return [json.loads(line) for line in exported.stdout.splitlines()]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryRetrieveNet]:
    with contextlib.closing(QueryRetrieveNet(tmp_path_factory.mktemp("qr"))) as network:
        yield network


def uids(found: list[pydicom.Dataset], keyword: str) -> set[str]:
    return {str(ds.get(keyword, "")) for ds in found}


def qido_uids(records: list[dict[str, Any]], keyword: str) -> set[str]:
    tag = f"{pydicom.datadict.tag_for_keyword(keyword):08X}"
    return {str(r[tag]["Value"][0]) for r in records}


def test_c_find_at_every_level_answers_as_qido_for_the_bound_reader(
    net: QueryRetrieveNet, tmp_path: Path
) -> None:
    studies = net.qido("/studies")
    (study,) = qido_uids(studies, "StudyInstanceUID")
    series = qido_uids(net.qido("/series"), "SeriesInstanceUID")
    instances = qido_uids(net.qido("/instances"), "SOPInstanceUID")
    assert len(instances) == SLICES
    patient_id = str(studies[0]["00100020"]["Value"][0])  # the pseudonymised one
    # Patient Root, PATIENT level: the patient as the reader's node holds it
    (patient,) = net.find(
        "MARIEWS", "-P", "QueryRetrieveLevel=PATIENT", "PatientID", "PatientName",
        "NumberOfPatientRelatedInstances", out=tmp_path / "patient",
    )  # fmt: skip
    assert patient.PatientID == patient_id
    assert int(patient.NumberOfPatientRelatedInstances) == SLICES
    assert patient.QueryRetrieveLevel == "PATIENT"
    # Study Root, STUDY level: the keys asked for, the counts, where to retrieve
    (found,) = net.find(
        "MARIEWS", "-S", "QueryRetrieveLevel=STUDY", "StudyInstanceUID", "PatientID",
        "ModalitiesInStudy=CT", "NumberOfStudyRelatedInstances", "StudyDate",
        out=tmp_path / "study",
    )  # fmt: skip
    assert found.StudyInstanceUID == study
    assert found.PatientID == patient_id
    assert int(found.NumberOfStudyRelatedInstances) == SLICES
    assert found.RetrieveAETitle == NODE_AE
    assert "SeriesInstanceUID" not in found  # only what was asked for
    # SERIES and IMAGE levels, within the study: the same UIDs as QIDO's
    found_series = net.find(
        "MARIEWS", "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={study}",
        "SeriesInstanceUID", "Modality", out=tmp_path / "series",
    )  # fmt: skip
    assert uids(found_series, "SeriesInstanceUID") == series
    images = net.find(
        "MARIEWS", "-S", "QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={study}",
        "SeriesInstanceUID", "SOPInstanceUID", "InstanceNumber", out=tmp_path / "images",
    )  # fmt: skip
    assert uids(images, "SOPInstanceUID") == instances
    # Patient Root, IMAGE level, a list of UIDs: each
    two = sorted(instances)[:2]
    picked = net.find(
        "MARIEWS", "-P", "QueryRetrieveLevel=IMAGE", f"PatientID={patient_id}",
        f"StudyInstanceUID={study}", f"SeriesInstanceUID={next(iter(series))}",
        f"SOPInstanceUID={chr(92).join(two)}", out=tmp_path / "two",
    )  # fmt: skip
    assert uids(picked, "SOPInstanceUID") == set(two)
    # matching: a date range that excludes it, a wildcard that does not match
    for n, key in enumerate(("StudyDate=19000101-19000102", "PatientID=NOBODY*")):
        none = net.find(
            "MARIEWS", "-S", "QueryRetrieveLevel=STUDY", "StudyInstanceUID", key,
            out=tmp_path / f"none{n}",
        )  # fmt: skip
        assert none == []
    # another reader's workstation, and a workstation bound to no one: nothing
    for ae in ("PAULWS", "UNBOUND"):
        for level in ("STUDY", "IMAGE"):
            assert net.find(
                ae, "-S", f"QueryRetrieveLevel={level}", "StudyInstanceUID", "SOPInstanceUID",
                out=tmp_path / f"{ae}-{level}",
            ) == []  # fmt: skip


def _final(output: str) -> dict[str, str]:
    """The last C-MOVE/C-GET response's status, counts and Error Comment, as dcmtk
    prints them (-d)."""
    fields: dict[str, str] = {}
    for key in ("DIMSE Status", "Completed Suboperations", "Failed Suboperations"):
        found = re.findall(rf"{key}\s*:\s*(.+)", output)
        if found:
            fields[key] = found[-1].strip()
    comments = re.findall(r"\(0000,0902\) LO \[([^\]]*)\]", output)
    fields["Error Comment"] = comments[-1] if comments else ""
    return fields


def test_an_ae_title_claimed_from_another_host_than_its_workstations_finds_nothing(
    net: QueryRetrieveNet, tmp_path: Path
) -> None:
    """An AE title is a name any program may send: bound to Marie's workstation at
    127.0.0.2, it opens nothing to a program calling from 127.0.0.1 under that name."""
    net.bind("marie", "MARIEFAR", 11114, host="127.0.0.2")
    found = net.find(
        "MARIEFAR", "-S", "QueryRetrieveLevel=STUDY", "StudyInstanceUID", out=tmp_path / "far"
    )
    assert found == []
    (study,) = net.find(
        "MARIEWS", "-S", "QueryRetrieveLevel=STUDY", "StudyInstanceUID", out=tmp_path / "near"
    )
    assert study.StudyInstanceUID


def test_c_move_sends_every_instance_to_the_bound_workstation(
    net: QueryRetrieveNet, storescp: Callable[..., tuple[int, Path]]
) -> None:
    (study,) = qido_uids(net.qido("/studies"), "StudyInstanceUID")
    port, out = storescp()  # AE HOROS, uncompressed only: the images are decompressed
    net.bind("marie", "HOROS", port)
    final = net.move_study(study)
    assert final["Completed Suboperations"] == str(SLICES), final
    assert final["Failed Suboperations"] == "0"
    received = {read(p).SOPInstanceUID: read(p) for p in out.iterdir()}
    assert set(received) == qido_uids(net.qido("/instances"), "SOPInstanceUID")
    # byte for byte what DICOMweb retrieves (Explicit VR Little Endian)
    status, headers, body = get(f"{net.url}/studies/{study}", net.dicomweb)
    assert status == 200
    for _, data in parts(headers["Content-Type"], body):
        web = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
        assert received[web.SOPInstanceUID].PixelData == web.PixelData
    # a workstation that takes JPEG-LS gets the stored codestream as it is
    port, out = storescp("+xa")
    net.bind("marie", "HOROS", port)  # the same AE title, moved to another port
    series = qido_uids(net.qido("/series"), "SeriesInstanceUID").pop()
    moved = net.dcmtk(
        "movescu", "MARIEWS", "-S", "-aem", "HOROS", "-k", "QueryRetrieveLevel=SERIES",
        "-k", f"StudyInstanceUID={study}", "-k", f"SeriesInstanceUID={series}",
    )  # fmt: skip
    assert _final(moved.stdout + moved.stderr)["Completed Suboperations"] == str(SLICES)
    status, headers, body = get(
        f"{net.url}/studies/{study}",
        {
            **net.dicomweb,
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
        },
    )
    stored = {}
    for _, data in parts(headers["Content-Type"], body):
        ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
        stored[ds.SOPInstanceUID] = ds
    for path in out.iterdir():
        ds = read(path)
        assert (
            ds.file_meta.TransferSyntaxUID == stored[ds.SOPInstanceUID].file_meta.TransferSyntaxUID
        )
        assert ds.PixelData == stored[ds.SOPInstanceUID].PixelData


def test_c_move_to_a_destination_not_bound_to_the_reader_is_refused(
    net: QueryRetrieveNet,
) -> None:
    (study,) = qido_uids(net.qido("/studies"), "StudyInstanceUID")
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    for caller, destination, comment in (
        ("MARIEWS", "ELSEWHERE", "Move destination unknown"),  # bound to no one
        ("MARIEWS", "PAULWS", "Move destination unknown"),  # Paul's, not Marie's
        ("UNBOUND", "MARIEWS", "bound to no account"),  # the caller is no one
    ):
        moved = net.dcmtk("movescu", caller, "-S", "-aem", destination, *keys)
        final = _final(moved.stdout + moved.stderr)
        assert final["DIMSE Status"].startswith("0xa801"), (caller, destination, final)
        assert comment in final.get("Error Comment", ""), final


def test_c_get_brings_every_instance_to_the_bound_workstation(
    net: QueryRetrieveNet, tmp_path: Path
) -> None:
    (study,) = qido_uids(net.qido("/studies"), "StudyInstanceUID")
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    out = tmp_path / "got"
    out.mkdir()
    got = net.dcmtk("getscu", "MARIEWS", "-S", "+xt", "-od", str(out), *keys)  # JPEG-LS first
    assert got.returncode == 0, got.stderr
    assert _final(got.stdout + got.stderr)["Completed Suboperations"] == str(SLICES)
    received = {read(p).SOPInstanceUID: read(p) for p in out.iterdir()}
    assert set(received) == qido_uids(net.qido("/instances"), "SOPInstanceUID")
    for ds in received.values():  # as stored: the sender's node's lossless JPEG-LS
        assert ds.file_meta.TransferSyntaxUID == JPEGLSLossless
    # a workstation bound to no one gets nothing, and is told why
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    refused = net.dcmtk("getscu", "UNBOUND", "-S", "-od", str(nothing), *keys)
    final = _final(refused.stdout + refused.stderr)
    assert final["DIMSE Status"].startswith("0xc000"), final
    assert "bound to no account" in final["Error Comment"]
    # a SERIES retrieval that names no series is refused, the missing key named
    series_level = ["-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study}"]
    refused = net.dcmtk("getscu", "MARIEWS", "-S", "-od", str(nothing), *series_level)
    final = _final(refused.stdout + refused.stderr)
    assert final["DIMSE Status"].startswith("0xa900"), final
    assert "0020000E" in final["Error Comment"]
    assert list(nothing.iterdir()) == []


def test_every_query_and_retrieval_is_in_the_case_audit(
    net: QueryRetrieveNet, tmp_path: Path
) -> None:
    (study,) = qido_uids(net.qido("/studies"), "StudyInstanceUID")
    net.find("MARIEWS", "-S", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study}",
             out=tmp_path / "find")  # fmt: skip
    out = tmp_path / "got"
    out.mkdir()
    net.dcmtk("getscu", "MARIEWS", "-S", "+xt", "-od", str(out), "-k", "QueryRetrieveLevel=STUDY",
              "-k", f"StudyInstanceUID={study}")  # fmt: skip
    mine = [e for e in net.audit() if e["case_id"] == net.case and e["action"].startswith("dicom ")]
    details = {(e["action"], e["detail"]) for e in mine}
    assert ("dicom query", f"C-FIND STUDY by MARIEWS: {SLICES} instances matched") in details
    assert ("dicom retrieve", f"C-GET by MARIEWS: {SLICES} instances (0 decompressed)") in details
    assert {e["actor"] for e in mine} == {PublicIdentity.from_text(net.marie.id).key.hex()}
    assert tsfnode("audit", "verify", net.cluster.dirs[1]).returncode == 0


def test_orthanc_queries_the_node_and_retrieves_the_study_into_itself(
    net: QueryRetrieveNet, tmp_path: Path
) -> None:
    (study,) = qido_uids(net.qido("/studies"), "StudyInstanceUID")
    node = {"tsfnode": [NODE_AE, net.host, net.port]}
    with orthanc_running(tmp_path / "orthanc", "ORTHANCWS", node) as (http_port, dicom_port):
        net.bind("marie", "ORTHANCWS", dicom_port)
        query = orthanc_post(
            http_port, "/modalities/tsfnode/query",
            {"Level": "Study", "Query": {"StudyInstanceUID": "", "PatientID": ""}},
        )  # fmt: skip
        answers = orthanc_get(http_port, f"/queries/{query['ID']}/answers?expand")
        assert [a["0020,000d"]["Value"] for a in answers] == [study]
        orthanc_post(http_port, f"/queries/{query['ID']}/retrieve", {"TargetAet": "ORTHANCWS"})
        (landed,) = orthanc_get(http_port, "/studies?expand")
        assert landed["MainDicomTags"]["StudyInstanceUID"] == study
        assert len(orthanc_get(http_port, "/instances")) == SLICES


def test_the_reader_binds_her_workstation_on_her_tools_page(
    net: QueryRetrieveNet, tmp_path: Path
) -> None:
    def finds(ae: str, name: str) -> list[pydicom.Dataset]:
        keys = ("QueryRetrieveLevel=STUDY", "StudyInstanceUID")
        return net.find(ae, "-S", *keys, out=tmp_path / name)

    marie = Browser(net.cluster.url(1))
    marie.sign_in("marie")
    status, _, page = marie.get("/web/tools?lang=en")
    assert status == 200
    assert "Query and retrieve from your workstation" in page
    assert f"{net.host}:{net.port}" in page  # the node's DICOM address, and its AE title
    assert NODE_AE in page
    assert finds("MARIEWEB", "before") == []
    status, _, page = marie.post(
        "/web/tools/bindings", {"ae_title": "MARIEWEB", "host": "127.0.0.1", "port": "11114"}
    )
    assert status == 200
    assert "127.0.0.1:11114" in page
    assert len(finds("MARIEWEB", "bound")) == 1  # at once: no restart
    # an AE title is one account's: Paul cannot take it; a bad one is refused, named
    paul = Browser(net.cluster.url(1))
    paul.sign_in("paul")
    paul.get("/web/tools?lang=fr")
    status, _, page = paul.post(
        "/web/tools/bindings", {"ae_title": "MARIEWEB", "host": "127.0.0.1", "port": "11115"}
    )
    assert status == 400
    assert "MARIEWEB est déjà lié à un autre compte" in page
    status, _, page = paul.post(
        "/web/tools/bindings", {"ae_title": "A-TITLE-FAR-TOO-LONG", "host": "h", "port": "1"}
    )
    assert status == 400
    assert "Station non liée" in page
    assert "16" in page
    marie.post("/web/tools/bindings/delete", {"ae_title": "MARIEWEB"})
    assert finds("MARIEWEB", "unbound") == []
