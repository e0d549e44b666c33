"""DICOMweb on real nodes, called by a real client (dicomweb-client, from PyPI): Marie
reads Koffi's CT and MR with her own viewer, as far as the access rules let her.

The network is tests.harness.people.PairedNet: Koffi sends at Cotonou (node 0); Marie reads
and Anne coordinates the paediatric group at Erasme (node 1). Two cases reach Marie: a
CT series of six real slices and a real multi-frame MR (both JPEG-LS lossless after the
sender's intake, as every study travels)."""

from __future__ import annotations

import contextlib
import copy
import email.parser
import email.policy
import html
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)
from requests.exceptions import HTTPError

from tests.harness.data import read_dicom as read
from tests.harness.nodes import tsfnode
from tests.harness.pacs import free_port
from tests.harness.people import Browser, PairedNet, Person
from tests.harness.studies import ct_series
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.slow
QUICK = {
    "transfer": {"poll_interval_ms": 500, "retry_base_ms": 200},
    "cases": {"scan_interval_ms": 300, "stats_interval_ms": 1000},
}
VIEWER = "https://viewer.example.org"
SLICES = 6
JSON = "application/dicom+json"


def dicomweb_token(person: Person, days: int = 30, label: str = "test") -> str:
    made = tsfnode(
        "account", "token", person.cluster.dirs[person.node], person.username,
        "--purpose", "dicomweb", "--days", str(days), "--label", label,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


class DicomwebNet(PairedNet):
    def __init__(self, base: Path, viewer: str = VIEWER) -> None:
        """``viewer``: the origin of a viewer served elsewhere ([dicomweb] cors_origins)."""
        super().__init__(base, **QUICK, dicomweb={"cors_origins": [viewer]})
        self.clients: list[DICOMwebClient] = []
        try:
            self._send_two_cases(base)
        except BaseException:
            self.cluster.close()
            raise

    def _send_two_cases(self, base: Path) -> None:
        ct = base / "ct"
        ct.mkdir()
        ct_series(ct, SLICES)
        mr = base / "mr"
        mr.mkdir()
        shutil.copy(get_testdata_file("emri_small.dcm"), mr / "emri_small.dcm")  # 10 frames
        pair = {"routing": "pair", "target": self.pair}
        self.ct_case = self.submit(ct, pair, prepared=False)  # encoded by the running node
        self.mr_case = self.submit(mr, pair)
        for case in (self.ct_case, self.mr_case):
            wait_for("the case at Marie's node", lambda c=case: self.marie.state(c) == "assigned")
        self.url = f"{self.cluster.url(1)}/dicomweb"
        self.marie_token = dicomweb_token(self.marie)

    def client(self, token: str, node: int = 1) -> DICOMwebClient:
        made = DICOMwebClient(
            url=f"{self.cluster.url(node)}/dicomweb",
            headers={"Authorization": f"Bearer {token}"},
        )
        self.clients.append(made)
        return made

    def close(self) -> None:
        for client in self.clients:
            client._session.close()
        self.cluster.close()

    def stored(self, case: str) -> list[Path]:
        """The case's DICOM files as Marie's node holds them."""
        images = self.marie.case(case)["images"]
        root = self.cluster.dirs[1]
        return sorted(p for folder in images for p in (root / folder).rglob("*.dcm"))


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DicomwebNet]:
    with contextlib.closing(DicomwebNet(tmp_path_factory.mktemp("dicomweb"))) as network:
        yield network


def value(record: dict[str, Any], keyword: str) -> Any:
    tag = f"{pydicom.datadict.tag_for_keyword(keyword):08X}"
    found = record.get(tag, {}).get("Value", [None])
    return found[0] if len(found) == 1 else found


def get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def parts(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """The parts of a multipart/related body, parsed by the standard library's email
    parser (not by the code under test)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    return [(p.get("Content-Type"), p.get_payload(decode=True)) for p in message.iter_parts()]


def test_search_finds_the_readers_studies_with_the_query_keys(net: DicomwebNet) -> None:
    client = net.client(net.marie_token)
    studies = client.search_for_studies()
    assert len(studies) == 2
    by_modality = {value(s, "ModalitiesInStudy"): s for s in studies}
    assert set(by_modality) == {"CT", "MR"}
    ct = by_modality["CT"]
    assert value(ct, "NumberOfStudyRelatedInstances") == SLICES
    assert value(ct, "NumberOfStudyRelatedSeries") == 1
    study = value(ct, "StudyInstanceUID")
    assert value(ct, "RetrieveURL") == f"{net.url}/studies/{study}"
    ct_file = read(net.stored(net.ct_case)[0])
    assert study == ct_file.StudyInstanceUID
    # single value, wildcard, list of UIDs and range matching
    assert [value(s, "StudyInstanceUID") for s in client.search_for_studies(
        search_filters={"ModalitiesInStudy": "CT"})] == [study]  # fmt: skip
    pseudonym = str(ct_file.PatientName)  # the sender node's pseudonym, not the patient
    wild = client.search_for_studies(search_filters={"PatientName": pseudonym[:-2].lower() + "?*"})
    assert [value(s, "StudyInstanceUID") for s in wild] == [study]
    assert client.search_for_studies(search_filters={"PatientName": "NOBODY*"}) == []
    both = client.search_for_studies(
        search_filters={"StudyInstanceUID": ",".join(value(s, "StudyInstanceUID") for s in studies)}
    )
    assert len(both) == 2
    mr = by_modality["MR"]
    date = value(mr, "StudyDate")  # shifted by the sender's intake, kept as a date
    assert len(date) == 8
    after = f"{int(date[:4]) + 1}0101"
    assert [s for s in client.search_for_studies(search_filters={"StudyDate": f"{date}-"})] == [mr]
    assert client.search_for_studies(search_filters={"StudyDate": f"{after}-"}) == []
    assert client.search_for_studies(search_filters={"StudyDate": f"-{after}"}) == [mr]
    # series and instances, limit and offset, includefield
    (series,) = client.search_for_series(study_instance_uid=study)
    assert value(series, "Modality") == "CT"
    assert value(series, "NumberOfSeriesRelatedInstances") == SLICES
    page = client.search_for_instances(
        study_instance_uid=study, limit=2, offset=2, fields=["SliceLocation"]
    )
    assert [value(i, "InstanceNumber") for i in page] == [3, 4]
    assert all(value(i, "SliceLocation") is not None for i in page)
    assert value(page[0], "AvailableTransferSyntaxUID") == JPEGLSLossless
    everything = client.search_for_instances(study_instance_uid=study, fields=["all"], limit=1)
    assert value(everything[0], "ImagePositionPatient") is not None


def test_a_query_the_node_cannot_answer_is_refused_with_its_reason(net: DicomwebNet) -> None:
    auth = {"Authorization": f"Bearer {net.marie_token}", "Accept": JSON}
    status, _, body = get(f"{net.url}/studies?PatientNme=X", auth)
    assert status == 400
    assert b"PatientNme" in body
    status, _, body = get(f"{net.url}/studies?limit=many", auth)
    assert (status, b"limit") == (400, body[5:10])
    status, headers, body = get(f"{net.url}/studies?PatientName=x*&fuzzymatching=true", auth)
    assert status == 200
    assert "fuzzymatching" in headers["Warning"]
    # proxy headers from a client that is not a configured proxy change nothing: the
    # URLs given back are the node's (behind a trusted proxy: tests/tsfnode/test_tls.py)
    spoofed = {**auth, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "tsf.example.org"}
    status, _, body = get(f"{net.url}/studies", spoofed)
    urls = [value(s, "RetrieveURL") for s in json.loads(body)]
    assert urls
    assert all(u.startswith(f"{net.url}/studies/") for u in urls)


def test_retrieve_gives_the_stored_bytes_or_explicit_little_endian(net: DicomwebNet) -> None:
    stored = net.stored(net.ct_case)
    first = read(stored[0])
    url = (
        f"{net.url}/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
        f"/instances/{first.SOPInstanceUID}"
    )
    status, headers, body = get(
        url,
        {
            "Authorization": f"Bearer {net.marie_token}",
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
        },
    )
    assert status == 200
    ((kind, data),) = parts(headers["Content-Type"], body)
    assert kind.startswith("application/dicom")
    assert data == stored[0].read_bytes()  # byte for byte what was stored
    # the whole series, as stored
    status, headers, body = get(
        url.rsplit("/instances/", 1)[0],
        {
            "Authorization": f"Bearer {net.marie_token}",
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
        },
    )
    assert sorted(data for _, data in parts(headers["Content-Type"], body)) == sorted(
        p.read_bytes() for p in stored
    )
    # dicomweb-client's default (transfer-syntax=*): as stored
    client = net.client(net.marie_token)
    uids = (first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID)
    got = client.retrieve_instance(*uids)
    assert got.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert np.array_equal(got.pixel_array, first.pixel_array)
    # Explicit VR Little Endian when asked for (the standard's default): the same pixels
    got = client.retrieve_instance(
        *uids, media_types=(("application/dicom", ExplicitVRLittleEndian),)
    )
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert got.SOPInstanceUID == first.SOPInstanceUID
    assert np.array_equal(got.pixel_array, first.pixel_array)
    study = client.retrieve_study(first.StudyInstanceUID)
    assert sorted(d.SOPInstanceUID for d in study) == sorted(read(p).SOPInstanceUID for p in stored)


def test_metadata_names_the_bulk_data_and_the_frames_come_as_asked(net: DicomwebNet) -> None:
    client = net.client(net.marie_token)
    (mr_path,) = net.stored(net.mr_case)
    mr = read(mr_path)
    assert int(mr.NumberOfFrames) == 10
    uids = (mr.StudyInstanceUID, mr.SeriesInstanceUID, mr.SOPInstanceUID)
    (meta,) = client.retrieve_series_metadata(*uids[:2])
    assert value(meta, "Rows") == mr.Rows
    assert value(meta, "PatientName") == {"Alphabetic": str(mr.PatientName)}
    pixel_uri = meta["7FE00010"]["BulkDataURI"]
    assert pixel_uri.startswith(f"{net.url}/studies/{uids[0]}/")
    decoded = mr.pixel_array  # frames, rows, columns
    # default media type: uncompressed, little endian
    frames = client.retrieve_instance_frames(*uids, frame_numbers=[2, 5])
    assert frames == [decoded[1].astype("<u2").tobytes(), decoded[4].astype("<u2").tobytes()]
    explicit = client.retrieve_instance_frames(
        *uids,
        frame_numbers=[3],
        media_types=(("application/octet-stream", ExplicitVRLittleEndian),),
    )
    assert explicit == [decoded[2].astype("<u2").tobytes()]
    # as stored: the JPEG-LS codestream of each frame, byte for byte
    assert mr.file_meta.TransferSyntaxUID == JPEGLSLossless
    encapsulated = list(generate_frames(mr.PixelData, number_of_frames=10))
    jls = client.retrieve_instance_frames(
        *uids, frame_numbers=[1, 10], media_types=(("image/jls", JPEGLSLossless),)
    )
    assert jls == [encapsulated[0], encapsulated[9]]
    # a syntax the node does not hold: transcoded (JPEG 2000 lossless), the same pixels
    (jp2,) = client.retrieve_instance_frames(
        *uids, frame_numbers=[7], media_types=(("image/jp2", JPEG2000Lossless),)
    )
    assert jp2.startswith(b"\xff\x4f\xff\x51")  # a JPEG 2000 codestream (SOC, SIZ)
    assert np.array_equal(_decoded_frame(mr, jp2, JPEG2000Lossless), decoded[6])
    # one it cannot produce: 406, saying what it can send, and why not that one
    with pytest.raises(HTTPError) as refused:
        client.retrieve_instance_frames(
            *uids, frame_numbers=[1], media_types=(("image/jpeg", JPEGBaseline8Bit),)
        )
    assert refused.value.response.status_code == 406
    assert "image/jls" in refused.value.response.text
    assert "8-bit" in refused.value.response.text  # a 16-bit MR is never baseline JPEG
    # a frame that is not there: 404
    status, _, body = get(
        f"{net.url}/studies/{uids[0]}/series/{uids[1]}/instances/{uids[2]}/frames/11",
        {"Authorization": f"Bearer {net.marie_token}"},
    )
    assert status == 404
    assert b"frame 11" in body
    # asked in French (a viewer in a French browser): said in French (issue 22, item 8)
    status, _, body = get(
        f"{net.url}/studies/{uids[0]}/series/{uids[1]}/instances/{uids[2]}/frames/11",
        {"Authorization": f"Bearer {net.marie_token}", "Accept-Language": "fr"},
    )
    assert status == 404
    assert body.decode() == "404: pas d'image 11 : l'instance en a 10"
    # the bulk data URI of the metadata: every frame, uncompressed
    bulk = client.retrieve_bulkdata(pixel_uri)
    assert b"".join(bulk) == decoded.astype("<u2").tobytes()


def _decoded_frame(template: pydicom.Dataset, frame: bytes, syntax: str) -> np.ndarray:
    """One frame's codestream, decoded by pydicom as a one-frame image of ``template``."""
    one = copy.deepcopy(template)
    one.file_meta.TransferSyntaxUID = syntax
    one.NumberOfFrames = 1
    one.PixelData = encapsulate([frame])
    return np.asarray(one.pixel_array)


def _dciodvfy_errors(path: Path) -> list[str]:
    checked = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return [line for line in (checked.stdout + checked.stderr).splitlines() if "Error" in line]


def test_instances_are_transcoded_to_the_syntax_asked(net: DicomwebNet, tmp_path: Path) -> None:
    stored = net.stored(net.ct_case)
    first = read(stored[0])
    client = net.client(net.marie_token)
    uids = (first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID)
    for syntax in (JPEG2000Lossless, RLELossless):
        got = client.retrieve_instance(*uids, media_types=(("application/dicom", syntax),))
        assert got.file_meta.TransferSyntaxUID == syntax
        assert np.array_equal(got.pixel_array, first.pixel_array)
        path = tmp_path / f"{syntax}.dcm"
        got.save_as(path, enforce_file_format=True)
        assert _dciodvfy_errors(path) == _dciodvfy_errors(stored[0])  # nothing new wrong
    # several syntaxes with q-values: the best the node can produce (no HTJ2K encoder)
    dicom = 'multipart/related; type="application/dicom"; transfer-syntax='
    accept = (
        f"{dicom}1.2.840.10008.1.2.4.201, {dicom}{RLELossless}; q=0.9, "
        f"{dicom}{ExplicitVRLittleEndian}; q=0.1"
    )
    status, headers, body = get(
        f"{net.url}/studies/{uids[0]}/series/{uids[1]}",
        {"Authorization": f"Bearer {net.marie_token}", "Accept": accept},
    )
    assert status == 200
    sent = parts(headers["Content-Type"], body)
    assert len(sent) == SLICES
    originals = {read(p).SOPInstanceUID: read(p) for p in stored}
    for kind, data in sent:
        assert RLELossless in kind
        got = pydicom.dcmread(io.BytesIO(data))
        assert got.file_meta.TransferSyntaxUID == RLELossless
        assert np.array_equal(got.pixel_array, originals[got.SOPInstanceUID].pixel_array)
    # lossy only by name, and then marked; JPEG Baseline never for a 16-bit CT
    got = client.retrieve_instance(*uids, media_types=(("application/dicom", JPEG2000),))
    assert got.LossyImageCompression == "01"
    # this slice was JPEG 2000 compressed once already (pydicom-data's 693_UNCI): both said
    assert first.LossyImageCompressionMethod == "ISO_15444_1"
    assert list(got.LossyImageCompressionMethod) == ["ISO_15444_1", "ISO_15444_1"]
    assert len(got.LossyImageCompressionRatio) == 2
    status, _, body = get(
        f"{net.url}/studies/{uids[0]}",
        {"Authorization": f"Bearer {net.marie_token}",
         "Accept": f"{dicom}{JPEGBaseline8Bit}"},
    )  # fmt: skip
    assert status == 406
    assert JPEG2000Lossless in body.decode()  # what it can send
    assert "8-bit" in body.decode()  # and why not this
    # one frame alone, as the body (Accept: application/octet-stream, single part)
    status, headers, body = get(
        f"{net.url}/studies/{uids[0]}/series/{uids[1]}/instances/{uids[2]}/frames/1",
        {"Authorization": f"Bearer {net.marie_token}", "Accept": "application/octet-stream"},
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/octet-stream")
    assert body == first.pixel_array.astype("<i2" if first.PixelRepresentation else "<u2").tobytes()


def transcoding_figures(node_url: str) -> dict[str, float]:
    """DICOMweb's transcodings as the node's /metrics shows them to its operator."""
    with urllib.request.urlopen(f"{node_url}/metrics", timeout=10) as response:
        families = text_string_to_metric_families(response.read().decode())
        (found,) = [f for f in families if f.name == "tsf_dicomweb_transcodings"]
    return {sample.labels["figure"]: sample.value for sample in found.samples}


def test_at_most_two_transcodings_run_at_once_on_a_node(net: DicomwebNet) -> None:
    """Three viewers ask at once for the CT series in RLE (pydicom's encoder, each slice
    decoded and encoded on a worker thread): each gets every slice, and the node's
    /metrics shows that two transcodings at most ran at once while another waited its
    turn (the most of each since the node started; nothing running once answered)."""
    first = read(net.stored(net.ct_case)[0])
    url = f"{net.url}/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
    headers = {
        "Authorization": f"Bearer {net.marie_token}",
        "Accept": f'multipart/related; type="application/dicom"; transfer-syntax={RLELossless}',
    }
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: get(url, headers), range(3)))
    for status, answered, body in answers:
        assert status == 200
        sent = parts(answered["Content-Type"], body)
        assert len(sent) == SLICES
        assert all(read(io.BytesIO(data)).file_meta.TransferSyntaxUID == RLELossless
                   for _, data in sent)  # fmt: skip
    figures = transcoding_figures(net.cluster.url(1))
    assert figures["most_running"] == 2, figures  # three asked at once: two ran
    assert figures["most_waiting"] >= 1, figures  # and the third waited its turn
    assert figures["running"] == figures["waiting"] == 0, figures


def test_a_study_and_a_series_are_rendered_image_by_image(net: DicomwebNet) -> None:
    first = read(net.stored(net.ct_case)[0])
    auth = {"Authorization": f"Bearer {net.marie_token}"}
    series = f"{net.url}/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
    for where in (f"{net.url}/studies/{first.StudyInstanceUID}", series):
        status, headers, body = get(f"{where}/rendered?viewport=64,64", auth)
        assert status == 200
        assert headers["Content-Type"].startswith('multipart/related; type="image/jpeg"')
        images = [Image.open(io.BytesIO(data)) for _, data in parts(headers["Content-Type"], body)]
        assert [(i.format, max(i.size)) for i in images] == [("JPEG", 64)] * SLICES
    # a single image/png is only for a series of one image: else 406 saying so
    status, _, body = get(f"{series}/rendered", {**auth, "Accept": "image/png"})
    assert (status, b"multipart/related" in body) == (406, True)


def test_rendered_images_and_thumbnails(net: DicomwebNet) -> None:
    client = net.client(net.marie_token)
    first = read(net.stored(net.ct_case)[0])
    uids = (first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID)
    jpeg = client.retrieve_instance_rendered(*uids, media_types=("image/jpeg",))
    image = Image.open(io.BytesIO(jpeg))
    assert (image.format, image.size) == ("JPEG", (first.Columns, first.Rows))
    png = client.retrieve_instance_rendered(
        *uids, media_types=("image/png",), params={"window": "40,400", "viewport": "256,256"}
    )
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.size) == ("PNG", (256, 256))
    # window: bone and lung windows of the same slice are not the same picture
    lung = client.retrieve_instance_frames_rendered(
        *uids, frame_numbers=[1], media_types=("image/png",), params={"window": "-600,1500"}
    )
    bone = client.retrieve_instance_frames_rendered(
        *uids, frame_numbers=[1], media_types=("image/png",), params={"window": "400,1800"}
    )
    assert (
        np.asarray(Image.open(io.BytesIO(lung))).mean()
        > np.asarray(Image.open(io.BytesIO(bone))).mean()
    )
    auth = {"Authorization": f"Bearer {net.marie_token}", "Accept": "image/jpeg"}
    for where in (f"studies/{uids[0]}", f"studies/{uids[0]}/series/{uids[1]}"):
        status, headers, body = get(f"{net.url}/{where}/thumbnail", auth)
        assert (status, headers["Content-Type"]) == (200, "image/jpeg")
        assert max(Image.open(io.BytesIO(body)).size) == 128
    status, _, body = get(f"{net.url}/studies/{uids[0]}/series/{uids[1]}/instances/"
                          f"{uids[2]}/rendered?window=40", auth)  # fmt: skip
    assert status == 400
    assert b"window" in body


def test_access_follows_the_cases_a_person_may_see(net: DicomwebNet) -> None:
    marie_studies = {
        value(s, "StudyInstanceUID") for s in net.client(net.marie_token).search_for_studies()
    }
    # Anne coordinates Marie's group: she sees the group's cases
    anne = {
        value(s, "StudyInstanceUID")
        for s in net.client(dicomweb_token(net.anne)).search_for_studies()
    }
    assert anne == marie_studies
    # a reader of no group on the same node sees nothing, and cannot fetch by UID
    paul = Person(net.cluster, 1, "paul", "reader", "Dr Paul Sans-Groupe")
    paul_client = net.client(dicomweb_token(paul))
    assert paul_client.search_for_studies() == []
    study = sorted(marie_studies)[0]
    with pytest.raises(HTTPError) as hidden:
        paul_client.retrieve_study_metadata(study)
    assert hidden.value.response.status_code == 404
    # Koffi sees his own cases on his own node (the de-identified study he sent)
    koffi = {
        value(s, "StudyInstanceUID")
        for s in net.client(dicomweb_token(net.koffi), 0).search_for_studies()
    }
    assert koffi == marie_studies
    # another sender at Cotonou does not
    awa = Person(net.cluster, 0, "awa", "sender", "Dr Awa Autre")
    assert net.client(dicomweb_token(awa), 0).search_for_studies() == []
    # no credentials, a wrong token, a sender's upload token: 401, with the schemes
    for headers in (
        {},
        {"Authorization": "Bearer tsf_wrong"},
        {"Authorization": f"Bearer {net.marie.token}"},
    ):
        status, answer, _ = get(f"{net.url}/studies", headers)
        assert status == 401
        assert "Bearer" in answer["WWW-Authenticate"]
    # Basic, with the token as the password (as Weasis and OHIF can send it)
    import base64

    basic = base64.b64encode(f"marie:{net.marie_token}".encode()).decode()
    status, _, body = get(f"{net.url}/studies", {"Authorization": f"Basic {basic}"})
    assert status == 200
    assert len(json.loads(body)) == 2


def test_an_expired_token_is_refused(net: DicomwebNet) -> None:
    token = dicomweb_token(net.marie, days=1, label="expiring")
    auth = {"Authorization": f"Bearer {token}"}
    assert get(f"{net.url}/studies", auth)[0] == 200
    with sqlite3.connect(net.cluster.dirs[1] / "node.db") as db:  # a day later
        db.execute("UPDATE api_tokens SET expires_ms = 1 WHERE label = 'expiring'")
    status, _, body = get(f"{net.url}/studies", auth)
    assert status == 401
    assert b"expired" in body


def test_cross_origin_calls_only_from_the_configured_viewer(net: DicomwebNet) -> None:
    preflight = urllib.request.Request(
        f"{net.url}/studies",
        method="OPTIONS",
        headers={
            "Origin": "https://viewer.example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    with urllib.request.urlopen(preflight, timeout=30) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "https://viewer.example.org"
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    auth = {"Authorization": f"Bearer {net.marie_token}"}
    status, headers, _ = get(f"{net.url}/studies", {**auth, "Origin": "https://viewer.example.org"})
    assert (status, headers["Access-Control-Allow-Origin"]) == (200, "https://viewer.example.org")
    status, headers, _ = get(f"{net.url}/studies", {**auth, "Origin": "https://evil.example.com"})
    assert status == 200  # the browser, not the node, withholds the answer from the page
    assert "Access-Control-Allow-Origin" not in headers
    preflight.headers["Origin"] = "https://evil.example.com"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(preflight, timeout=30)
    assert refused.value.code == 403
    refused.value.close()


def test_every_retrieval_is_in_the_audit_log(net: DicomwebNet) -> None:
    client = net.client(net.marie_token)
    first = read(net.stored(net.ct_case)[0])
    client.search_for_series(first.StudyInstanceUID)
    client.retrieve_series_metadata(first.StudyInstanceUID, first.SeriesInstanceUID)
    exported = tsfnode("audit", "export", net.cluster.dirs[1])
    entries = [json.loads(line) for line in exported.stdout.splitlines()]
    mine = [
        e for e in entries if e["case_id"] == net.ct_case and e["action"].startswith("dicomweb")
    ]
    assert {"dicomweb search", "dicomweb retrieve"} <= {e["action"] for e in mine}
    assert tsfnode("audit", "verify", net.cluster.dirs[1]).returncode == 0


def raw(browser: Browser, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with browser.opener.open(browser.base + path, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def test_the_reader_makes_a_token_on_her_tools_page_and_revokes_it(net: DicomwebNet) -> None:
    marie = Browser(net.cluster.url(1))
    marie.sign_in("marie")
    status, _, page = marie.get("/web/tools?lang=en")
    assert status == 200
    assert f"{net.url}" in page  # the exact address, for Weasis and OHIF
    assert "Weasis" in page
    assert "OHIF" in page
    status, _, page = marie.post("/web/tools/tokens", {"label": "Weasis au bureau", "days": "30"})
    assert status == 200
    (token,) = re.findall(r"<code class=\"id\">(tsf_[A-Za-z0-9_-]+)</code>", page)
    assert f'Authorization: "Bearer {token}"' in page  # OHIF's app-config.js, ready to use
    client = net.client(token)
    assert len(client.search_for_studies()) == 2
    status, _, page = marie.get("/web/tools")
    assert token not in page  # shown once only
    row = re.search(r"Weasis au bureau.*?name=\"token\" value=\"(\d+)\"", page, re.DOTALL)
    assert row is not None
    marie.post("/web/tools/tokens/revoke", {"token": row.group(1)})
    with pytest.raises(HTTPError) as refused:
        client.search_for_studies()
    assert refused.value.response.status_code == 401
    assert "révoqué" in marie.get("/web/tools?lang=fr")[2]
    status, _, page = marie.post("/web/tools/tokens", {"label": "x", "days": "0"})
    assert status == 400
    assert "1 à 366 jours" in page
    # a viewer served by the node itself needs no token: the session's cookie is enough
    status, headers, body = raw(marie, "/dicomweb/studies")
    assert (status, headers["Content-Type"]) == (200, JSON)
    assert len(json.loads(body)) == 2


def test_a_case_downloads_as_a_zip_with_a_dicomdir(net: DicomwebNet, tmp_path: Path) -> None:
    marie = Browser(net.cluster.url(1))
    marie.sign_in("marie")
    status, _, page = marie.get(f"/web/cases/{net.ct_case}?lang=en")
    assert f"/web/cases/{net.ct_case}/export.zip" in page
    status, headers, body = raw(marie, f"/web/cases/{net.ct_case}/export.zip")
    assert (status, headers["Content-Type"]) == (200, "application/zip")
    assert "attachment" in headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        archive.extractall(tmp_path)
    dicomdir = tmp_path / "DICOMDIR"
    records = read(dicomdir).DirectoryRecordSequence
    kinds = [r.DirectoryRecordType for r in records]
    assert kinds == ["PATIENT", "STUDY", "SERIES"] + ["IMAGE"] * SLICES
    stored = {read(p).SOPInstanceUID: read(p) for p in net.stored(net.ct_case)}
    files = []
    for record in records[3:]:
        parts = list(record.ReferencedFileID)
        assert all(len(part) <= 8 and part.isupper() for part in parts)  # ISO 9660 names
        files.append(tmp_path.joinpath(*parts))
        exported = read(files[-1])
        assert exported.SOPInstanceUID == record.ReferencedSOPInstanceUIDInFile
        original = stored[exported.SOPInstanceUID]
        assert np.array_equal(exported.pixel_array, original.pixel_array)
        assert exported.PatientName == original.PatientName
    assert len(set(files)) == SLICES
    checked = subprocess.run(["dciodvfy", str(dicomdir)], capture_output=True, text=True)
    assert "BasicDirectory" in checked.stdout + checked.stderr  # dicom3tools knows it
    assert "Error" not in checked.stdout + checked.stderr
    dumped = subprocess.run(["dcmdump", str(dicomdir)], capture_output=True, text=True)
    assert dumped.returncode == 0, dumped.stderr
    assert "DirectoryRecordSequence" in dumped.stdout
    assert dumped.stdout.count("IMAGE") >= SLICES
    dumped = subprocess.run(["dcmdump", str(files[0])], capture_output=True, text=True)
    assert dumped.returncode == 0, dumped.stderr
    assert "PixelData" in dumped.stdout
    assert not list((net.cluster.dirs[1] / "exports").iterdir())  # no copy kept
    # someone else cannot download it
    leo = Person(net.cluster, 1, "leo", "reader", "Dr Léo Sans-Groupe")
    other = Browser(net.cluster.url(1))
    other.sign_in(leo.username)
    assert raw(other, f"/web/cases/{net.ct_case}/export.zip")[0] == 404
    entries = tsfnode("audit", "export", net.cluster.dirs[1]).stdout
    assert any(
        json.loads(e)["action"] == "export zip" and json.loads(e)["case_id"] == net.ct_case
        for e in entries.splitlines()
    )


def test_a_case_downloads_for_a_cd_in_the_general_purpose_profile(
    net: DicomwebNet, tmp_path: Path
) -> None:
    marie = Browser(net.cluster.url(1))
    marie.sign_in("marie")
    marie.get(f"/web/cases/{net.mr_case}?lang=fr")
    assert f"/web/cases/{net.mr_case}/export.zip?profile=cd" in marie.page
    assert "Pour un CD" in marie.page
    stored = {read(p).SOPInstanceUID: read(p) for case in (net.ct_case, net.mr_case)
              for p in net.stored(case)}  # fmt: skip
    for case in (net.ct_case, net.mr_case):  # a CT series; a 10-frame MR, both JPEG-LS
        status, headers, body = raw(marie, f"/web/cases/{case}/export.zip?profile=cd")
        assert (status, headers["Content-Type"]) == (200, "application/zip")
        assert "-cd.zip" in headers["Content-Disposition"]
        folder = tmp_path / case
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            archive.extractall(folder)
        records = read(folder / "DICOMDIR").DirectoryRecordSequence
        files = {folder.joinpath(*r.ReferencedFileID) for r in records if "ReferencedFileID" in r}
        assert {p for p in folder.rglob("*") if p.is_file()} == files | {folder / "DICOMDIR"}
        for path in files:  # PS3.10 8.2: 8 uppercase characters a component, 8 levels
            parts_ = path.relative_to(folder).parts
            assert len(parts_) <= 8
            assert all(re.fullmatch(r"[A-Z0-9_]{1,8}", part) for part in parts_)
            exported = read(path)
            assert exported.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
            original = stored[exported.SOPInstanceUID]
            assert original.file_meta.TransferSyntaxUID == JPEGLSLossless
            assert np.array_equal(exported.pixel_array, original.pixel_array)
        # dcmtk's dcmgpdir makes a STD-GEN-CD DICOMDIR: it takes every file, strictly
        checked = subprocess.run(
            ["dcmgpdir", "-w", "-I", "-a", "+r", "+id", str(folder), "PT000000"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "E:" not in checked.stdout + checked.stderr
        verified = subprocess.run(
            ["dciodvfy", str(folder / "DICOMDIR")], capture_output=True, text=True, check=False
        )
        assert "Error" not in verified.stdout + verified.stderr
    # as stored (JPEG-LS), dcmgpdir refuses the same files: the profile is what changed
    status, _, body = raw(marie, f"/web/cases/{net.ct_case}/export.zip")
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        archive.extractall(tmp_path / "as-stored")
    refused = subprocess.run(
        ["dcmgpdir", "-w", "-I", "-a", "+r", "+id", str(tmp_path / "as-stored"), "PT000000"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    # a profile the node does not make: said so, nothing made
    status, _, page = marie.get(f"/web/cases/{net.ct_case}/export.zip?profile=dvd&lang=en")
    assert status == 400
    assert "profile=cd" in page


def _send(browser: Browser, case: str, label: str) -> None:
    browser.get(f"/web/cases/{case}?lang=en")
    found = re.search(rf'<option value="(\d+)">{re.escape(label)} ', browser.page)
    assert found is not None, "the destination is offered on the case page"
    status, url, _ = browser.post(f"/web/cases/{case}/send", {"destination": found.group(1)})
    assert status == 200
    assert "/web/tools" in url


def _add(browser: Browser, label: str, port: int, ae: str = "HOROS") -> tuple[int, str]:
    browser.get("/web/tools?lang=en")
    fields = {"label": label, "ae_title": ae, "host": "127.0.0.1", "port": str(port)}
    status, _, page = browser.post("/web/tools/destinations", {**fields, "calling_ae": "TSFNODE"})
    return status, page


def _sending_state(browser: Browser, label: str) -> str:
    browser.get("/web/tools?lang=en")
    row = re.search(rf'<tr class="send-(\w+)"[^>]*>(?:(?!</tr>).)*{re.escape(label)}', browser.page)
    return row.group(1) if row else ""


def test_a_case_is_sent_by_c_store_to_the_readers_workstation(
    net: DicomwebNet, storescp: Callable[..., tuple[int, Path]]
) -> None:
    marie = Browser(net.cluster.url(1))
    marie.sign_in("marie")
    stored = {read(p).SOPInstanceUID: read(p) for p in net.stored(net.ct_case)}
    # a workstation that takes only uncompressed images (storescp's default)
    port, out = storescp()
    status, page = _add(marie, "Horos (uncompressed)", port)
    assert status == 200, page
    _send(marie, net.ct_case, "Horos (uncompressed)")
    wait_for("the sending done", lambda: _sending_state(marie, "Horos (uncompressed)") == "done")
    received = [read(p) for p in sorted(out.iterdir())]
    assert {d.SOPInstanceUID for d in received} == set(stored)
    for ds in received:
        assert not ds.file_meta.TransferSyntaxUID.is_compressed
        assert np.array_equal(ds.pixel_array, stored[ds.SOPInstanceUID].pixel_array)
    # one that accepts JPEG-LS gets the stored codestream as it is
    port, out = storescp("+xa")
    _add(marie, "Horos (all)", port)
    _send(marie, net.mr_case, "Horos (all)")
    wait_for("the second sending done", lambda: _sending_state(marie, "Horos (all)") == "done")
    ((received_path,),) = [list(out.iterdir())]
    (mr_path,) = net.stored(net.mr_case)
    assert read(received_path).file_meta.TransferSyntaxUID == JPEGLSLossless
    assert read(received_path).PixelData == read(mr_path).PixelData
    assert "6/6" in marie.get("/web/tools")[2]


def test_a_sending_that_cannot_be_made_says_why(net: DicomwebNet) -> None:
    marie = Browser(net.cluster.url(1))
    marie.sign_in("marie")
    status, page = _add(marie, "Trop long", 11112, ae="A-TITLE-FAR-TOO-LONG")
    assert status == 400
    assert "AE title" in page
    assert "16" in page
    status, _ = _add(marie, "Nobody listens", free_port())
    assert status == 200
    _send(marie, net.ct_case, "Nobody listens")
    wait_for("the failure shown", lambda: _sending_state(marie, "Nobody listens") == "failed")
    assert "did not accept the association" in marie.page


def test_a_per_image_failure_of_a_sending_is_named_in_french_and_english(
    net: DicomwebNet,
) -> None:
    from pynetdicom import AE, evt

    stored = read(net.stored(net.mr_case)[0])
    workstation = AE(ae_title="PACS")
    workstation.add_supported_context(stored.SOPClassUID, [ExplicitVRLittleEndian])
    server = workstation.start_server(
        ("127.0.0.1", 0),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, lambda event: 0xA700)],  # out of resources
    )
    try:
        marie = Browser(net.cluster.url(1))
        marie.sign_in("marie")
        status, page = _add(marie, "PACS plein", int(server.server_address[1]), ae="PACS")
        assert status == 200, page
        _send(marie, net.mr_case, "PACS plein")
        wait_for("the failure shown", lambda: _sending_state(marie, "PACS plein") == "failed")
    finally:
        server.shutdown()
    english = failures_shown(marie.get("/web/tools?lang=en")[2])
    assert "1 image of 1 did not arrive" in english
    kind = stored.SOPClassUID.name  # Enhanced MR Image Storage
    assert f"image 1 ({kind}): refused by the workstation (status 0xA700)" in english
    french = failures_shown(marie.get("/web/tools?lang=fr")[2])
    assert "1 image sur 1 n'est pas arrivée" in french
    assert f"image 1 ({kind}) : refusée par la station (statut 0xA700)" in french


def failures_shown(page: str) -> str:
    """The row of the tools page's newest failed sending, as text."""
    row = re.search(r'<tr class="send-failed".*?</tr>', page, re.DOTALL)
    assert row is not None, page[-2000:]
    return html.unescape(re.sub(r"<[^>]+>", " ", row.group(0)))


def test_every_dicomweb_answer_names_the_allowed_origin(net: DicomwebNet) -> None:
    """OHIF served from another origin reads every answer: searches, streamed
    retrievals (studies, series, instances, frames, bulk data), metadata, rendered
    images, thumbnails, errors and preflights all carry Access-Control-Allow-Origin."""
    first = read(net.stored(net.ct_case)[0])
    study, series, sop = first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID
    instance = f"studies/{study}/series/{series}/instances/{sop}"
    dicom = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    frames = 'multipart/related; type="application/octet-stream"'
    routes = {
        "studies": JSON,
        "series": JSON,
        "instances": JSON,
        f"studies/{study}/series": JSON,
        f"studies/{study}/series/{series}/instances": JSON,
        f"studies/{study}": dicom,
        f"studies/{study}/series/{series}": dicom,
        instance: dicom,
        f"studies/{study}/metadata": JSON,
        f"{instance}/metadata": JSON,
        f"{instance}/frames/1": frames,
        f"{instance}/bulkdata/7FE00010": frames,
        f"{instance}/rendered": "image/jpeg",
        f"{instance}/frames/1/rendered": "image/png",
        f"studies/{study}/thumbnail": "image/jpeg",
        f"{instance}/thumbnail": "image/jpeg",
    }
    for route, accept in routes.items():
        headers = {"Authorization": f"Bearer {net.marie_token}", "Accept": accept}
        status, answered, _ = get(f"{net.url}/{route}", {**headers, "Origin": VIEWER})
        assert status == 200, route
        assert answered.get("Access-Control-Allow-Origin") == VIEWER, route
        assert "Content-Type" in answered["Access-Control-Expose-Headers"], route
        status, answered, _ = get(
            f"{net.url}/{route}", {**headers, "Origin": "https://evil.example.com"}
        )
        assert status == 200, route
        assert "Access-Control-Allow-Origin" not in answered, route
    # errors too: the viewer can read why
    for url, headers, expected in (
        (f"{net.url}/{instance}/frames/99", {"Authorization": f"Bearer {net.marie_token}"}, 404),
        (f"{net.url}/studies", {}, 401),
        (
            f"{net.url}/{instance}",
            {"Authorization": f"Bearer {net.marie_token}", "Accept": "image/gif"},
            406,
        ),
    ):
        status, answered, _ = get(url, {**headers, "Origin": VIEWER})
        assert status == expected, url
        assert answered.get("Access-Control-Allow-Origin") == VIEWER, url
    preflight = urllib.request.Request(
        f"{net.url}/{instance}/frames/1",
        method="OPTIONS",
        headers={"Origin": VIEWER, "Access-Control-Request-Method": "GET"},
    )
    with urllib.request.urlopen(preflight, timeout=30) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == VIEWER


def test_searches_answer_at_the_level_asked_as_the_standard_says(net: DicomwebNet) -> None:
    client = net.client(net.marie_token)
    auth = {"Authorization": f"Bearer {net.marie_token}"}
    # a study's answer is the study's, not one of its instances'
    for study in client.search_for_studies(fields=["all"]):
        assert "00080060" not in study  # Modality: a series' attribute
        assert "00080018" not in study  # SOP Instance UID
        assert "0020000E" not in study  # Series Instance UID
        assert value(study, "ModalitiesInStudy") in ("CT", "MR")
    # across studies, series and instances carry their study's attributes
    ct_file = read(net.stored(net.ct_case)[0])
    for found in (client.search_for_series(), client.search_for_instances()):
        assert len(found) >= 2
        for record in found:
            assert value(record, "StudyInstanceUID")
            assert {"00080020", "00100010", "00100020"} <= set(record)  # date, patient
        ct = [r for r in found if value(r, "StudyInstanceUID") == ct_file.StudyInstanceUID]
        assert value(ct[0], "StudyDate") == (ct_file.StudyDate or None)
        assert value(ct[0], "PatientID") == ct_file.PatientID
        assert value(ct[0], "Modality") == "CT"
    # within a study, a series does not repeat the study
    (series,) = client.search_for_series(study_instance_uid=ct_file.StudyInstanceUID)
    assert "00100010" not in series
    # * alone matches everything, empty values too (PS3.4 C.2.2.2.4)
    assert str(ct_file.get("ReferringPhysicianName", "")) == ""  # emptied by the intake
    everything = client.search_for_studies(search_filters={"ReferringPhysicianName": "*"})
    assert len(everything) == 2
    assert len(client.search_for_series(search_filters={"SeriesDescription": "*"})) >= 2
    # a media type the node cannot answer in: 406, not JSON
    for accept in (
        "application/xml",
        "text/html",
        'multipart/related; type="application/dicom+xml"',
    ):
        status, _, body = get(f"{net.url}/studies", {**auth, "Accept": accept})
        assert status == 406, accept
        assert b"application/dicom+json" in body
    status, headers, _ = get(f"{net.url}/studies", {**auth, "Accept": "application/json"})
    assert (status, headers["Content-Type"]) == (200, "application/json")
    # a value that is not a date: 400, naming the key and what it should be
    status, _, body = get(f"{net.url}/studies?StudyDate=notadate", auth)
    assert status == 400
    assert b"StudyDate" in body
    assert b"YYYYMMDD" in body
    status, _, _ = get(f"{net.url}/studies?StudyDate=20240101-20241231", auth)
    assert status == 200


def test_a_study_of_ct_and_mr_is_found_by_either_modality(net: DicomwebNet, tmp_path: Path) -> None:
    """(Last in the module: it adds a third study to Marie's.)"""
    folder = tmp_path / "ct_and_mr"
    folder.mkdir()
    slices = ct_series(folder, 2)
    ct = read(slices[0])
    mr = read(Path(get_testdata_file("MR_small.dcm")))
    mr.StudyInstanceUID = ct.StudyInstanceUID
    mr.PatientName, mr.PatientID = ct.PatientName, ct.PatientID
    mr.save_as(folder / "mr.dcm", enforce_file_format=True)
    case = net.submit(folder, {"routing": "pair", "target": net.pair})
    wait_for("the case at Marie's node", lambda: net.marie.state(case) == "assigned")
    client = net.client(net.marie_token)
    (mixed,) = [
        s for s in client.search_for_studies() if value(s, "NumberOfStudyRelatedSeries") == 2
    ]
    uid = value(mixed, "StudyInstanceUID")
    assert value(mixed, "ModalitiesInStudy") == ["CT", "MR"]
    for modality in ("CT", "MR", "MR,US"):
        found = client.search_for_studies(search_filters={"Modality": modality})
        assert uid in [value(s, "StudyInstanceUID") for s in found], modality
    assert client.search_for_studies(search_filters={"Modality": "US"}) == []
    assert [value(s, "StudyInstanceUID") for s in client.search_for_studies(
        search_filters={"ModalitiesInStudy": "MR"})].count(uid) == 1  # fmt: skip


def test_each_study_bundle_is_listed_as_it_is_opened(net: DicomwebNet) -> None:
    """Marie's node lists each bundle as it opens it (received/BUNDLE/listing.json: the
    viewer's facts, and listing-dicomweb.json beside it: DICOMweb's records, from one
    read of each header), so neither
    reads the headers again; the viewer and DICOMweb keep their own case listings
    elsewhere (DIR/viewer, DIR/dicomweb), never there."""
    root = net.cluster.dirs[1]
    for case, images in ((net.ct_case, SLICES), (net.mr_case, 1)):
        (folder,) = net.marie.case(case)["images"]
        records = json.loads((root / folder / "listing-dicomweb.json").read_text())["instances"]
        assert len(records) == images == len(list((root / folder).rglob("*.dcm")))
        assert all((root / folder / r["path"]).is_file() for r in records)
        facts = json.loads((root / folder / "listing.json").read_text())["instances"]
        assert sum(f["frames"] for f in facts) == (SLICES if case == net.ct_case else 10)


def test_the_sender_node_encodes_a_study_on_every_core(net: DicomwebNet) -> None:
    """Koffi's node (`python -m tsfnode run`) encoded the CT's slices in worker
    processes, one per core, without falling back to one process (its spawned workers
    once ran the node's command again, failed, and the encoding went on in one). The
    set-up deleted the encodings the CLI's import had prepared, so the node made them."""
    koffis_node = net.cluster.nodes[0]
    assert koffis_node is not None
    logged = [json.loads(line) for line in koffis_node.logs().splitlines()]
    events = [e for e in logged if e["event"].startswith(("study encoded", "transport encoding"))]
    if (os.cpu_count() or 1) > 1:  # the CT's 6 slices (the MR's one file is encoded alone)
        (encoded,) = [e for e in events if e["event"] == "study encoded for the journey"]
        assert (encoded["files"], encoded["processes"]) == (SLICES, os.cpu_count())
    assert not [e for e in events if e["event"] == "transport encoding goes on in one process"]
