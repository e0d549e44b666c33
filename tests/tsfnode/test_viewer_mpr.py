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
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from tests.harness.data import pydicom_data_folder
from tests.harness.people import FORM, PASSWORD
from tests.harness.studies import ct_series
from tests.tsfnode.test_case_access import NOBODYS_CASE, Cotonou, _node_input, cotonou
from tests.tsfnode.test_web_pages import CHROMIUM
from tsfnode.i18n import texts
from tsfnode.images.mpr import MIN_SLICES, TooLarge, Volumes
from tsfnode.images.render import Renderer

__all__ = ["cotonou"]  # the fixture of test_case_access.py, shared

ROOT = Path(__file__).resolve().parents[2]
SLICES = 24
SLICE_MM = 2.5  # thicker than a pixel (0.48 mm): the reformat is stretched 5x


def _series(folder: Path, slices: int = SLICES, gap: float = SLICE_MM) -> list[Path]:
    """A CT series of real pixels, ``gap`` mm apart, in one Frame of Reference, its
    instance numbers in no order (the node sorts by position along the normal)."""
    folder.mkdir()
    files = ct_series(folder, slices)
    order = np.random.default_rng(23).permutation(slices)
    frame_of_reference = generate_uid()  # the real slice has none; a scanner's series has
    for i, path in enumerate(files):
        ds = pydicom.dcmread(path)
        ds.FrameOfReferenceUID = frame_of_reference
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


ARTEFACTS = Path(os.environ.get("TSF_ARTEFACTS") or ROOT / "test-artefacts") / "viewer-mpr"


async def _text(page: Any, selector: str) -> str:
    return str(await page.inner_text(selector))


async def _until(page: Any, selector: str, wanted: str) -> None:
    """Until the text of ``selector`` holds ``wanted`` (Playwright's own bounded wait)."""
    try:
        await page.wait_for_function(
            "([s, w]) => (document.querySelector(s)?.textContent || '').includes(w)",
            arg=[selector, wanted],
        )
    except Exception:
        shown = await page.evaluate("(s) => document.querySelector(s)?.textContent", selector)
        raise AssertionError(f"{selector}: {shown!r}, not {wanted!r}") from None


@pytest.mark.slow
async def test_the_reader_reformats_scrolls_two_linked_viewports_and_hangs_ct_and_cr_apart(
    cotonou: Cotonou, tmp_path: Path
) -> None:
    """In Chromium, in French and English, on a laptop and a phone: a CT opens in two
    viewports (soft tissue and lung windows, side by side or stacked), coronal is one
    click, the wheel and the keys scroll, the two viewports scroll together by position;
    a radiograph opens in one viewport."""
    from playwright.async_api import async_playwright

    node = cotonou
    _series(tmp_path / "ct")
    ct, _ = await _case(node, tmp_path / "ct")
    cr_folder = tmp_path / "cr"
    cr_folder.mkdir()
    shutil.copy(pydicom_data_folder() / "RG1_UNCI.dcm", cr_folder / "cr.dcm")
    cr, _ = await _case(node, cr_folder)
    base = str(node.client.make_url("")).rstrip("/")
    await asyncio.to_thread(ARTEFACTS.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            for lang, (width, height) in (
                ("fr", (1280, 800)), ("en", (1280, 800)), ("fr", (390, 844)), ("en", (390, 844))
            ):  # fmt: skip
                _ = texts(lang)
                shot = f"{lang}-{width}"
                context = await browser.new_context(
                    locale=lang, viewport={"width": width, "height": height}
                )
                context.set_default_timeout(30_000)
                page = await context.new_page()
                await page.goto(f"{base}/web/login?lang={lang}")
                await page.fill("#username", "koffi")
                await page.fill("#password", PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_url("**/web/cases")
                # The CT: two viewports, soft tissue on the left, lung on the right.
                await page.goto(f"{base}/web/cases/{ct}/viewer")
                await page.wait_for_selector("#viewer[data-ready='1']")
                views = page.locator("#viewports .viewport")
                assert await views.count() == 2
                left, right = [await views.nth(i).bounding_box() for i in (0, 1)]
                if width > 700:  # side by side on a laptop, stacked on a phone
                    assert right["x"] > left["x"] + left["width"] / 2
                else:
                    assert right["y"] > left["y"] + left["height"] / 2
                await _until(page, ".viewport:nth-child(1) .bl", "400")
                await _until(page, ".viewport:nth-child(2) .bl", "-600")
                await _until(page, "#link-status", _("linked_position"))
                # Both scroll together: the keys on the left, the wheel on the right.
                await page.keyboard.press("ArrowDown")
                await page.keyboard.press("ArrowDown")
                await _until(page, ".viewport:nth-child(1) .tr", f"3/{SLICES}")
                await _until(page, ".viewport:nth-child(2) .tr", f"3/{SLICES}")
                await views.nth(1).locator("canvas").hover()
                await page.mouse.wheel(0, 120)
                await _until(page, ".viewport:nth-child(2) .tr", f"4/{SLICES}")
                await _until(page, ".viewport:nth-child(1) .tr", f"4/{SLICES}")
                await page.screenshot(path=str(ARTEFACTS / f"ct-two-{shot}.png"), full_page=True)
                # Coronal in the left viewport, reformatted on the node, then scrolled;
                # the right one (axial) shows where its slice cuts the coronal plane.
                await views.nth(0).locator("canvas").click()
                await page.click("[data-plane=coronal]")
                await _until(page, ".viewport:nth-child(1) .tr", f"{_('plane_coronal')} 257/512")
                assert await page.get_attribute("[data-plane=coronal]", "aria-pressed") == "true"
                await page.keyboard.press("ArrowDown")
                await _until(page, ".viewport:nth-child(1) .tr", "258/512")
                await _until(page, ".viewport:nth-child(1) .marker.top", "H")
                await page.wait_for_load_state("networkidle")  # the full image, not the small
                coronal = ARTEFACTS / f"ct-coronal-{shot}.png"
                await page.screenshot(path=str(coronal), full_page=True)
                await page.click("[data-plane=sagittal]")
                await _until(page, ".viewport:nth-child(1) .tr", f"{_('plane_sagittal')} 257/512")
                await _until(page, ".viewport:nth-child(1) .marker.left", "A")
                # The layout chosen is kept for this account and modality.
                await page.select_option("#hanging", "one")
                assert await views.count() == 1
                await page.reload()
                await page.wait_for_selector("#viewer[data-ready='1']")
                assert await page.locator("#viewports .viewport").count() == 1
                await page.select_option("#hanging", "auto")
                # The radiograph: one viewport, fitted; no reformat, said why.
                await page.goto(f"{base}/web/cases/{cr}/viewer")
                await page.wait_for_selector("#viewer[data-ready='1']")
                assert await page.locator("#viewports .viewport").count() == 1
                await page.click("[data-plane=coronal]")
                await _until(page, "#mpr-status", _("mpr_too_few", count=1, least=MIN_SLICES))
                await page.screenshot(path=str(ARTEFACTS / f"cr-{shot}.png"), full_page=True)
                scroll = await page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= width, (shot, scroll)
                await context.close()
        finally:
            await browser.close()
