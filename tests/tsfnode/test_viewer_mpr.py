"""The viewer's multiplanar reformats (issue 23), on one node in process (the CHU Cotonou
of test_case_access.py): a real CT slice made into a series (tests.harness.studies), taken
in by the node, its case opened by its sender. The coronal and sagittal planes the node
renders are checked against the reformat numpy computes from the same files read with
pydicom; a series that is not a volume is refused, saying why, in French and English;
another person's case is not there; a volume larger than the node's bound is refused.
"""

from __future__ import annotations

import asyncio
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from tests.harness.people import FORM
from tests.harness.studies import ct_series
from tests.tsfnode.test_case_access import NOBODYS_CASE, Cotonou, _node_input, cotonou
from tsfnode.images.mpr import MIN_SLICES, TooLarge, Volumes
from tsfnode.images.render import Renderer

__all__ = ["cotonou"]  # the fixture of test_case_access.py, shared

SLICES = 24
SLICE_MM = 2.5  # thicker than a pixel (0.48 mm): the reformat is stretched 5x


def _series(folder: Path, slices: int = SLICES, gap: float = SLICE_MM) -> list[Path]:
    """A CT series of real pixels, ``gap`` mm apart, its instance numbers in no order
    (the node must sort by position along the normal, not by instance number)."""
    folder.mkdir()
    files = ct_series(folder, slices)
    order = np.random.default_rng(23).permutation(slices)
    for i, path in enumerate(files):
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + i * (1.0 - gap)]  # i x gap below the first
        ds.InstanceNumber = int(order[i]) + 1
        ds.save_as(path)
    return files


async def _case(node: Cotonou, folder: Path) -> tuple[str, str]:
    """The study in ``folder`` taken in by the node and sent by Koffi to his pair: the
    case's id and the study's UID."""
    study = await asyncio.to_thread(_node_input, node.node_dir, folder)
    body = {"study_uid": study, "routing": "pair", "target": node.pair, "form": FORM}
    status, made = await node.api("koffi", "POST", "/cases", body)
    assert status == 201, made
    return made["case_id"], study


def _volume_from_files(folder: Path) -> tuple[np.ndarray, float, tuple[float, float]]:
    """The node's own copies read with pydicom, stacked most cranial first (the height of
    Image Position (Patient), this series being axial), in Hounsfield units: the volume,
    the slice spacing and the pixel spacing (row, column)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read = [pydicom.dcmread(p) for p in sorted(folder.rglob("*.dcm"))]
    read.sort(key=lambda ds: -float(ds.ImagePositionPatient[2]))
    heights = [float(ds.ImagePositionPatient[2]) for ds in read]
    volume = np.stack(
        [ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in read]
    )
    spacing = float(read[0].PixelSpacing[0]), float(read[0].PixelSpacing[1])
    return volume, float(np.mean(-np.diff(heights))), spacing


def _reformat(plane: np.ndarray, height: int) -> np.ndarray:
    """``plane`` (slices x width) stretched to ``height`` rows by linear interpolation
    between pixel centres, column by column (np.interp)."""
    n = plane.shape[0]
    where = np.clip((np.arange(height) + 0.5) * n / height - 0.5, 0, n - 1)
    return np.stack([np.interp(where, np.arange(n), plane[:, c]) for c in range(plane.shape[1])], 1)


def _windowed(values: np.ndarray, centre: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (linear), to 0..255."""
    out = ((values - (centre - 0.5)) / (width - 1) + 0.5) * 255
    return np.clip(np.rint(out), 0, 255)


async def _png(node: Cotonou, who: str, path: str) -> np.ndarray:
    status, body = await node.web(who, "GET", path)
    assert status == 200, (path, body[:200])
    image = Image.open(io.BytesIO(body))
    assert image.format == "PNG"
    return np.asarray(image, dtype=np.int16)


async def test_coronal_and_sagittal_planes_are_numpys_reformat_of_the_same_slices(
    cotonou: Cotonou, tmp_path: Path
) -> None:
    node = cotonou
    _series(tmp_path / "ct")
    case, study = await _case(node, tmp_path / "ct")
    status, listed = await node.web("koffi", "GET", f"/web/cases/{case}/series")
    assert status == 200
    (series,) = json.loads(listed)
    status, found = await node.web("koffi", "GET", f"/web/cases/{case}/series/0/mpr")
    assert status == 200, found
    geometry = json.loads(found)
    volume, gap, (row_mm, column_mm) = _volume_from_files(node.node_dir.intake / study)
    slices, rows, columns = volume.shape
    assert (slices, gap) == (SLICES, pytest.approx(SLICE_MM))
    # Square pixels: a plane is as high as the slices reach, in pixels of its width.
    coronal_height = round(slices * gap / column_mm)
    sagittal_height = round(slices * gap / row_mm)
    assert coronal_height > 4 * slices
    assert geometry["planes"]["coronal"] == {
        "count": rows, "width": columns, "height": coronal_height,
        "markers": {"left": "R", "right": "L", "top": "H", "bottom": "F"},
    }  # fmt: skip
    assert geometry["planes"]["sagittal"] == {
        "count": columns, "width": rows, "height": sagittal_height,
        "markers": {"left": "A", "right": "P", "top": "H", "bottom": "F"},
    }  # fmt: skip
    assert geometry["positions"] == sorted(geometry["positions"], reverse=True)
    # The slices as the node lists them are in the volume's order (head first).
    assert [series["frames"][f]["position"] for f in geometry["frames"]] == geometry["positions"]
    base = f"/web/cases/{case}/series/0/mpr"
    for centre, width, query in ((40.0, 400.0, "c=40&w=400"), (-600.0, 1500.0, "window=lung")):
        for row in (150, 300):
            shown = await _png(node, "koffi", f"{base}/coronal/{row}.png?{query}")
            expected = _windowed(_reformat(volume[:, row, :], coronal_height), centre, width)
            assert shown.shape == (coronal_height, columns)
            assert np.abs(shown - expected).max() <= 1, (query, row)
            assert len(np.unique(shown)) > 20  # anatomy, not a flat grey
        for column in (200, 256):
            shown = await _png(node, "koffi", f"{base}/sagittal/{column}.png?{query}")
            expected = _windowed(_reformat(volume[:, :, column], sagittal_height), centre, width)
            assert shown.shape == (sagittal_height, rows)
            assert np.abs(shown - expected).max() <= 1, (query, column)
    shown = await _png(node, "koffi", f"{base}/axial/3.png?c=40&w=400")
    assert np.array_equal(shown, _windowed(volume[3], 40, 400))
    for beyond in ("coronal/512.png", "sagittal/9999.png", "axial/24.png"):
        status, _ = await node.web("koffi", "GET", f"{base}/{beyond}")
        assert status == 404, beyond


def _changed(files: list[Path], change: dict[int, dict[str, object]]) -> None:
    for i, values in change.items():
        ds = pydicom.dcmread(files[i])
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        ds.save_as(files[i])


NOT_VOLUMES = {
    "few": (
        MIN_SLICES - 1, {},
        "9 image(s)", "9 image(s) : une reconstruction demande au moins 10 coupes",
    ),
    "orientation": (
        12, {5: {"ImageOrientationPatient": [1, 0, 0, 0, 0, -1]}},
        "not all in one orientation", "pas toutes dans la même orientation",
    ),
    "tilt": (
        12, {i: {"ImagePositionPatient": [0.0, 1.0 * i, -float(i)]} for i in range(12)},
        "tilted (gantry tilt)", "inclinées (inclinaison du statif)",
    ),
    "uneven": (
        12, {i: {"ImagePositionPatient": [0.0, 0.0, -float(i) - (1.5 if i > 6 else 0.0)]}
             for i in range(12)},
        "unevenly spaced (1.00 to 2.50 mm)", "inégalement espacées (de 1,00 à 2,50 mm)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", NOT_VOLUMES)
async def test_a_series_that_is_not_a_volume_is_refused_saying_why_in_both_languages(
    cotonou: Cotonou, tmp_path: Path, kind: str
) -> None:
    node = cotonou
    slices, change, english, french = NOT_VOLUMES[kind]
    folder = tmp_path / kind
    folder.mkdir()
    _changed(ct_series(folder, slices), change)
    case, _ = await _case(node, folder)
    base = f"/web/cases/{case}/series/0/mpr"
    for path in (base, f"{base}/coronal/0.png"):
        for lang, said in (("en", english), ("fr", french)):
            status, body = await node.web("koffi", "GET", f"{path}?lang={lang}")
            assert status == 422, (kind, path, body)
            assert said in body.decode(), (kind, lang, body)
    # The images themselves are shown as before.
    assert (await node.web("koffi", "GET", f"/web/cases/{case}/frames/0/0.jpg"))[0] == 200


async def test_another_persons_case_has_no_reformats(cotonou: Cotonou, tmp_path: Path) -> None:
    """Awa reads for the group of Koffi's pair, not in the pair: the reformats of the
    case are answered as those of a case that does not exist."""
    node = cotonou
    _series(tmp_path / "ct", slices=MIN_SLICES)
    case, _ = await _case(node, tmp_path / "ct")
    for path in ("/web/cases/{}/series/0/mpr", "/web/cases/{}/series/0/mpr/coronal/10.png"):
        assert (await node.web("koffi", "GET", path.format(case)))[0] == 200, path
        mine = await node.web("awa", "GET", path.format(case))
        assert mine == await node.web("awa", "GET", path.format(NOBODYS_CASE)), path
        assert mine[0] == 404, path
    assert not list(node.node_dir.root.glob("viewer/mpr/*/*.vol"))[1:]  # Koffi's one only


def test_a_volume_larger_than_the_nodes_bound_is_refused_before_it_is_built(
    tmp_path: Path,
) -> None:
    files = _series(tmp_path / "ct", slices=MIN_SLICES)
    slices = [(p, 0) for p in files]
    bound = MIN_SLICES * 512 * 512 * 2 - 1  # a byte short of the int16 volume
    volumes = Volumes(tmp_path / "node", bound)
    with pytest.raises(TooLarge, match=r"the volume would take 5 MB; this node reformats 4 MB"):
        volumes.held("ab" * 16, "1.2.3", slices, Renderer().header)
    assert not list((tmp_path / "node").rglob("*.vol"))
    geometry, volume = Volumes(tmp_path / "node", bound + 1).held(
        "ab" * 16, "1.2.3", slices, Renderer().header
    )
    assert volume.dtype == np.int16
    assert volume.shape == (MIN_SLICES, 512, 512)
    assert geometry.slice_spacing == pytest.approx(SLICE_MM)
