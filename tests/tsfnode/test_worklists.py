"""What a doctor and a radiologist see of their cases in the browser (issue 22): the
stack opens head first, lists sort and filter without JavaScript, an urgent case is due
sooner and says so, times read in each person's time zone.

On CHU Cotonou's node in process (``cotonou`` of test_case_access: Koffi and Ines send,
Anne coordinates the paediatric group), with real DICOM files."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.harness.data import PYDICOM_FILES, read_dicom
from tests.harness.people import FORM
from tests.tsfnode.test_case_access import Cotonou, _node_input
from tests.tsfnode.test_case_access import cotonou as cotonou  # the fixture

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# A real CT of pydicom's (Routine Brain): its instance numbers run from the feet up
# (18 at z -99.5 mm, then 180, 181, 182 up to z 105.5 mm).
FEET_FIRST = PYDICOM_FILES / "dicomdirtests" / "77654033" / "CT2"


def _feet_first_copy(folder: Path) -> Path:
    folder.mkdir()
    for path in sorted(FEET_FIRST.iterdir()):
        shutil.copy(path, folder / f"{path.name}.dcm")
    return folder


async def test_a_ct_stack_opens_head_first_whatever_its_instance_numbers(
    cotonou: Cotonou, tmp_path: Path
) -> None:
    source = await asyncio.to_thread(_feet_first_copy, tmp_path / "ct2")
    heights = {
        int(ds.InstanceNumber): float(ds.ImagePositionPatient[2])
        for ds in [read_dicom(p, stop_before_pixels=True) for p in sorted(source.iterdir())]
    }
    assert sorted(heights, key=heights.__getitem__) == [18, 180, 181, 182]  # feet first
    study = await asyncio.to_thread(_node_input, cotonou.node_dir, source)
    body = {"study_uid": study, "routing": "pair", "target": cotonou.pair, "form": FORM}
    status, made = await cotonou.api("koffi", "POST", "/cases", body)
    assert status == 201, made
    status, listed = await cotonou.web("koffi", "GET", f"/web/cases/{made['case_id']}/series")
    assert status == 200
    (series,) = json.loads(listed)
    shown = [f["position"] for f in series["frames"]]
    # The first image is the most cranial (+z, superior, in the patient system), then down.
    assert shown == [105.52, 104.27, 103.02, -99.48]
