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
import socket
import subprocess
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import blake3
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from tests.harness.mounts import small_tmpfs
from tests.harness.people import REPORT, Browser
from tests.harness.studies import part10, reader_instance
from tests.harness.waiting import wait_for
from tests.tsfnode.test_dicom_qr import NODE_AE, QueryRetrieveNet
from tests.tsfnode.test_dicomweb import dicomweb_token
from tests.tsfnode.test_report_export_network import download, pdf_text
from tsfnode.cases.reader_images import INCOMING, MAX_INSTANCE_BYTES
from tsfnode.dicomweb.stow import MAX_BODY_BYTES, MAX_WARNINGS

pytestmark = pytest.mark.slow
KOS = "1.2.840.10008.5.1.4.1.1.88.59"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
DICOM_PARTS = 'multipart/related; type="application/dicom"; boundary=tsf-test'


# [http] client_timeout_s of the nodes (30 s by default): a stalled body is cut after
# this, so the test of it does not wait 30 s; long enough that no other request of this
# module, all on loopback, stalls that long.
CLIENT_TIMEOUT_S = 10


class ReaderImagesNet(QueryRetrieveNet):
    def __init__(self, base: Path) -> None:
        super().__init__(base, http={"client_timeout_s": CLIENT_TIMEOUT_S})
        try:
            self.client = DICOMwebClient(url=self.url, headers=self.dicomweb)
            (self.source,) = self.client.retrieve_study(self.study())[:1]
        except BaseException:
            self.cluster.close()
            raise

    @property
    def node_pid(self) -> int:
        """The process of Marie's node (Erasme)."""
        node = self.cluster.nodes[1]
        assert node is not None
        return node.process.pid

    def incoming(self) -> Path:
        """Where Marie's node writes the parts of STOW-RS requests as they come."""
        return self.cluster.dirs[1] / "reader_images" / INCOMING

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

    def stow(
        self, body: bytes | Iterable[bytes], token: str | None = None, **headers: str
    ) -> tuple[int, Any, Any]:
        """A raw STOW-RS request: its status, DICOM JSON answer (or text), headers; a
        body given piece by piece is sent as it is made (chunked, no Content-Length)."""
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


def peak_rise(pid: int, run: Callable[[], Any]) -> tuple[int, Any]:
    """How far the resident memory of process ``pid`` rose above what it was while
    ``run()`` ran (its peak, VmHWM, reset first: /proc/PID/clear_refs), and what
    ``run()`` gave."""
    proc = Path(f"/proc/{pid}")
    (proc / "clear_refs").write_text("5")  # the peak becomes the present size

    def kib(field: str) -> int:
        line = next(x for x in (proc / "status").read_text().splitlines() if x.startswith(field))
        return int(line.split()[1]) * 1024

    before = kib("VmRSS:")
    result = run()
    return kib("VmHWM:") - before, result


def too_large(net: ReaderImagesNet) -> tuple[Dataset, Iterator[bytes]]:
    """A secondary capture of Marie's one byte over MAX_INSTANCE_BYTES (its head, then
    Pixel Data of zeros), and its bytes a MiB at a time, never whole in memory."""
    ds = net.made(SECONDARY_CAPTURE, "OT")
    head = part10(ds)
    value = MAX_INSTANCE_BYTES + 1 - len(head) - 12  # Pixel Data: OB, a 12-byte header
    pixel_header = b"\xe0\x7f\x10\x00OB\x00\x00" + value.to_bytes(4, "little")

    def pieces() -> Iterator[bytes]:
        yield head + pixel_header
        left = value
        while left:  # bounded: 64 pieces
            yield bytes(min(left, 1 << 20))
            left -= min(left, 1 << 20)

    return ds, pieces()


def streamed_parts(*bodies: bytes | Iterator[bytes]) -> Iterator[bytes]:
    """parts(), made piece by piece."""
    for body in bodies:
        yield b"--tsf-test\r\nContent-Type: application/dicom\r\n\r\n"
        yield from [body] if isinstance(body, bytes) else body
        yield b"\r\n"
    yield b"--tsf-test--\r\n"


def stored_uids(answer: dict[str, Any]) -> set[str]:
    return {i["00081155"]["Value"][0] for i in answer.get("00081199", {}).get("Value", [])}


def failed_items(answer: dict[str, Any]) -> list[tuple[int, str]]:
    return [
        (i["00081197"]["Value"][0], i.get("00081155", {}).get("Value", [""])[0])
        for i in answer.get("00081198", {}).get("Value", [])
    ]


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


def test_a_part_over_64_mib_among_valid_ones_is_refused_alone_and_never_held_in_memory(
    net: ReaderImagesNet,
) -> None:
    """A part one byte over the instance limit, between two key objects: the key objects
    are stored and listed, the big one is refused (A700, out of resources) naming its
    UIDs, and the node's resident memory does not rise by the size of the request (its
    parts are written to the node's own directory as they come; before, each part was
    read whole in memory, up to 256 MiB a request)."""
    count = len(net.images(1))
    first, last = net.made(KOS, "KO"), net.made(KOS, "KO")
    big, pieces = too_large(net)
    body = streamed_parts(part10(first), pieces, part10(last))
    rise, (status, answer, headers) = peak_rise(net.node_pid, lambda: net.stow(body))
    assert status == 202, answer
    assert stored_uids(answer) == {str(first.SOPInstanceUID), str(last.SOPInstanceUID)}
    assert failed_items(answer) == [(0xA700, str(big.SOPInstanceUID))]
    assert "too large" in headers["Warning"]
    assert len(net.images(1)) == count + 2
    assert rise < MAX_INSTANCE_BYTES // 2, f"the node's memory rose by {rise >> 20} MiB"
    assert not list(net.incoming().iterdir())  # nothing left behind


def test_two_stow_requests_raced_are_each_answered_whole_in_bounded_memory(
    net: ReaderImagesNet,
) -> None:
    """Two requests at once, each a key object and a part over the limit: each answer
    lists its own key object stored and its big part refused, and the node's memory does
    not rise by either request's size."""
    count = len(net.images(1))
    sent = [(net.made(KOS, "KO"), *too_large(net)) for _ in range(2)]
    answers: list[Any] = [None, None]

    def send(i: int) -> None:
        kos, _, pieces = sent[i]
        answers[i] = net.stow(streamed_parts(part10(kos), pieces))

    def race() -> None:
        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)

    rise, _ = peak_rise(net.node_pid, race)
    for (kos, big, _), (status, answer, _) in zip(sent, answers, strict=True):
        assert status == 202, answer
        assert stored_uids(answer) == {str(kos.SOPInstanceUID)}
        assert failed_items(answer) == [(0xA700, str(big.SOPInstanceUID))]
    assert len(net.images(1)) == count + 2
    assert rise < MAX_INSTANCE_BYTES // 2, f"the node's memory rose by {rise >> 20} MiB"


def test_a_request_past_256_mib_is_answered_413_listing_what_it_stored(
    net: ReaderImagesNet,
) -> None:
    """A key object, then parts over the instance limit until the request passes 256 MiB
    (no Content-Length to refuse it by): the key object read before stays attached, and
    the 413's answer says so (ReferencedSOPSequence), with the big parts read before it
    refused, and a Warning saying the rest was not read."""
    count = len(net.images(1))
    kos = net.made(KOS, "KO")
    bigs = [too_large(net) for _ in range(MAX_BODY_BYTES // MAX_INSTANCE_BYTES)]
    body = streamed_parts(part10(kos), *(pieces for _, pieces in bigs))
    status, answer, headers = net.stow(body, **{"Accept-Language": "fr"})
    assert status == 413, answer
    assert stored_uids(answer) == {str(kos.SOPInstanceUID)}
    assert failed_items(answer) == [(0xA700, str(ds.SOPInstanceUID)) for ds, _ in bigs[:-1]]
    assert r"n'a pas \xe9t\xe9 lu" in " ".join(headers.get_all("Warning"))  # escaped: ASCII
    assert len(net.images(1)) == count + 1


def test_many_refused_parts_are_answered_with_ten_warnings_a_client_can_read(
    net: ReaderImagesNet,
) -> None:
    """150 parts that are not DICOM: each is in FailedSOPSequence, but the answer
    carries MAX_WARNINGS Warning headers, the last counting the rest (before, one per
    part: Python's http.client, under requests and dicomweb-client, refuses an answer of
    more than 100 headers, so the client saw an error and not the answer)."""
    count = len(net.images(1))
    status, answer, headers = net.stow(parts(*[b"not DICOM %d" % i for i in range(150)]))
    assert status == 409, answer
    assert failure_reasons(answer) == [0xC000] * 150
    warnings = headers.get_all("Warning")
    assert len(warnings) == MAX_WARNINGS
    assert all("not a DICOM instance" in w for w in warnings[:-1])
    assert "141 more parts refused" in warnings[-1]
    status, _, headers = net.stow(parts(*[b"x"] * 12), **{"Accept-Language": "fr"})
    assert status == 409
    assert r"3 autres parties refus\xe9es" in headers.get_all("Warning")[-1]
    assert len(net.images(1)) == count


def test_a_disk_that_fills_up_while_a_part_is_written_is_named_and_loses_nothing(
    net: ReaderImagesNet,
) -> None:
    """The folder where Marie's node writes STOW-RS parts as they come is a 1 MiB disk:
    a key object is stored, then a 4 MiB part fills the disk; the answer is 507 naming
    the full disk, listing the key object stored (before: 500, and no word of what was
    kept). A request whose first part fills it is 507 saying nothing was stored; once
    there is room again, the same instance is stored."""
    count = len(net.images(1))
    first, second = net.made(KOS, "KO"), net.made(KOS, "KO")
    with small_tmpfs(net.incoming(), "1m"):
        status, answer, headers = net.stow(parts(part10(first), bytes(4 << 20)))
        assert status == 507, answer
        assert stored_uids(answer) == {str(first.SOPInstanceUID)}
        assert "disk filled up" in headers.get_all("Warning")[-1]
        status, text, _ = net.stow(parts(bytes(4 << 20), part10(second)),
                                   **{"Accept-Language": "fr"})  # fmt: skip
        assert status == 507
        assert "disque du nœud est plein" in text
        assert not list(net.incoming().iterdir())  # nothing left on the full disk
    status, answer, _ = net.stow(parts(part10(second)))
    assert status == 200, answer
    assert len(net.images(1)) == count + 2


def test_a_client_that_stops_mid_part_holds_nothing_and_is_cut_after_the_timeout(
    net: ReaderImagesNet,
) -> None:
    """A STOW client sends half an instance and stops: its part is written in the node's
    own directory (never in memory, never in the machine's /tmp), another STOW succeeds
    meanwhile, and once the node's body timeout (app.py slow_bodies: 512 bytes/s over
    ``[http] client_timeout_s``, CLIENT_TIMEOUT_S here) closes the stalled connection its
    file is gone."""
    parsed = urllib.parse.urlsplit(net.url)
    data = part10(net.made(KOS, "KO"))
    head = (
        f"POST {parsed.path}/studies HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
        f"Authorization: {net.dicomweb['Authorization']}\r\nContent-Type: {DICOM_PARTS}\r\n"
        f"Content-Length: {len(parts(data))}\r\n\r\n"
    ).encode()
    with socket.create_connection((parsed.hostname, parsed.port), timeout=90) as stalled:
        stalled.sendall(head + parts(data)[: len(data) // 2])
        wait_for("the stalled part's file in the node's directory",
                 lambda: bool(list(net.incoming().glob("stow-*"))))  # fmt: skip
        kos = net.made(KOS, "KO")
        status, answer, _ = net.stow(parts(part10(kos)))
        assert status == 200, answer
        assert stored_uids(answer) == {str(kos.SOPInstanceUID)}
        assert stalled.recv(1024) == b""  # closed by the node (bounded: the socket's 90 s)
    wait_for("the stalled part's file removed", lambda: not list(net.incoming().iterdir()))


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
