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
def ohif() -> None:
    """OHIF in the test cache: skipped without it, a failure in CI (``CI`` set). Asked
    before the network is made."""
    if not (ohif_dist() / "index.html").is_file():
        reason = f"OHIF {OHIF_VERSION} is not in the test cache ({ohif_dist()}): .ci/run fetches it"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """OHIF's prebuilt app on its own origin (an empty site when it is not in the cache:
    the Weasis test needs only the node)."""
    dist = ohif_dist()
    with static_site(dist if dist.is_dir() else tmp_path_factory.mktemp("no-ohif")) as served:
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
    ohif: None, net: DicomwebNet, site: Site, chromium: Any, artefacts: Path
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
        lambda r: (
            seen.append((r.status, r.url, r.request.headers.get("authorization", "")))
            if "/dicomweb/" in r.url
            else None
        ),
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
            if (share > 0.15 and spread > 20) or time.monotonic() > deadline:
                break
            page.wait_for_timeout(1000)
        page.screenshot(path=str(artefacts / "viewer-page.png"))
        assert share > 0.15, (share, spread, seen[-10:])  # not a black canvas
        assert spread > 20, (share, spread, seen[-10:])  # nor a flat one
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


# Weasis 4 (weasis-dicom-explorer, rs/RsQueryResult.java): its QIDO-RS return keys, one
# includefield with commas, and its retrieve's Accept, no space after the semicolons.
WEASIS_STUDY = "00080020,00080030,00080050,00080061,00080090,00081030,00100010,00100020,00100021,00100030,00100040,0020000D,00200010"  # noqa: E501
WEASIS_SERIES = "0008103E,00080060,0020000E,00200011,00081190"
WEASIS_INSTANCE = "00080018,00200013,00081190"
WEASIS_ACCEPT = 'multipart/related;type="application/dicom";transfer-syntax=*'
JAVA_ACCEPT = "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"  # HttpURLConnection's


def test_weasis_4_finds_and_retrieves_the_readers_study_as_its_dicomweb_node_asks(
    net: DicomwebNet,
) -> None:
    page, token = tools_page_with_a_token(net, "fr", "Weasis")
    assert net.url in page  # the steps, in French
    assert "telles qu'elles sont stockées (transfer-syntax=*)" in page
    headers = {  # what the node's settings in Weasis add, and Java's defaults
        "Authorization": f"Bearer {token}",
        "Accept": JAVA_ACCEPT,
        "User-Agent": "Weasis/4.6.3 (Linux; amd64)",
    }
    stored = {read(p).SOPInstanceUID: p for p in net.stored(net.ct_case)}
    first = read(next(iter(stored.values())))

    def qido(url: str) -> list[dict[str, Any]]:
        status, answered, body = get(url, headers)
        assert status == 200, (url, body[:300])
        assert answered["Content-Type"].startswith(JSON)
        return list(json.loads(body))

    def value(record: dict[str, Any], tag: str) -> Any:
        return record[tag]["Value"][0]

    # a study by its UID, and by its (pseudonymous) patient id
    for key, wanted in (("0020000D", first.StudyInstanceUID), ("00100020", first.PatientID)):
        (study,) = qido(f"{net.url}/studies?{key}={wanted}&includefield={WEASIS_STUDY}")
        assert value(study, "0020000D") == first.StudyInstanceUID
        assert value(study, "00100020") == first.PatientID
        assert value(study, "00080061") == "CT"
    # its series, then each series' instances at the series' Retrieve URL
    (series,) = qido(
        f"{net.url}/studies/{first.StudyInstanceUID}/series?includefield={WEASIS_SERIES}"
    )
    assert value(series, "0020000E") == first.SeriesInstanceUID
    assert value(series, "00080060") == "CT"
    series_url = value(series, "00081190")
    assert (
        series_url
        == f"{net.url}/studies/{study['0020000D']['Value'][0]}/series/{first.SeriesInstanceUID}"
    )
    instances = qido(f"{series_url}/instances?includefield={WEASIS_INSTANCE}")
    assert {value(i, "00080018") for i in instances} == set(stored)
    # each instance at its Retrieve URL, as stored (JPEG-LS lossless), byte for byte
    for instance in instances:
        url = value(instance, "00081190")
        status, answered, body = get(url, {**headers, "Accept": WEASIS_ACCEPT})
        assert status == 200, (url, body[:300])
        ((kind, data),) = parts(answered["Content-Type"], body)
        assert kind.startswith("application/dicom;")
        assert kind.replace('"', "").endswith(
            f"transfer-syntax={first.file_meta.TransferSyntaxUID}"
        )
        assert data == stored[value(instance, "00080018")].read_bytes()
    # a wrong token: 401 with the challenge Weasis answers with its credentials
    status, answered, _ = get(f"{net.url}/studies", {**headers, "Authorization": "Bearer x"})
    assert status == 401
    assert "Bearer" in answered["WWW-Authenticate"]
