"""Sending a case's images to a workstation by C-STORE (images/export.py ``c_store``),
to dcmtk's storescp (as Horos, OsiriX or a PACS would take them) and to a pynetdicom
workstation that refuses one image, over loopback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from tests.harness.data import read_dicom as read
from tsfnode.images.export import (
    MAX_CONTEXTS,
    NATIVE,
    Destination,
    ExportError,
    Progress,
    c_store,
    plan_contexts,
)

# One MR study, its images stored in four transfer syntaxes, and a CT image beside them.
MIXED = {
    "MR_small_jpeg_ls_lossless.dcm": JPEGLSLossless,
    "MR_small_jp2klossless.dcm": JPEG2000Lossless,
    "MR_small_RLE.dcm": RLELossless,
    "MR_small.dcm": ExplicitVRLittleEndian,
    "CT_small.dcm": ExplicitVRLittleEndian,
}


@pytest.fixture
def mixed_study(tmp_path: Path) -> list[Path]:
    """pydicom's test files as one study: the MR copies get their own SOP Instance UID
    (they share one), their pixel data untouched."""
    study = generate_uid()
    out = []
    for name, syntax in MIXED.items():
        ds = read(Path(get_testdata_file(name)))
        assert ds.file_meta.TransferSyntaxUID == syntax
        ds.StudyInstanceUID = study
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        path = tmp_path / "study" / name
        path.parent.mkdir(exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def horos(port: int) -> Destination:
    return Destination("Horos", "HOROS", "127.0.0.1", port, "TSFNODE")


def assert_every_image_arrived(files: list[Path], out: Path) -> list[pydicom.Dataset]:
    sent = {read(p).SOPInstanceUID: read(p) for p in files}
    arrived = [read(p) for p in sorted(out.iterdir())]
    assert sorted(d.SOPInstanceUID for d in arrived) == sorted(sent)
    for ds in arrived:
        assert np.array_equal(ds.pixel_array, sent[ds.SOPInstanceUID].pixel_array)
    return arrived


def test_a_study_of_mixed_syntaxes_arrives_whole_where_compressed_is_accepted(
    mixed_study: list[Path], storescp: Callable[..., tuple[int, Path]]
) -> None:
    port, out = storescp("+xa")  # accepts every syntax dcmtk knows
    progress = Progress(total=len(mixed_study))
    c_store(mixed_study, horos(port), progress)
    arrived = assert_every_image_arrived(mixed_study, out)
    assert (progress.sent, progress.failed) == (len(MIXED), 0)
    # each image went as it is stored: nothing decompressed on the way
    syntaxes = sorted(str(d.file_meta.TransferSyntaxUID) for d in arrived)
    assert syntaxes == sorted(MIXED.values())
    assert {r.outcome for r in progress.results} == {"sent"}


def test_a_study_of_mixed_syntaxes_arrives_decompressed_where_only_uncompressed_is(
    mixed_study: list[Path], storescp: Callable[..., tuple[int, Path]]
) -> None:
    port, out = storescp()  # storescp's default: uncompressed syntaxes only
    progress = Progress(total=len(mixed_study))
    c_store(mixed_study, horos(port), progress)
    arrived = assert_every_image_arrived(mixed_study, out)
    assert all(not d.file_meta.TransferSyntaxUID.is_compressed for d in arrived)
    outcomes = sorted(r.outcome for r in progress.results)
    assert outcomes == ["decompressed"] * 3 + ["sent"] * 2


def test_an_image_the_workstation_refuses_is_named_and_the_others_still_go(
    mixed_study: list[Path],
) -> None:
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import CTImageStorage, MRImageStorage  # type: ignore[attr-defined]

    refused = read(mixed_study[1]).SOPInstanceUID  # the JPEG 2000 image
    taken: list[str] = []

    def on_store(event: evt.Event) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        if uid == refused:
            return 0xA700  # Refused: out of resources
        taken.append(uid)
        return 0x0000

    workstation = AE(ae_title="HOROS")
    for sop_class in (MRImageStorage, CTImageStorage):
        workstation.add_supported_context(sop_class, list(NATIVE))
    server = workstation.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    try:
        progress = Progress(total=len(mixed_study))
        with pytest.raises(ExportError, match="did not take 1 of 5 images"):
            c_store(mixed_study, horos(int(server.server_address[1])), progress)
    finally:
        server.shutdown()
    assert len(taken) == 4  # the images after the refused one went too
    (failure,) = progress.failures
    assert (failure.number, failure.outcome, failure.detail) == (2, "refused", "0xA700")
    assert failure.sop_class == MRImageStorage


def test_presentation_contexts_fit_in_associations_of_128() -> None:
    classes = [f"1.2.840.10008.5.1.4.1.1.{n}" for n in range(100)]
    syntaxes = [JPEGLSLossless, JPEG2000Lossless, RLELossless, ExplicitVRLittleEndian]
    plans = plan_contexts((c, s) for c in classes for s in syntaxes)
    assert all(len(plan) <= MAX_CONTEXTS for plan in plans)
    proposed = [context for plan in plans for context in plan]
    # each class once in one association: its three compressed syntaxes, then the fallback
    assert len(proposed) == 4 * len(classes)
    for sop_class in classes:
        (where,) = [n for n, plan in enumerate(plans) if any(c == sop_class for c, _ in plan)]
        mine = [s for c, s in plans[where] if c == sop_class]
        assert mine[-1] == NATIVE
        assert sorted(s for (s,) in mine[:-1]) == sorted(syntaxes[:3])
