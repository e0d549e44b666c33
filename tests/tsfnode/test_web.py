"""The web application in Debian's Chromium (Playwright, never a downloaded browser)
against two real nodes on loopback:

- node 0, CHU Cotonou: Dr Koffi, a sender; the node's IT person (admin);
- node 1, Erasme: Dr Anne, coordinator of the paediatric group; Dr Marie, a reader of it,
  paired with Dr Koffi.

The whole flow: Koffi drops a real CT study and a photo of a film, fills the form while
they go up, masks the film's label, sends the CT to his pair; Marie finds it in her
worklist, reads it with a template and signs a report; Koffi reads the report, re-linked
to his patient, and evaluates it. Then an upload cut halfway and resumed in a new tab, and
every page in French and English, refused to those it is not for.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image

from tests.harness.data import PYDICOM_FILES, pydicom_data_folder
from tests.harness.nodes import tsfnode
from tests.harness.people import (
    FORM,
    PASSWORD,
    REPORT,
    Browser,
    PairedNet,
    Person,
    Records,
    call,
)
from tests.harness.studies import ct_series
from tests.harness.waiting import wait_for
from tsfnode.web.live import POLL_S

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")  # Debian's (.ci/run installs it)
QUICK = {
    "transfer": {"poll_interval_ms": 500, "retry_base_ms": 200},
    "cases": {"scan_interval_ms": 300, "stats_interval_ms": 1000},
}
CHUNK = 256 * 1024  # the uploader's chunk (static/new_case.js)
HALFWAY = 14  # of the 28 chunks of RG1_UNCI.dcm


class WebNet(PairedNet):
    def __init__(self, base: Path) -> None:
        super().__init__(base, **QUICK)
        made = tsfnode(
            "account", "add", self.cluster.dirs[0], "it.cotonou", "--role", "admin",
            "--name", "Service informatique", "--password-stdin", input_text=PASSWORD,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        self.shots = base / "screenshots"
        self.shots.mkdir()
        self.files = base / "files"
        self.files.mkdir()
        self.ct = self.files / "CT_small.dcm"
        shutil.copy(PYDICOM_FILES / "CT_small.dcm", self.ct)
        self.photo = self.files / "film.jpg"
        self.photo.write_bytes(photo_of_film())
        self.large = self.files / "RG1_UNCI.dcm"  # 7.2 MB: 28 chunks
        shutil.copy(pydicom_data_folder() / "RG1_UNCI.dcm", self.large)

    def give_marie(self, name: str, slices: int, **extra: str) -> str:
        """A CT series of ``slices`` images sent by Koffi to the paediatric group (no
        pair's weekly quota spent) and assigned to Marie by Anne: the case's id."""
        folder = self.base / name
        folder.mkdir()
        ct_series(folder, slices)
        case = self.submit(folder, {"routing": "group", "target": self.paediatrics, **extra})
        wait_for("the case at Erasme", lambda: self.anne.state(case) == "delivered")
        self.anne.ok(f"/cases/{case}/assign", "POST", {"reader": self.marie.id})
        wait_for("the case Marie's", lambda: self.marie.state(case) == "assigned")
        return case

    def send_ct(self, name: str, slices: int) -> tuple[list[Path], str]:
        """A CT series of ``slices`` images sent by Koffi to Marie in their pair: its
        files and the case's id."""
        folder = self.base / name
        folder.mkdir()
        files = ct_series(folder, slices)
        pairs = self.koffi.ok("/pairs")["pairs"]
        pair = next(p["pair_id"] for p in pairs if p["status"] == "active")
        return files, self.submit(folder, {"routing": "pair", "target": pair})


def photo_of_film() -> bytes:
    """A real radiograph (pydicom-data's RG1) as a phone would see it on a light box."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixels = pydicom.dcmread(pydicom_data_folder() / "RG1_UNCI.dcm").pixel_array
    scaled = (pixels - pixels.min()) * (255.0 / (pixels.max() - pixels.min()))
    image = Image.fromarray(scaled.astype(np.uint8), mode="L").convert("RGB")
    image.thumbnail((1200, 1200))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88)
    return out.getvalue()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebNet]:
    with contextlib.closing(WebNet(tmp_path_factory.mktemp("web"))) as network:
        yield network


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "the browser tests need Debian's chromium: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


def signed_in(
    browser: Any, base: str, username: str, lang: str, path: str, *, clock: bool = False
) -> Any:
    """A page of ``path`` signed in as ``username``. With ``clock``, the page's timers are
    Playwright's: time flows as usual, and a test may move it on (page.clock.run_for)."""
    context = browser.new_context(locale=lang, viewport={"width": 1100, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    if clock:
        page.clock.install()
    page.goto(f"{base}{path}")
    assert "/web/login" in page.url  # signed out: sign in first, then back here
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{path}")
    return page


def reload_until(page: Any, selector: str, what: str, timeout: float = 90) -> None:
    def shown() -> bool:
        if page.locator(selector).count():
            return True
        page.reload()
        return False

    wait_for(what, shown, timeout=timeout)


PRIOR_IMAGING = "Radiographie du 3 mars : opacité basale droite."


def fill_form(page: Any) -> None:
    """A 6-month-old's form, every field filled in."""
    page.fill("#age", "6")
    page.select_option("#age_unit", "months")
    page.check(f"input[name=sex][value={FORM['sex']}]")
    page.select_option("#modality", FORM["modality"])
    page.fill("#body_part", FORM["body_part"])
    page.fill("#question", FORM["question"])
    page.fill("#clinical_history", FORM["clinical_history"])
    page.fill("#prior_imaging", PRIOR_IMAGING)
    page.fill("#preliminary_reading", FORM["preliminary_reading"])


def test_a_case_goes_from_the_senders_browser_to_the_readers_and_back(
    net: WebNet, chromium: Any
) -> None:
    base0, base1 = net.cluster.url(0), net.cluster.url(1)
    hosts: set[str] = set()
    koffi = signed_in(chromium, base0, "koffi", "fr", "/web/new")
    koffi.on("request", lambda r: hosts.add(urllib.parse.urlsplit(r.url).netloc))
    assert koffi.inner_text("h1") == "Nouveau cas"
    assert koffi.locator("#submit").is_disabled()
    koffi.set_input_files("#pick-files", [str(net.ct), str(net.photo)])
    fill_form(koffi)  # while the files go up
    koffi.wait_for_selector("#studies input[name=study_uid] >> nth=1")
    assert "2 fichiers reçus" in koffi.inner_text("#progress-text")  # a plural form
    studies = koffi.locator("#studies input[name=study_uid]")
    assert studies.count() == 2
    # The photo's label may name the patient: a rectangle is drawn over it and blacked out.
    flag = koffi.locator(".flag").first
    assert "photo" in flag.inner_text()
    image = flag.locator("img")
    for _ in range(100):  # the image to check is shown (at most 10 s)
        if image.evaluate("img => img.complete && img.naturalWidth > 0"):
            break
        koffi.wait_for_timeout(100)
    koffi.screenshot(path=str(net.shots / "new-case-fr.png"), full_page=True)
    canvas = flag.locator("canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    koffi.mouse.move(box["x"] + 10, box["y"] + 10)
    koffi.mouse.down()
    koffi.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 4, steps=5)
    koffi.mouse.up()
    flag.locator("button.mask").click()
    koffi.wait_for_selector(".flag .check.masked")
    while koffi.locator(".flag .check.pending").count():  # anything else flagged: checked
        koffi.locator(".flag:has(.check.pending) button.confirm").first.click()
        koffi.wait_for_timeout(300)
    photo_study = ""
    for i in range(2):
        label = koffi.locator("#studies label").nth(i)
        if "CT ·" not in label.inner_text():
            photo_study = studies.nth(i).get_attribute("value")
        else:
            studies.nth(i).check()
    masked = masked_region(net.cluster.dirs[0], photo_study)
    assert masked is not None
    assert masked == 0
    assert koffi.locator("#submit").is_enabled()
    assert "kbit/s" in koffi.inner_text("#estimate") or "débit" in koffi.inner_text("#estimate")
    assert koffi.locator("input[name=route]:checked").get_attribute("value").startswith("pair:")
    koffi.click("#submit")
    koffi.wait_for_url("**/web/cases/*")
    case_url = koffi.url.split("?")[0]
    assert "CompressedSamples^CT1" in koffi.inner_text("#patient")  # only here, re-linked
    koffi.screenshot(path=str(net.shots / "case-sent-fr.png"), full_page=True)

    marie = signed_in(chromium, base1, "marie", "en", "/web/cases")
    case_id = case_url.rsplit("/", 1)[1]
    reload_until(marie, f"a[href='/web/cases/{case_id}']", "the case in Marie's worklist")
    marie.screenshot(path=str(net.shots / "worklist-en.png"), full_page=True)
    marie.click(f"a[href='/web/cases/{case_id}']")
    marie.wait_for_selector("#report-form")
    assert FORM["question"] in marie.inner_text("main")
    assert marie.locator("#patient").count() == 0  # never at the reader's node
    # Every field Koffi typed reaches Marie, the baby's age in months (her account: French).
    assert marie.inner_text("#form-age") == "6 mois"
    assert marie.inner_text("#form-prior_imaging") == PRIOR_IMAGING
    assert marie.inner_text("#form-preliminary_reading") == FORM["preliminary_reading"]
    marie.select_option("#template", "CT")  # a template per modality fills the report
    template = marie.input_value("#findings")
    assert "Technique" in template
    marie.fill("#impression", "Pneumopathie lobaire inférieure droite.")
    marie.click("#report-form button[type=submit]")  # the headings alone are not a report
    assert "modèle" in marie.inner_text(".error")  # in the page's language (French)
    marie.fill("#findings", template.replace("Technique :", "Technique : sans injection"))
    marie.fill("#impression", "Pneumopathie lobaire inférieure droite.")
    marie.screenshot(path=str(net.shots / "report-editor-en.png"), full_page=True)
    # Issue 22, item 6: a preview first, signed only as previewed; then the form is gone.
    marie.click("#report-form button[type=submit]")
    marie.wait_for_selector("#report-preview")
    assert "Pneumopathie lobaire" in marie.inner_text("#report-preview")
    assert marie.locator("section.report").count() == 0  # nothing signed yet
    marie.evaluate(  # the text changed behind the preview: refused, nothing signed
        "document.querySelector('#sign-report input[name=impression]').value = 'Normal.'"
    )
    marie.click("#sign-report button[type=submit]")
    assert "aperçu" in marie.inner_text(".error")
    assert marie.locator("section.report").count() == 0
    marie.fill("#impression", "Pneumopathie lobaire inférieure droite.")
    marie.click("#report-form button[type=submit]")
    marie.wait_for_selector("#report-preview")
    marie.screenshot(path=str(net.shots / "report-preview-fr.png"), full_page=True)
    marie.click("#sign-report button[type=submit]")
    marie.wait_for_selector("section.report")
    assert not marie.locator("#report-form").is_visible()  # signed: the empty form is gone
    assert "Pneumopathie lobaire" in marie.inner_text("section.report")
    # A later signature is an addendum, shown as one under the report it completes.
    marie.click("#addendum summary")
    marie.fill("#impression", "Épanchement pleural droit minime.")
    marie.click("#report-form button[type=submit]")
    marie.wait_for_selector("#report-preview")
    marie.click("#sign-report button[type=submit]")
    marie.wait_for_selector("section.addendum")
    assert marie.locator("section.report").count() == 1
    assert marie.inner_text("section.addendum h2").startswith("Complément")

    koffi.goto(case_url)
    reload_until(koffi, "#evaluation-form", "the report back at Koffi's node")
    assert "Pneumopathie lobaire" in koffi.inner_text("section.report")
    reload_until(koffi, "section.addendum", "the addendum at Koffi's node")
    assert koffi.locator("section.report").count() == 1  # never a second, identical report
    assert koffi.inner_text("section.addendum h2").startswith("Complément")
    assert "Épanchement pleural" in koffi.inner_text("section.addendum")
    done = koffi.locator("#timeline li.done").all_inner_texts()
    for step in ("Envoyé", "Reçu", "Lu", "Réponse reçue"):
        assert any(line.startswith(step) for line in done), (step, done)
    for name in ("relevant", "useful", "changed_management"):
        koffi.check(f"input[name={name}][value=yes]")
    koffi.click("#evaluation-form button[type=submit]")
    koffi.wait_for_selector("#evaluation-sent")
    koffi.screenshot(path=str(net.shots / "case-evaluated-fr.png"), full_page=True)
    assert hosts == {urllib.parse.urlsplit(base0).netloc}  # nothing from outside the node
    koffi.context.close()
    marie.context.close()


def test_the_weekly_quota_reads_the_same_at_the_sender_the_reader_and_the_coordinator(
    net: WebNet,
) -> None:
    """One count of a pair's week on both sides (issue 22, item 7): the cases the sender
    sent in the pair in the last 7 days, counted at the reader's node by those it
    received."""
    net.send_ct("quota-week", 2)
    sent = [
        c["case_id"]
        for c in net.koffi.ok("/cases")
        if c["routing"] == "pair" and c["state"] != "cancelled"  # one pair at Cotonou
    ]
    assert sent
    wait_for("the pair's cases at Erasme", lambda: all(net.marie.state(c) for c in sent))
    shown = []
    for who, node, path, row in (
        ("koffi", 0, "/web/pairs", r"Marie[^<]*</td><td>(\d+)/5</td>"),
        ("marie", 1, "/web/pairs", r"Koffi[^<]*</td><td>(\d+)/5</td>"),
        ("anne", 1, "/web/coordinator", r"Marie[^<]*</td><td>[^<]*Koffi[^<]*</td><td>(\d+)/5</td>"),
    ):
        browser = Browser(net.cluster.url(node))
        browser.sign_in(who)
        _, _, page = browser.get(path)
        found = re.search(row, page, re.IGNORECASE)
        assert found is not None, (who, path, page[page.find("<tbody>") :][:300])
        shown.append(int(found.group(1)))
    assert shown == [len(sent)] * 3, shown


def masked_region(node: Path, study_uid: str) -> int | None:
    """The largest pixel value in the top-left corner of the photo's image, at the node."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in (node / "intake" / study_uid).rglob("*.dcm"):
            pixels = pydicom.dcmread(path).pixel_array
            return int(pixels[20:40, 20:40].max())
    return None


def test_an_upload_cut_halfway_resumes_in_a_new_tab_without_sending_a_chunk_twice(
    net: WebNet, chromium: Any
) -> None:
    base = net.cluster.url(0)
    page = signed_in(chromium, base, "koffi", "en", "/web/new")
    offsets: list[int] = []
    cut = {"left": 2}

    def through(route: Any) -> None:
        request = route.request
        if request.method != "PATCH":
            route.continue_()
            return
        if len(offsets) == 4 and cut["left"]:  # the line drops twice, then comes back
            cut["left"] -= 1
            route.abort("connectionfailed")
            return
        if len(offsets) == HALFWAY:  # then it drops for good, halfway through
            route.abort("connectionfailed")
            return
        offsets.append(int(request.headers["upload-offset"]))
        route.continue_()

    page.route("**/web/uploads/*", through)
    page.set_input_files("#pick-files", [str(net.large)])
    deadline = time.monotonic() + 60
    while len(offsets) < HALFWAY and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    page.wait_for_timeout(500)  # the last chunk through is answered before the tab closes
    page.close()  # the tab closes, the upload halfway
    assert cut["left"] == 0  # the cut happened, and the upload went on after it
    assert offsets == [i * CHUNK for i in range(HALFWAY)]  # no chunk sent twice
    sent = len(offsets)

    page = page_again(page.context, base)
    assert page.locator("#resume").is_visible()
    resumed: list[int] = []
    page.route(
        "**/web/uploads/*",
        lambda route: (
            resumed.append(int(route.request.headers["upload-offset"]))
            if route.request.method == "PATCH"
            else None,
            route.continue_(),
        ),
    )
    page.screenshot(path=str(net.shots / "upload-interrupted-en.png"), full_page=True)
    page.set_input_files("#pick-files", [str(net.large)])
    page.wait_for_selector("#studies input[name=study_uid]", timeout=90_000)
    # Resumed where the node stood: at most the chunk in flight at the close is resent.
    assert resumed[0] in (sent * CHUNK, (sent - 1) * CHUNK)
    assert resumed == [resumed[0] + i * CHUNK for i in range(len(resumed))]
    assert resumed[-1] < net.large.stat().st_size <= resumed[-1] + CHUNK
    label = page.inner_text("#studies label")
    assert " CR " in label
    assert "1 image, 1 série," in label  # each count with its own plural form
    page.context.close()


RECORD_PROGRESS = """() => {
  window.shown = [];
  const note = () => window.shown.push({
    text: document.getElementById("progress-text").textContent,
    left: document.getElementById("time-left").textContent,
    max: document.getElementById("progress").max,
    value: document.getElementById("progress").value,
  });
  const watch = new MutationObserver(note);
  const what = { childList: true, characterData: true, subtree: true };
  for (const id of ["progress-text", "time-left"]) watch.observe(document.getElementById(id), what);
}"""
UPLINK_BYTES_S = 1_000_000  # 8 Mbit/s, the upload throttled by Chromium (CDP)


def test_the_upload_shows_the_whole_selection_from_the_first_update_on_a_slow_link(
    net: WebNet, chromium: Any
) -> None:
    base = net.cluster.url(0)
    page = signed_in(chromium, base, "koffi", "fr", "/web/new")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 100,
            "downloadThroughput": 4 * UPLINK_BYTES_S,
            "uploadThroughput": UPLINK_BYTES_S,
        },
    )
    page.evaluate(RECORD_PROGRESS)
    # The large file first: the others wait for it. 2.1 MB, 9 chunks of 256 KiB: enough
    # updates and time for a rate over the line (RG1's 7.2 MB showed the same, in 3x the time).
    large = net.files / "MR2_UNCI.dcm"
    shutil.copy(pydicom_data_folder() / "MR2_UNCI.dcm", large)
    chosen = [large, net.ct, net.photo]
    total = sum(f.stat().st_size for f in chosen)
    page.set_input_files("#pick-files", [str(f) for f in chosen])
    page.wait_for_selector("#studies input[name=study_uid]", timeout=120_000)
    shown = page.evaluate("window.shown")
    uploading = [s for s in shown if "envoyés" in s["text"]]  # Koffi reads French
    assert len(uploading) > 3, shown
    whole = f"{total / 1e6:.1f} Mo".replace(".", ",")  # 2,3 Mo: the selection, in French
    # From the first update: the whole selection, never the files started so far.
    assert all(s["max"] == total for s in uploading), uploading[:3]
    assert uploading[0]["text"] == f"0,0 / {whole} envoyés (3 fichiers)", uploading[0]
    assert all(s["text"].endswith(f" / {whole} envoyés (3 fichiers)") for s in uploading)
    values = [s["value"] for s in uploading]
    assert values == sorted(values)
    assert values[0] < total / 10
    # The rate and the time left are this upload's own, over the throttled line.
    lefts = [s["left"] for s in shown if s["left"]]
    assert lefts, shown
    found = re.findall(r"([\d\u202f\xa0]+) kbit/s", " ".join(lefts))
    rates = [float(re.sub(r"\D", "", m)) for m in found]
    assert rates, lefts
    assert max(rates) <= UPLINK_BYTES_S * 8 / 1000 * 1.2, lefts  # never more than the line
    assert re.search(r"environ \d+ (s|min) restantes", lefts[0]), lefts
    page.screenshot(path=str(net.shots / "upload-progress-fr.png"), full_page=True)
    page.context.close()


def page_again(context: Any, base: str) -> Any:
    page = context.new_page()
    page.goto(f"{base}/web/new")
    return page


PAGES = {  # who may open each page: the others are refused
    "/web/cases": ("koffi", "marie", "anne"),
    "/web/new": ("koffi",),
    "/web/pairs": ("koffi", "marie", "anne"),
    "/web/coordinator": ("anne",),
    "/web/admin": ("it.cotonou",),
}


def test_pages_are_refused_to_visitors_and_to_other_roles(net: WebNet) -> None:
    for path, allowed in PAGES.items():
        visitor = Browser(net.cluster.url(0))
        status, url, _ = visitor.get(path)
        assert "/web/login" in url
        for username, node in (("koffi", 0), ("marie", 1), ("anne", 1), ("it.cotonou", 0)):
            browser = Browser(net.cluster.url(node))
            browser.sign_in(username)
            status, _, text = browser.get(path)
            if username in allowed:
                assert status == 200, (path, username)
            else:
                assert status == 403, (path, username, status)
                assert re.search("not for your role|pas pour votre rôle", text)
    # The uploader's calls too: a reader cannot start an upload on a sender's node.
    marie = Browser(net.cluster.url(1))
    marie.sign_in("marie")
    status, _, _ = marie.get("/web/uploads/" + "0" * 32)
    assert status == 403


def test_a_radiologist_applies_and_the_coordinator_attests_or_declines(
    net: WebNet, chromium: Any
) -> None:
    base = net.cluster.url(1)  # Erasme, where the paediatric group's coordinator works
    context = chromium.new_context(locale="fr")
    context.set_default_timeout(30_000)
    page = context.new_page()
    for username, name in (("fatou", "Dr Fatou Candidate"), ("intrus", "M. Intrus")):
        page.goto(f"{base}/web/login")
        page.click("#join")
        page.wait_for_url("**/web/join")
        page.check("input[name=role][value=reader]")
        page.fill("#display_name", name)
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.fill("#password_again", PASSWORD)
        page.fill("#languages", "fr en")
        page.fill("#registration", "ONMB-5678")
        page.fill("#diploma", "DES radiologie")
        page.fill("#subspecialities", "paediatrics")
        page.fill("#weekly_capacity", "3")
        if username == "fatou":
            page.click("#join-form button[type=submit]")  # the charter is required
            assert page.locator("#applied").count() == 0
            page.screenshot(path=str(net.shots / "join-fr.png"), full_page=True)
        page.check("input[name=charter]")
        page.click("#join-form button[type=submit]")
        page.wait_for_selector("#applied")
    # Not a member yet: no account to sign in with.
    page.goto(f"{base}/web/login")
    page.fill("#username", "fatou")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    assert page.locator(".error").count() == 1
    context.close()

    anne = signed_in(chromium, base, "anne", "fr", "/web/coordinator")
    applications = anne.locator("section.application")
    assert applications.count() == 2
    assert "ONMB-5678" in applications.first.inner_text()
    anne.locator("section.application:has-text('M. Intrus') input[name=reason]").fill(
        "Inscription introuvable à l'ordre."
    )
    anne.locator("section.application:has-text('M. Intrus') button.decline").click()
    anne.wait_for_url("**/web/coordinator?done=declined")
    anne.locator("section.application:has-text('Fatou') button.attest").click()
    anne.wait_for_url("**/web/coordinator?done=attested")
    assert anne.locator("section.application").count() == 0
    members = anne.inner_text("table.members")
    assert "Dr Fatou Candidate" in members
    assert "ONMB-5678" in members
    assert "Pédiatrie" in anne.inner_text("main")
    assert "marie" in anne.inner_text("table.pairs")  # the pair of the first test
    assert anne.locator("#chart-turnaround svg").count() == 1  # its case is on the charts
    assert len(anne.content().encode()) < 150_000
    anne.screenshot(path=str(net.shots / "coordinator-fr.png"), full_page=True)
    anne.context.close()
    # The attestation, signed by Anne's person key, reaches the sender's node by gossip.
    wait_for(
        "Fatou's attestation at Cotonou",
        lambda: any(
            m["name"] == "Dr Fatou Candidate"
            for m in call(f"{net.cluster.url(0)}/api/v1/directory?kind=member", "")[1]
        ),
    )
    fatou = signed_in(chromium, base, "fatou", "fr", "/web/cases")
    assert fatou.inner_text("h1") == "Liste de travail"
    fatou.context.close()
    intruder = Browser(base)
    _, url, _ = intruder.sign_in("intrus")
    assert "/web/login" in url  # declined: no account was made


def test_the_node_admin_sees_peers_transfers_storage_figures_and_the_audit_log(
    net: WebNet, chromium: Any
) -> None:
    base = net.cluster.url(0)
    admin = signed_in(chromium, base, "it.cotonou", "en", "/web/admin")
    assert admin.inner_text("h1") == "Administration du nœud"  # the account's language
    admin.click("header nav a[hreflang=en]")  # the person's choice, kept in a cookie
    admin.wait_for_url("**/web/admin?lang=en")
    admin.goto(f"{base}/web/admin")
    assert admin.inner_text("h1") == "Node administration"
    peers = admin.inner_text("#peers + table")
    assert "alive" in peers
    transfers = admin.locator("table.transfers tbody tr")
    assert transfers.count() >= 2  # the CT's images out, the report in
    assert "out" in admin.inner_text("table.transfers")
    assert "Log intact" in admin.inner_text("#audit-state")
    assert "submit" in admin.inner_text("table.audit")
    assert "Bundles sealed here" in admin.inner_text("main")
    assert len(admin.content().encode()) < 150_000
    admin.screenshot(path=str(net.shots / "admin-en.png"), full_page=True)
    admin.context.close()


def test_every_page_speaks_french_and_english_and_stays_light(net: WebNet) -> None:
    case_id = net.koffi.ok("/cases")[0]["case_id"]
    pages = [  # (node, who, path, the h1 in French, in English)
        (0, None, "/web/login", "Connexion", "Sign in"),
        (1, None, "/web/join", "Rejoindre le réseau", "Join the network"),
        (0, None, "/web/", "Nœud", "Node"),
        (0, "koffi", "/web/new", "Nouveau cas", "New case"),
        (0, "koffi", "/web/cases", "Mes cas", "My cases"),
        (0, "koffi", f"/web/cases/{case_id}", "Cas", "Case"),
        (1, "marie", "/web/cases", "Liste de travail", "Worklist"),
        (1, "marie", f"/web/cases/{case_id}", "Cas", "Case"),
        (1, "anne", "/web/coordinator", "Coordination", "Coordination"),
        (0, "koffi", "/web/pairs", "Binômes", "Pairs"),
        (0, "it.cotonou", "/web/admin", "Administration du nœud", "Node administration"),
    ]
    for node, who, path, french, english in pages:
        for lang, title in (("fr", french), ("en", english)):
            browser = Browser(net.cluster.url(node))
            if who:
                browser.sign_in(who)
            status, _, text = browser.get(f"{path}?lang={lang}")
            assert status == 200, (path, lang, status)
            assert f'<html lang="{lang}">' in text
            h1 = re.search(r"<h1>(.*?)</h1>", text, re.S)
            assert h1 is not None
            assert h1.group(1).startswith(title), (path, lang, h1.group(1))
            assert len(text.encode()) < 150_000, (path, len(text.encode()))
            outside = re.search(r'(src|href|action)="(https?:)?//', text)
            assert outside is None, (path, outside)  # nothing fetched from outside the node


def test_the_coordinator_assigns_a_groups_case_and_a_pair_is_made_in_the_browser(
    net: WebNet,
) -> None:
    folder = net.base / "group-study"
    folder.mkdir()
    shutil.copy(PYDICOM_FILES / "MR_small.dcm", folder / "MR_small.dcm")
    case = net.submit(folder, {"routing": "group", "target": net.paediatrics})
    anne = Browser(net.cluster.url(1))
    anne.sign_in("anne")
    wait_for(
        "the case on the coordinator's page at Erasme",
        lambda: f"/web/cases/{case}" in anne.get("/web/coordinator")[2],
    )
    assert "CT · HEAD" in anne.page  # the form's modality, as the sender filled it
    status, url, _ = anne.post(
        f"/web/coordinator/cases/{case}/assign", {"reader": key_hex(net.marie.id)}
    )
    assert status == 200, anne.page
    assert url.endswith("/web/coordinator?done=assigned")
    wait_for(
        "the sender's node decides: assigned to Marie, and Erasme's copy knows it",
        lambda: (
            net.marie.case(case)["state"] == "assigned"
            and net.marie.case(case)["reader"] == key_hex(net.marie.id)
        ),
    )
    marie = Browser(net.cluster.url(1))
    marie.sign_in("marie")
    assert re.search(rf"{case[:8]}</a>.*?(en lecture|being read)", marie.get("/web/cases")[2], re.S)

    # Anne proposes a pair to Koffi in her browser; he accepts in his; he suspends it.
    _, _, page = anne.get("/web/pairs")
    assert "koffi" in page  # a sender of the directory, to propose to
    anne.post(
        "/web/pairs/propose",
        {"with": net.koffi.id, "weekly_quota": "2", "reading_delay_hours": "72"},
    )
    koffi = Browser(net.cluster.url(0))
    koffi.sign_in("koffi")
    wait_for(
        "Anne's proposal at Koffi's node",
        lambda: 'action="/web/pairs/accept"' in koffi.get("/web/pairs")[2],
    )
    pair = re.search(r'name="pair" value="([0-9a-f]{32})"', koffi.page)
    assert pair is not None
    koffi.post("/web/pairs/accept", {"pair": pair.group(1)})
    wait_for(
        "the pair in force at Anne's node",
        lambda: (
            re.search(r"2/2|0/2", anne.get("/web/pairs")[2]) is not None
            and ("actif" in anne.page or "active" in anne.page)
        ),
    )
    koffi.get("/web/pairs")
    koffi.post("/web/pairs/suspend", {"pair": pair.group(1)})
    assert "suspendu" in koffi.page or "suspended" in koffi.page


def key_hex(person_id: str) -> str:
    from protocol.identity import PublicIdentity

    return PublicIdentity.from_text(person_id).key.hex()


def box_of(page: Any) -> Any:
    return page.locator(".viewport.active canvas").bounding_box()


def overlay(page: Any, corner: str) -> str:
    return str(page.inner_text(f".viewport.active .{corner}"))


def wait_text(page: Any, corner: str, wanted: str) -> str:
    for _ in range(150):  # at most 15 s
        text = overlay(page, corner)
        if wanted in text:
            return text
        page.wait_for_timeout(100)
    raise AssertionError(f"{corner}: {wanted!r} not in {overlay(page, corner)!r}")


def shown_angle(page: Any) -> float:
    text = page.inner_text("#measure")
    assert text.endswith("°"), text
    return float(text.rstrip("°").replace(",", "."))  # French: 128,5°


def test_the_angle_tool_measures_with_three_clicks(net: WebNet, chromium: Any) -> None:
    slices, case = net.send_ct("ct-angle", 3)
    # The sender's own viewer, on his node: the images are in its intake.
    page = signed_in(chromium, net.cluster.url(0), "koffi", "fr", f"/web/cases/{case}/viewer")
    page.wait_for_selector("#thumbs .thumb")
    wait_text(page, "tr", "Image 1/3")  # "Image" in French too
    box = box_of(page)
    ds = pydicom.dcmread(slices[0], stop_before_pixels=True)
    row_mm, column_mm = (float(v) for v in ds.PixelSpacing)
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    arm, vertex, other = (cx - 120, cy + 30), (cx, cy), (cx + 50, cy - 110)

    def expected() -> float:
        u = ((arm[0] - vertex[0]) * column_mm, (arm[1] - vertex[1]) * row_mm)
        w = ((other[0] - vertex[0]) * column_mm, (other[1] - vertex[1]) * row_mm)
        cos = (u[0] * w[0] + u[1] * w[1]) / (math.hypot(*u) * math.hypot(*w))
        return math.degrees(math.acos(cos))  # the fitted scale is the same on both axes

    page.keyboard.press("a")
    for x, y in (arm, vertex, other):  # three clicks: an arm's end, the vertex, the other
        page.mouse.click(x, y)
    assert shown_angle(page) == pytest.approx(expected(), abs=0.2)
    page.screenshot(path=str(net.shots / "viewer-angle-fr.png"))
    # Pressed, dragged to the vertex, released, then a click: the same angle.
    page.keyboard.press("r")
    page.keyboard.press("a")
    page.mouse.move(*arm)
    page.mouse.down()
    page.mouse.move(*vertex, steps=5)
    page.mouse.up()
    page.mouse.click(*other)
    assert shown_angle(page) == pytest.approx(expected(), abs=0.2)
    page.context.close()


def with_a_localizer(folder: Path, slice_path: Path) -> None:
    """A one-image localizer (a scout) in the study of ``slice_path``, numbered before it."""
    ds = pydicom.dcmread(slice_path)
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.SeriesDescription = "Topogram 0.6 T20f"
    ds.save_as(folder / "localizer.dcm", enforce_file_format=True)


def test_the_reader_reads_a_ct_in_the_viewer(net: WebNet, chromium: Any) -> None:
    folder = net.base / "ct-series"
    folder.mkdir()
    slices = ct_series(folder, 12)
    with_a_localizer(folder, slices[0])
    pair = next(p["pair_id"] for p in net.koffi.ok("/pairs")["pairs"] if p["status"] == "active")
    case = net.submit(folder, {"routing": "pair", "target": pair})
    wait_for("the CT at Marie's node", lambda: net.marie.state(case) == "assigned")
    base = net.cluster.url(1)
    page = signed_in(chromium, base, "marie", "en", "/web/cases")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.click(f"a[href='/web/cases/{case}/viewer']")
    page.wait_for_url("**/viewer")
    page.goto(page.url + "?lang=en")  # Marie's account says French: English here
    page.wait_for_selector("#thumbs .thumb")
    # Series by their description, kept by de-identification (PS3.15 E.3.5, issue 22,
    # item 9); the 12-image series opens first, not the localizer numbered before it.
    page.wait_for_selector("#thumbs .thumb >> nth=1")
    thumbs = page.locator("#thumbs .thumb").all_inner_texts()
    assert [t.strip() for t in thumbs] == ["Topogram 0.6 T20f · 1", "5/5mm Plain · 12"], errors
    wait_text(page, "tl", "5/5mm Plain")
    clinical = page.inner_text("#clinical")  # the form beside the images
    assert FORM["question"] in clinical
    assert FORM["preliminary_reading"] in clinical
    assert page.inner_text("#form-age") == "4 years"
    page.wait_for_timeout(3000)
    assert not errors, errors
    wait_text(page, "tr", "Image 1/12")
    # 693_UNCI was once JPEG 2000 lossy (Lossy Image Compression 01): the badge says so.
    assert page.locator(".viewport.active .lossy").is_visible()
    markers = [page.inner_text(f".viewport.active .marker.{s}") for s in ("left", "right")]
    assert all(markers)  # patient orientation at the edges
    page.screenshot(path=str(net.shots / "viewer-en.png"))
    page.keyboard.press("End")  # scroll to the last slice
    wait_text(page, "tr", "Image 12/12")
    page.keyboard.press("ArrowUp")
    wait_text(page, "tr", "Image 11/12")
    page.keyboard.press("Home")
    wait_text(page, "tr", "Image 1/12")
    page.mouse.move(box_of(page)["x"] + 50, box_of(page)["y"] + 50)
    page.mouse.wheel(0, 120)
    wait_text(page, "tr", "Image 2/12")
    # Window by drag: the centre and the width move; then a preset.
    before = overlay(page, "bl")
    canvas = page.locator(".viewport.active canvas")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2 + 30, steps=6)
    page.mouse.up()
    assert overlay(page, "bl") != before
    page.click("#presets button[data-preset=lung]")
    wait_text(page, "bl", "W/L -600 / 1,500")
    # Zoom by drag, then fit.
    page.keyboard.press("z")
    page.mouse.move(box["x"] + 100, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 100, box["y"] + 100, steps=5)
    page.mouse.up()
    zoomed = overlay(page, "br")
    assert "Zoom 100 %" not in zoomed
    page.keyboard.press("f")
    wait_text(page, "br", "Zoom 100 %")
    # A distance of 200 screen pixels, horizontal, in mm from Pixel Spacing.
    page.keyboard.press("m")
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2 - 100, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 100, y, steps=4)
    page.mouse.up()
    ds = pydicom.dcmread(slices[0], stop_before_pixels=True)
    scale = min(box["width"] / ds.Columns, box["height"] / ds.Rows)  # fitted
    expected = 200 / scale * float(ds.PixelSpacing[1])
    shown = float(page.inner_text("#measure").split()[0])
    assert shown == pytest.approx(expected, rel=0.02)
    page.screenshot(path=str(net.shots / "viewer-measure-en.png"))
    # Cine: the frames go round by themselves.
    page.keyboard.press("Space")
    seen = {wait_text(page, "tr", f"Image {n}/12").split(" ·")[0] for n in (5, 9, 12, 3)}
    page.keyboard.press("Space")
    assert len(seen) == 4  # it went round
    assert "PatientName" in page.inner_text("#attributes")  # the anonymised attributes
    panel = page.inner_text("#attributes")
    assert re.search(r"PatientName\s+TSF\^", panel)  # the pseudonym, never the patient
    assert re.search(r"PatientIdentityRemoved\s+YES", panel)
    original = str(pydicom.dcmread(slices[0], stop_before_pixels=True).PatientName)
    assert original
    assert original not in panel  # what the sender's file said of the patient
    page.context.close()
    # The sender views his own case from the intake; nobody else's node serves it.
    koffi = Browser(net.cluster.url(0))
    koffi.sign_in("koffi")
    status, _, text = koffi.get(f"/web/cases/{case}/series")
    assert status == 200
    assert '"modality": "CT"' in text
    admin = Browser(net.cluster.url(0))
    admin.sign_in("it.cotonou")
    status, _, _ = admin.get(f"/web/cases/{case}/frames/0/0.jpg")
    assert status == 403


# --- issue 22, "Missing", first half ------------------------------------------------

LOCAL_REFERENCE = "Dossier 4711 AHOUANSOU Marie-Claire"


def files_holding(folder: Path, needle: bytes) -> list[Path]:
    """The files under ``folder`` (or ``folder`` itself) whose bytes contain ``needle``."""
    files = [folder] if folder.is_file() else [p for p in folder.rglob("*") if p.is_file()]
    return [p for p in files if needle in p.read_bytes()]


def the_case_is_in(page: str, table: str, case: str) -> bool:
    """Whether the list page shows the case in its table ``table`` (open or finished)."""
    found = re.search(rf'<table id="{table}"[^>]*>.*?</table>', page, re.S)
    return found is not None and f"/web/cases/{case}" in found[0]


def test_the_sender_recognises_the_patient_by_a_reference_that_never_leaves_his_node(
    net: WebNet,
) -> None:
    case = net.give_marie("local-reference", 1, local_reference=LOCAL_REFERENCE)
    koffi = Browser(net.cluster.url(0))
    koffi.sign_in("koffi")
    _, _, page = koffi.get("/web/cases")
    assert re.search(rf"{case[:8]}</a> · <span class=\"local-reference\">{LOCAL_REFERENCE}<", page)
    _, _, page = koffi.get(f"/web/cases/{case}")
    assert f'<dd id="local-reference">{LOCAL_REFERENCE}</dd>' in page
    # Read at Erasme and reported back: the whole round trip has gone by.
    net.marie.ok(f"/cases/{case}/report", "POST", REPORT)
    wait_for("the report at Koffi's node", lambda: net.koffi.state(case) == "report_delivered")
    marie = Browser(net.cluster.url(1))
    marie.sign_in("marie")
    assert "AHOUANSOU" not in marie.get(f"/web/cases/{case}")[2]
    assert "AHOUANSOU" not in json.dumps(net.marie.case(case))
    needle = b"AHOUANSOU"  # the patient's name, in any file's bytes
    node0, node1 = net.cluster.dirs
    assert files_holding(node1, needle) == []  # the reader's node: database, bundles, all
    assert files_holding(node1.parent / "node1.log", needle) == []
    assert files_holding(node0.parent / "node0.log", needle) == []  # never logged
    held = {p.name for p in files_holding(node0, needle)}
    assert held, "the sender's node keeps it (the grep finds what is there)"
    assert held <= {"node.db", "node.db-wal"}, held  # in its database only
    # Too long: refused with its reason, nothing sent.
    too_long = {"routing": "group", "target": net.paediatrics, "form": FORM}
    too_long["local_reference"] = "x" * 201
    status, refused = net.koffi.api("/cases", "POST", too_long)
    assert status == 400
    assert "local reference: at most 200 characters" in refused["error"]


def test_the_reader_reports_beside_the_images_and_the_sender_closes_the_case(
    net: WebNet, chromium: Any
) -> None:
    case = net.give_marie("to-close", 3)
    base0, base1 = net.cluster.url(0), net.cluster.url(1)
    marie = signed_in(chromium, base1, "marie", "fr", f"/web/cases/{case}")
    # The reader sees who sent it and from which hospital.
    assert marie.inner_text("#sent-by") == "koffi · Hôpital 0 · CHU Cotonou · CHU Cotonou"
    # In the viewer, the question beside the images, and the report written there:
    # previewed, then signed, without leaving it.
    marie.goto(f"{base1}/web/cases/{case}/viewer")
    marie.wait_for_selector("#thumbs .thumb")
    assert FORM["question"] in marie.inner_text("#clinical")
    marie.fill("#viewer-report #findings", REPORT["findings"])
    marie.fill("#viewer-report #impression", REPORT["impression"])
    marie.click("#viewer-report button[value=preview]")
    marie.wait_for_selector("#viewer-report #report-preview")
    assert REPORT["findings"] in marie.inner_text("#report-preview")
    marie.wait_for_selector("#thumbs .thumb")  # still the viewer, its images
    marie.click("#sign-report button")
    marie.wait_for_url("**/viewer?done=reported")
    assert marie.inner_text("#done") == "Compte rendu signé et envoyé."
    # On a phone, the panel folds below the images.
    marie.set_viewport_size({"width": 390, "height": 844})
    images = marie.locator("#viewports").bounding_box()
    panel = marie.locator("#panel").bounding_box()
    assert images is not None
    assert panel is not None
    assert panel["y"] >= images["y"] + images["height"] - 1
    marie.context.close()
    wait_for("the report at Koffi's node", lambda: net.koffi.state(case) == "report_delivered")
    koffi = signed_in(chromium, base0, "koffi", "fr", f"/web/cases/{case}")
    assert koffi.inner_text("#sent-to") == "Pédiatrie (radiologie pédiatrique)"  # its group
    assert koffi.get_attribute("#report-pdf", "href") == f"/web/cases/{case}/report.pdf"
    # Printed for the paper chart: the report without the page's header and forms.
    koffi.emulate_media(media="print")
    assert koffi.is_visible("section.report")
    for chrome in ("header", "#close-form", "#evaluation-form", "#open-viewer"):
        assert not koffi.is_visible(chrome), chrome
    koffi.emulate_media(media="screen")
    koffi.click("#close-case")
    koffi.wait_for_url("**?done=closed")
    assert koffi.inner_text("#done") == "Cas clos. Il reste lisible."
    assert koffi.inner_text("#state") == "clos"
    assert not koffi.locator("#close-case").count()
    koffi.context.close()
    # Out of the worklists, still readable, at both nodes.
    wait_for("the closing at Marie's node", lambda: net.marie.state(case) == "closed")
    for who, base in (("koffi", base0), ("marie", base1)):
        browser = Browser(base)
        browser.sign_in(who)
        _, _, page = browser.get("/web/cases")
        assert the_case_is_in(page, "finished-cases", case), who
        assert not the_case_is_in(page, "open-cases", case), who
        status, _, page = browser.get(f"/web/cases/{case}")
        assert status == 200
        assert REPORT["findings"] in page, who


def test_a_case_assigned_by_the_coordinator_appears_on_the_open_pages_without_reload(
    net: WebNet, chromium: Any
) -> None:
    """The open pages ask the node every POLL_S seconds (static/live.js): once the node
    holds the change, the test moves the pages' clock on by one interval rather than
    waiting for it (up to 15 s, twice), so their own timer asks at once."""
    base1 = net.cluster.url(1)
    anne = signed_in(chromium, base1, "anne", "fr", "/web/coordinator", clock=True)
    marie = signed_in(chromium, base1, "marie", "fr", "/web/cases", clock=True)
    for page in (anne, marie):
        page.evaluate("window.notReloaded = true")  # gone if the page were loaded again
    folder = net.base / "live-study"
    folder.mkdir()
    ct_series(folder, 1)
    case = net.submit(folder, {"routing": "group", "target": net.paediatrics})
    row = f"tr.case:has(a[href='/web/cases/{case}'])"
    wait_for("the case at Erasme", lambda: net.anne.state(case) == "delivered")
    for page in (anne, marie):
        page.clock.run_for(POLL_S * 1000)  # the pages' next question, now
    anne.wait_for_selector(row, timeout=90_000)  # arrived, drawn on the open page
    marie.wait_for_selector(row, timeout=90_000)  # offered to the group's readers
    assert "en attente d'un lecteur" in marie.inner_text(row)
    assert anne.evaluate("window.notReloaded") is True
    anne.select_option(f"{row} select[name=reader]", key_hex(net.marie.id))
    anne.click(f"{row} button")
    anne.wait_for_url("**/web/coordinator?done=assigned")
    assert anne.inner_text("#done") == "Cas attribué. Le lecteur le voit dans sa liste de travail."
    wait_for("the case Marie's", lambda: net.marie.state(case) == "assigned")
    marie.clock.run_for(POLL_S * 1000)
    marie.locator(row, has_text="en lecture").wait_for(timeout=60_000)
    assert marie.evaluate("window.notReloaded") is True
    marie.context.close()
    anne.context.close()


def test_people_of_the_same_name_are_told_apart_in_the_pickers(net: WebNet) -> None:
    """A second Dr "marie", a reader at Cotonou: the sender's picker says which is which."""
    twin = Person(net.cluster, 0, "marie", "reader", "Dr Marie Lectrice")
    records = Records(net.base / "twin", net.cluster)
    (net.base / "twin").mkdir()
    hospital_key = net.base / "cotonou-coordinator.key"  # CHU Cotonou's coordinator
    hospital = tsfnode("key", "show", net.base / "CHU Cotonou.key").stdout.split()[-1]
    records.attest(hospital_key, hospital, twin, "reader")
    request = urllib.request.Request(
        f"{net.cluster.url(0)}/api/v1/directory/records",
        data=records.write().read_bytes(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["added"] == 1
    koffi = Browser(net.cluster.url(0))
    koffi.sign_in("koffi")
    _, _, page = koffi.get("/web/pairs")
    options = re.findall(r'<option value="[^"]+">(marie[^<]*)</option>', page)
    assert sorted(options) == [
        "marie · Hôpital 0 · CHU Cotonou · CHU Cotonou",
        "marie · Hôpital 1 · Pédiatrie · CHU Cotonou",  # the harness's facility for all
    ], options


def test_the_sender_adds_a_second_study_to_a_sent_case_and_the_reader_sees_both(
    net: WebNet, chromium: Any
) -> None:
    case = net.give_marie("first-study", 2)
    second = net.base / "second-study"
    second.mkdir()
    files = ct_series(second, 3)  # a study of its own (its own UIDs)
    koffi = signed_in(chromium, net.cluster.url(0), "koffi", "fr", f"/web/cases/{case}")
    koffi.click("#add-study")
    koffi.wait_for_url(f"**/web/new?case={case}")
    assert koffi.locator("#age").count() == 0  # no second form: the case has one
    koffi.set_input_files("#pick-files", [str(f) for f in files])
    koffi.wait_for_selector("#studies input[name=study_uid]")
    koffi.locator("#studies input[name=study_uid]").first.check()
    while koffi.locator(".flag .check.pending").count():  # anything flagged: checked
        koffi.locator(".flag:has(.check.pending) button.confirm").first.click()
        koffi.wait_for_timeout(300)
    koffi.click("#submit")
    koffi.wait_for_url(f"**/web/cases/{case}?done=images_added")
    assert koffi.inner_text("#done").startswith("Étude ajoutée.")
    koffi.context.close()
    # Another bundle of the same case, at the reader's node; both studies in the viewer.
    wait_for("the second study at Marie's node", lambda: len(net.marie.case(case)["images"]) == 2)
    marie = Browser(net.cluster.url(1))
    marie.sign_in("marie")

    def both_listed() -> bool:
        status, _, listing = marie.get(f"/web/cases/{case}/series")
        return status == 200 and len(json.loads(listing)) == 2

    wait_for("both studies' series in Marie's viewer", both_listed)
    koffi_browser = Browser(net.cluster.url(0))  # and in the sender's, from his intake
    koffi_browser.sign_in("koffi")
    status, _, listing = koffi_browser.get(f"/web/cases/{case}/series")
    assert status == 200
    assert len(json.loads(listing)) == 2
