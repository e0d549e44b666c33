"""Issue 21, item 1: an upload that says it was de-identified is not believed.

The attack as it was made: a DICOM file with the patient's name, carrying Patient Identity
Removed YES and a De-identification Method naming tsfnode, zipped and sent to
``/api/v1/uploads`` with a sender's token. The node stored it as it came, identity and
hospital UIDs included, and showed the study ready to send."""

from __future__ import annotations

import pydicom

from tests.harness.inprocess import LocalNode
from tests.security.upload_helpers import (
    CT,
    PATIENT,
    api_upload,
    claiming_de_identified,
    dataset,
    dicom_bytes,
    intake_files,
    zipped,
)


async def test_a_file_claiming_to_be_de_identified_is_de_identified_again(
    local_node: LocalNode,
) -> None:
    koffi = await local_node.account("koffi", "sender")
    lying = claiming_de_identified(dataset(CT))
    original = pydicom.dcmread(CT)
    status, answer = await api_upload(
        local_node, koffi.token, zipped({"ct.dcm": dicom_bytes(lying)})
    )
    assert status == 200, answer
    assert answer["count"] == 1
    (stored,) = intake_files(local_node.root)
    data = stored.read_bytes()
    assert PATIENT.encode() not in data
    assert b"CNHU-4711" not in data
    ds = pydicom.dcmread(stored)
    assert str(ds.PatientName).startswith("TSF^")
    assert ds.PatientIdentityRemoved == "YES"
    # The hospital's UIDs are gone too, and the study is named by the node's own UID.
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert str(ds[keyword].value) != str(original[keyword].value)
        assert str(ds[keyword].value).startswith("2.25.")
        assert str(original[keyword].value).encode() not in data
    assert stored.parent.parent.name == str(ds.StudyInstanceUID)
    assert str(original.StudyInstanceUID) not in answer["studies"]
