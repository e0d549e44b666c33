"""The reader's viewers against her node as against a PACS, with the steps of her tools
page: OHIF's own prebuilt app (the npm registry's @ohif/app, fetched once by .ci/run into
the test cache, never at run time) served from another origin in Debian's Chromium, and
the exact requests Weasis 4 sends to a DICOMweb node (Weasis itself cannot be installed
here).

The network is test_dicomweb.py's: Koffi (Cotonou) sends Marie (Erasme) a CT series of
six real slices and a multi-frame MR; the node at Erasme allows the viewer's origin."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.harness.data import read_dicom as read
from tests.harness.people import Browser
from tests.harness.static import Site, static_site
from tests.tsfnode.test_dicomweb import JSON, DicomwebNet, get, parts
from tests.tsfnode.test_web import chromium

__all__ = ["chromium"]  # test_web.py's fixture, shared

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
OHIF_VERSION = "3.13.2"  # .ci/run fetches the same


def ohif_dist() -> Path:
    """The prebuilt OHIF app (its npm package's dist/), as .ci/run unpacks it."""
    cache = os.environ.get("TSF_TEST_CACHE") or Path.home() / ".cache" / "tsfnode-test"
    return Path(cache) / "ohif" / OHIF_VERSION / "package" / "dist"


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    dist = ohif_dist()
    if not (dist / "index.html").is_file():
        reason = f"OHIF {OHIF_VERSION} is not in the test cache ({dist}): .ci/run fetches it"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with static_site(dist) as served:
        yield served


@pytest.fixture(scope="module")
def net(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DicomwebNet]:
    base = tmp_path_factory.mktemp("ohif")
    with contextlib.closing(DicomwebNet(base, viewer=site.origin)) as network:
        yield network


@pytest.fixture(scope="module")
def artefacts() -> Path:
    folder = Path(os.environ.get("TSF_ARTEFACTS") or ROOT / "test-artefacts") / "ohif"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def tools_page_with_a_token(net: DicomwebNet, lang: str, label: str) -> tuple[str, str]:
    """Marie makes a DICOMweb token on her tools page: the page, and the token."""
    marie = Browser(net.cluster.url(1))
    marie.sign_in("marie")
    status, _, page = marie.post(f"/web/tools/tokens?lang={lang}", {"label": label, "days": "7"})
    assert status == 200, page[-2000:]
    (token,) = re.findall(r"<code class=\"id\">(tsf_[A-Za-z0-9_-]+)</code>", page)
    return page, token


def app_config_of(page: str) -> str:
    found = re.search(r'<pre id="ohif-config"><code>(.*?)</code></pre>', page, re.DOTALL)
    assert found is not None, page[-3000:]
    return html.unescape(found.group(1))


def drawn(shot: Path) -> tuple[float, float]:
    """The share of pixels that are not black, and their spread (standard deviation of
    the grey levels), in a screenshot."""
    grey = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    return float((grey > 16).mean()), float(grey.std())


def test_ohif_from_another_origin_shows_the_readers_study_with_her_token(
    net: DicomwebNet, site: Site, chromium: Any, artefacts: Path
) -> None:
    page_text, token = tools_page_with_a_token(net, "en", "OHIF")
    site.replaced["/app-config.js"] = app_config_of(page_text).encode()
    first = read(net.stored(net.ct_case)[0])
    study = str(first.StudyInstanceUID)

    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    seen: list[tuple[int, str, str]] = []
    page.on(
        "response",
        lambda r: seen.append((r.status, r.url, r.request.headers.get("authorization", "")))
        if "/dicomweb/" in r.url
        else None,
    )
    try:
        # the study list: the reader's studies, found by QIDO-RS with her token
        page.goto(f"{site.origin}/")
        name = ", ".join(str(first.PatientName).split("^")[:2])  # as OHIF writes it
        row = page.get_by_role("row").filter(has_text=name)
        row.wait_for()
        assert "CT" in row.inner_text()
        page.screenshot(path=str(artefacts / "study-list.png"))
        # the study in the viewer: its slices drawn
        page.goto(f"{site.origin}/viewer?StudyInstanceUIDs={urllib.parse.quote(study)}")
        canvas = page.locator(".cornerstone-viewport-element canvas").first
        canvas.wait_for()
        for button in ("Confirm and hide", "Skip all"):  # OHIF's notice and tour, over it
            with contextlib.suppress(PlaywrightTimeout):
                page.get_by_text(button, exact=True).click(timeout=5_000)
        shot = artefacts / "viewer-ct.png"
        share, spread = 0.0, 0.0
        deadline = time.monotonic() + 90
        for _ in range(90):  # the slices come, are decoded and drawn
            canvas.screenshot(path=str(shot))
            share, spread = drawn(shot)
            if share > 0.15 and spread > 20 or time.monotonic() > deadline:
                break
            page.wait_for_timeout(1000)
        page.screenshot(path=str(artefacts / "viewer-page.png"))
        assert share > 0.15 and spread > 20, (share, spread, seen[-10:])
        # every DICOMweb request carried her token
        assert seen
        assert {auth for _, _, auth in seen} == {f"Bearer {token}"}, seen
        assert all(status == 200 for status, _, _ in seen), seen
        # a wrong or absent token: 401 the viewer can read (CORS headers), not a CORS failure
        for headers in ({"Authorization": "Bearer tsf_wrong"}, {}):
            answer = page.evaluate(
                """async ([url, headers]) => {
                    const r = await fetch(url, { headers });
                    return [r.status, await r.text()];
                }""",
                [f"{net.url}/studies", headers],
            )
            assert answer[0] == 401, answer
            assert "token" in answer[1], answer
    finally:
        context.close()
