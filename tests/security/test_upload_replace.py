"""Issue 21, item 1: one upload never replaces a file it did not create.

The attack as it was made: a sender uploaded an image carrying the UIDs of another
sender's image (the hospital's original UIDs, which give the same de-identified UIDs; or
the de-identified UIDs themselves, with the claim to be de-identified already), with other
pixels. The node wrote it over the other sender's file, and the reader's viewer then
showed the tampered frame."""

from __future__ import annotations

import pydicom

from tests.harness.inprocess import LocalNode
from tests.security.upload_helpers import (
    CT,
    api_upload,
    claiming_de_identified,
    dataset,
    dicom_bytes,
    intake_files,
    web_batch,
    web_sender,
    zipped,
)


def tampered(ds: pydicom.Dataset) -> bytes:
    pixels = bytearray(ds.PixelData)
    pixels[: len(pixels) // 2] = b"\xff" * (len(pixels) // 2)  # half the frame white
    ds.PixelData = bytes(pixels)
    return dicom_bytes(ds)


async def test_an_upload_never_replaces_another_senders_image(local_node: LocalNode) -> None:
    await local_node.account("koffi", "sender")
    ines = await local_node.account("ines", "sender")
    browser, csrf = await web_sender(local_node, "koffi")
    status, found = await web_batch(browser, csrf, {"ct.dcm": CT.read_bytes()})
    assert status == 200, found
    (study,) = found["studies"]
    (koffis,) = intake_files(local_node.root)
    before = koffis.read_bytes()
    stored = pydicom.dcmread(koffis)

    # Ines sends the same image, its hospital UIDs kept, other pixels.
    same_uids = tampered(dataset(CT))
    status, answer = await api_upload(local_node, ines.token, zipped({"a.dcm": same_uids}))
    assert status == 200, answer
    assert answer["count"] == 1
    assert study["study_uid"] not in answer["studies"]  # a study of her own

    # Then with Koffi's de-identified UIDs, saying it is de-identified already.
    copied = claiming_de_identified(
        dataset(
            CT,
            StudyInstanceUID=str(stored.StudyInstanceUID),
            SeriesInstanceUID=str(stored.SeriesInstanceUID),
            SOPInstanceUID=str(stored.SOPInstanceUID),
        )
    )
    status, answer = await api_upload(local_node, ines.token, zipped({"b.dcm": tampered(copied)}))
    assert status == 200, answer
    assert study["study_uid"] not in answer["studies"]

    assert koffis.read_bytes() == before  # the reader will see Koffi's own frame
    assert sorted(p.name for p in koffis.parent.parent.rglob("*.dcm")) == [koffis.name]

    # Koffi himself cannot replace it by a later upload either (the first copy is kept,
    # and he is told so); the same file again is harmless (unchanged).
    status, again = await web_batch(browser, csrf, {"ct.dcm": tampered(dataset(CT))})
    assert status == 200, again
    assert [s["study_uid"] for s in again["studies"]] == [study["study_uid"]]
    (refusal,) = again["rejected"]
    assert "already in the study" in refusal["reason"]
    assert koffis.read_bytes() == before
    status, same = await web_batch(browser, csrf, {"ct.dcm": CT.read_bytes()})
    assert status == 200, same
    assert [s["study_uid"] for s in same["studies"]] == [study["study_uid"]]
    assert koffis.read_bytes() == before
