"""C-MOVE of a study that needs more presentation contexts than one association holds
(128, PS3.8 9.3.2.2): every instance reaches the workstation (dcmtk's storescp, moved
to by dcmtk's movescu), in several associations, each in its stored transfer syntax.

The study is made from a real CT slice (pydicom's CT_small.dcm) stored as 34 image
storage SOP classes, each in three transfer syntaxes (uncompressed, which the sender's
node compresses to JPEG-LS, RLE and JPEG 2000 lossless): 34 x 4 = 136 contexts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid
from pynetdicom import StoragePresentationContexts

from tests.harness.data import read_dicom as read
from tests.harness.waiting import wait_for
from tests.tsfnode.test_dicom_qr import QueryRetrieveNet

pytestmark = pytest.mark.slow
CLASSES = 34
SYNTAXES = (None, RLELossless, JPEG2000Lossless)  # None: as the CT is, native


def image_classes(count: int) -> list[str]:
    """Image storage SOP classes every DICOM toolkit here knows (pynetdicom's usual
    storage contexts), but those a sender's node asks a person to review (ultrasound,
    photographs, captures)."""
    skip = ("Ultrasound", "Secondary", "Photograph", "Video", "Endoscop", "Microscop")
    found = [
        str(c.abstract_syntax)
        for c in StoragePresentationContexts
        if "Image Storage" in str(c.abstract_syntax.name)
        and not any(word in str(c.abstract_syntax.name) for word in skip)
    ]
    assert len(found) >= count
    return found[:count]


def many_classes_study(folder: Path) -> list[Path]:
    template = read(Path(str(get_testdata_file("CT_small.dcm"))))
    study = generate_uid()
    paths = []
    for n, sop_class in enumerate(image_classes(CLASSES)):
        for syntax in SYNTAXES:
            ds = read(Path(str(get_testdata_file("CT_small.dcm"))))
            ds.StudyInstanceUID = study
            ds.SeriesInstanceUID = generate_uid()
            ds.SeriesNumber = len(paths) + 1
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.InstanceNumber = n + 1
            if syntax is not None:
                ds.compress(syntax, generate_instance_uid=False)
            path = folder / f"image{len(paths):04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    assert template.Modality == "CT"
    return paths


class ManyClassesNet(QueryRetrieveNet):
    def __init__(self, base: Path) -> None:
        super().__init__(base)
        try:
            folder = base / "many"
            folder.mkdir()
            self.files = many_classes_study(folder)
            self.many = self.submit(folder, {"routing": "pair", "target": self.pair}, 120)
            wait_for(
                "the study of many classes at Marie's node",
                lambda: self.marie.state(self.many) == "assigned",
                timeout=180,
            )
            # its UID at Marie's node (de-identification gave it a new one)
            (self.study,) = [
                str(s["0020000D"]["Value"][0])
                for s in self.qido("/studies")
                if s["00201208"]["Value"][0] == len(self.files)
            ]
        except BaseException:
            self.cluster.close()
            raise


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManyClassesNet]:
    with contextlib.closing(ManyClassesNet(tmp_path_factory.mktemp("contexts"))) as network:
        yield network


def test_c_move_of_more_than_128_contexts_sends_every_instance_in_its_syntax(
    net: ManyClassesNet, storescp: Callable[..., tuple[int, Path]]
) -> None:
    port, out = storescp("+xa")  # every transfer syntax: the stored ones are kept
    net.bind("marie", "HOROS", port)
    final = net.move_study(net.study)
    total = CLASSES * len(SYNTAXES)
    assert final["Completed Suboperations"] == str(total), final
    assert final["Failed Suboperations"] == "0"
    received = [read(p) for p in out.iterdir()]
    assert len(received) == total
    got = {(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in received}
    assert {c for c, _ in got} == set(image_classes(CLASSES))
    syntaxes = {s for _, s in got}
    assert {RLELossless, JPEG2000Lossless} <= syntaxes  # sent as stored, not decompressed
    original = read(Path(str(get_testdata_file("CT_small.dcm")))).pixel_array
    assert all((d.pixel_array == original).all() for d in received)
    details = [(e["action"], e["detail"]) for e in net.audit() if e["case_id"] == net.many]
    assert (
        "dicom retrieve",
        f"C-MOVE to HOROS by MARIEWS: {total} instances (0 decompressed)",
    ) in (details)
