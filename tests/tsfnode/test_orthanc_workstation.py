"""Orthanc as the reader's workstation (issue 23): Marie binds Orthanc's AE title at
127.0.0.1 to her account, sends back into her case by C-STORE from Orthanc a key object
selection made from the case's study, and retrieves the study by C-MOVE into an Orthanc
that accepts only Explicit VR Little Endian: the node's fallback sends the stored
JPEG-LS images decompressed, pixel for pixel. (Orthanc 1.10 has no C-GET SCU: the C-GET
SCP is covered with dcmtk's getscu in test_dicom_qr.py.)

The network is test_reader_images's: Koffi sends a CT of six real slices to Marie,
whose node (Erasme) has its DICOM port open."""

from __future__ import annotations

import contextlib
import io
import json
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless

from tests.harness.pacs import orthanc_get, orthanc_post, orthanc_running
from tests.harness.studies import part10
from tests.harness.waiting import wait_for
from tests.tsfnode.test_dicom_qr import NODE_AE, SLICES
from tests.tsfnode.test_dicomweb import get, parts
from tests.tsfnode.test_reader_images import KOS, ReaderImagesNet

pytestmark = pytest.mark.slow
WORKSTATION = "ORTHANCWS"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReaderImagesNet]:
    with contextlib.closing(ReaderImagesNet(tmp_path_factory.mktemp("orthanc-ws"))) as found:
        yield found


def key_objects(net: ReaderImagesNet) -> Dataset:
    """A key object selection Marie's workstation made from the case's study."""
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator = "113000", "DCM"
    concept.CodeMeaning = "Of Interest"
    return net.made(KOS, "KO", ConceptNameCodeSequence=[concept], ValueType="CONTAINER")


def data_set(part10_bytes: bytes) -> bytes:
    """A DICOM file's data set, after its preamble and file meta group (PS3.10 7.1: the
    group length, explicit VR, at byte 140)."""
    assert part10_bytes[128:132] == b"DICM"
    assert part10_bytes[132:138] == b"\x02\x00\x00\x00UL"
    return part10_bytes[144 + int.from_bytes(part10_bytes[140:144], "little") :]


def test_orthanc_bound_to_marie_stores_a_kos_into_her_case_and_an_unbound_one_cannot(
    net: ReaderImagesNet, tmp_path: Path
) -> None:
    node = {"tsfnode": [NODE_AE, net.host, net.port]}
    with orthanc_running(tmp_path / "orthanc", WORKSTATION, node) as (http_port, dicom_port):
        net.bind("marie", WORKSTATION, dicom_port)
        made = part10(key_objects(net))
        uploaded = orthanc_post(http_port, "/instances", made)
        orthanc_post(
            http_port, "/modalities/tsfnode/store",
            {"Resources": [uploaded["ID"]], "Synchronous": True},
        )  # fmt: skip
        sop = str(pydicom.dcmread(io.BytesIO(made)).SOPInstanceUID)
        (image,) = [i for i in net.images(1) if i["sop_uid"] == sop]
        # the data set byte for byte as made (the file meta is each receiver's own)
        held = net.held(1, image["digest"])
        assert data_set(held) == data_set(made)
        assert pydicom.dcmread(io.BytesIO(held)).file_meta.TransferSyntaxUID == (
            ExplicitVRLittleEndian
        )
        (entry,) = [e for e in net.audit() if e["detail"].startswith(f"c-store {WORKSTATION}")]
        assert entry["action"] == "attach reader image"
        assert entry["case_id"] == net.case
        # the same store from an AE title bound to no one: the job fails, nothing kept
        count = len(net.images(1))
        other = orthanc_post(http_port, "/instances", part10(key_objects(net)))
        with pytest.raises(urllib.error.HTTPError) as refused:
            orthanc_post(
                http_port, "/modalities/tsfnode/store",
                {"Resources": [other["ID"]], "Synchronous": True, "LocalAet": "STRANGER"},
            )  # fmt: skip
        # Refused: Not Authorized (PS3.4 Annex GG), as the node answers an unbound caller
        assert "DIMSE status 0x0124" in json.loads(refused.value.read())["Details"]
        assert len(net.images(1)) == count


def test_c_move_into_an_orthanc_taking_only_explicit_little_endian_decompresses(
    net: ReaderImagesNet, tmp_path: Path
) -> None:
    study = net.study()
    node = {"tsfnode": [NODE_AE, net.host, net.port]}
    only_explicit = {"AcceptedTransferSyntaxes": [ExplicitVRLittleEndian]}
    with orthanc_running(tmp_path / "orthanc", WORKSTATION, node, **only_explicit) as (
        http_port,
        dicom_port,
    ):
        net.bind("marie", WORKSTATION, dicom_port)
        orthanc_post(
            http_port, "/modalities/tsfnode/move",
            {"Level": "Study", "Resources": [{"StudyInstanceUID": study}],
             "TargetAet": WORKSTATION},
        )  # fmt: skip
        received = {}
        for instance in orthanc_get(http_port, "/instances"):
            syntax = orthanc_get(http_port, f"/instances/{instance}/metadata?expand")
            assert syntax["TransferSyntax"] == ExplicitVRLittleEndian
            ds = pydicom.dcmread(io.BytesIO(orthanc_get(http_port, f"/instances/{instance}/file")))
            received[str(ds.SOPInstanceUID)] = ds
    assert len(received) == SLICES
    # the images as the node stores them: JPEG-LS, decoded by pydicom
    status, headers, body = get(
        f"{net.url}/studies/{study}",
        {
            **net.dicomweb,
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
        },
    )
    assert status == 200
    stored = [pydicom.dcmread(io.BytesIO(data)) for _, data in parts(headers["Content-Type"], body)]
    assert {str(ds.SOPInstanceUID) for ds in stored} == set(received)
    for ds in stored:
        assert ds.file_meta.TransferSyntaxUID == JPEGLSLossless
        assert np.array_equal(received[str(ds.SOPInstanceUID)].pixel_array, ds.pixel_array)
    moved = f"C-MOVE to {WORKSTATION} by {WORKSTATION}: {SLICES} instances ({SLICES} decompressed)"
    wait_for("the C-MOVE in the case's audit", lambda: moved in {e["detail"] for e in net.audit()})
