"""The README's demo tour, walked end to end in Debian's Chromium, in French and English,
on a laptop (1366x768) and a phone (390x844), against two real nodes on loopback (the
network of test_web.py: Cotonou with Dr Koffi; Erasme with Dr Anne, coordinator of the
paediatric group, and Dr Marie, its reader):

Koffi sends a photo of a film to the paediatric group, urgent, with its clinical form; Anne
assigns the case to Marie; Marie finds it in her worklist, reads it and signs a report;
Koffi reads the report on his case page.

At each step a person's checks: the text on the page, nothing wider than the screen, no
control too small to touch on the phone, no English left on a French page. A screenshot
of each step is saved under ``$TSF_ARTEFACTS`` (default ``test-artefacts/`` in the
repository, git-ignored), one folder per walk. The four walks share one network.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.harness.people import FORM, PASSWORD
from tests.harness.waiting import wait_for
from tests.tsfnode.test_web import WebNet, chromium, fill_form, net, reload_until
from tsfnode.i18n import LOCALE_DIR

__all__ = ["chromium", "net"]  # the fixtures of test_web.py, shared

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VIEWPORTS = {"laptop": (1366, 768), "phone": (390, 844)}
URGENT_DUE_MS = 24 * 3_600_000
SMALLEST_CONTROL_PX = 24  # WCAG 2.2 target size (minimum)


@pytest.fixture(scope="module")
def artefacts() -> Path:
    folder = Path(os.environ.get("TSF_ARTEFACTS") or ROOT / "test-artefacts") / "tour"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@functools.cache
def english_only() -> frozenset[str]:
    """Texts of the English catalogue that French never says (several words each)."""
    from babel.messages.pofile import read_po

    def texts(lang: str) -> dict[str, str]:
        with (LOCALE_DIR / lang / "LC_MESSAGES" / "tsfnode.po").open("rb") as po:
            return {str(m.id): str(m.string) for m in read_po(po) if m.id and m.string}

    en, fr = texts("en"), texts("fr")
    french = set(fr.values())
    return frozenset(
        text
        for key, text in en.items()
        if text != fr.get(key) and text not in french and len(text.split()) >= 2
        and "{" not in text and len(text) <= 60
    )  # fmt: skip


class Walk:
    """One person's browser in one walk: every step checked and photographed."""

    def __init__(self, browser: Any, base: str, lang: str, size: str, shots: Path) -> None:
        width, height = VIEWPORTS[size]
        self.context = browser.new_context(locale=lang, viewport={"width": width, "height": height})
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.base, self.lang, self.size, self.shots = base, lang, size, shots
        self.width = width

    def sign_in(self, username: str, path: str) -> None:
        page = self.page
        page.goto(f"{self.base}/web/login?lang={self.lang}")  # the walk's language, kept
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        page.goto(f"{self.base}{path}")

    def step(self, name: str, *expected: str) -> str:
        """The page as a person checks it; a screenshot of it. Its text."""
        page = self.page
        page.wait_for_load_state()
        page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)
        text = str(page.inner_text("body"))
        for wanted in expected:
            assert wanted in text, (name, wanted)
        assert page.evaluate("document.documentElement.lang") == self.lang, name
        wide = page.evaluate("document.scrollingElement.scrollWidth")
        assert wide <= page.evaluate("window.innerWidth"), (name, wide)  # no sideways scroll
        if self.size == "phone":
            small = page.evaluate(
                """min => [...document.querySelectorAll(
                    'main button, main select, main input:not([type=hidden]):not([type=radio])'
                    + ':not([type=checkbox]):not([type=file]), main textarea, header button')]
                  .filter(e => e.offsetParent !== null)
                  .map(e => [e.id || e.name || e.textContent.trim().slice(0, 20),
                             e.getBoundingClientRect().height])
                  .filter(([, h]) => h < min)""",
                SMALLEST_CONTROL_PX,
            )
            assert not small, (name, small)
        if self.lang == "fr":
            english = sorted(e for e in english_only() if e in text)
            assert not english, (name, english)
        return text

    def close(self) -> None:
        self.context.close()


def _reader_option(page: Any) -> str:
    return str(
        page.locator("select[name=reader] option", has_text="Marie").first.get_attribute("value")
    )


@pytest.mark.parametrize("size", list(VIEWPORTS))
@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_demo_tour_end_to_end(
    net: WebNet, chromium: Any, artefacts: Path, lang: str, size: str
) -> None:
    shots = artefacts / f"{lang}-{size}"
    shots.mkdir(exist_ok=True)
    cotonou, erasme = net.cluster.url(0), net.cluster.url(1)
    words = WORDS[lang]
    # 1. Koffi, at Cotonou, sends a photo of a film to the paediatric group.
    koffi = Walk(chromium, cotonou, lang, size, shots)
    koffi.sign_in("koffi", "/web/new")
    koffi.step("1-new-case", words["new_case"])
    page = koffi.page
    page.set_input_files("#pick-files", [str(net.photo)])
    fill_form(page)
    page.check("input[name=urgency][value=urgent]")  # an urgent case: due within 24 h
    page.wait_for_selector("#studies input[name=study_uid]")
    page.wait_for_selector(".flag .check.pending")
    for _ in range(10):  # each image that may show identity: checked
        if not page.locator(".flag .check.pending").count():
            break
        page.locator(".flag:has(.check.pending) button.confirm").first.click()
        page.wait_for_timeout(300)
    page.locator("#studies input[name=study_uid]").first.check()
    page.locator("input[name=route][value^='group:']").first.check()
    koffi.step("2-form-filled")
    assert page.input_value("#question") == FORM["question"]
    page.click("#submit")
    page.wait_for_url("**/web/cases/*")
    case_url = page.url.split("?")[0]
    case = case_url.rsplit("/", 1)[1]
    koffi.step("3-case-sent", words["sent"])
    page.goto(f"{cotonou}/web/cases")
    koffi.step("4-my-cases", words["my_cases"], case[:8])

    # 2. Anne, at Erasme, assigns it to Marie.
    anne = Walk(chromium, erasme, lang, size, shots)
    anne.sign_in("anne", "/web/coordinator")
    reload_until(anne.page, f"a[href='/web/cases/{case}']", "the case at the coordinator's")
    anne.step("5-coordinator", words["to_follow"], case[:8])
    row = anne.page.locator("tr.case", has=anne.page.locator(f"a[href='/web/cases/{case}']"))
    row.locator("select[name=reader]").select_option(_reader_option(row))
    row.locator("form button").click()
    anne.page.wait_for_load_state()
    anne.close()

    # 3. Marie, at Erasme, finds it in her worklist, reads it and signs a report.
    marie = Walk(chromium, erasme, lang, size, shots)
    marie.sign_in("marie", "/web/cases")
    wait_for(
        "the case assigned to Marie",
        lambda: net.marie.case(case)["state"] == "assigned",
    )
    reload_until(marie.page, f"a[href='/web/cases/{case}']", "the case in Marie's worklist")
    marie.step("6-worklist", words["worklist"], case[:8])
    row = marie.page.locator("tr.case", has=marie.page.locator(f"a[href='/web/cases/{case}']"))
    assert row.locator(".tag.urgent").inner_text().lower() == "urgent"  # a word, not a colour
    found = net.marie.case(case)
    assert found["due_ms"] - found["delivered_ms"] == URGENT_DUE_MS  # not the group's 72 h
    marie.page.click(f"a[href='/web/cases/{case}']")
    marie.page.wait_for_selector("#report-form")
    marie.step("7-case-to-read", FORM["question"])
    marie.page.fill("#findings", "Opacité alvéolaire basale droite.")
    marie.page.fill("#impression", "Pneumopathie basale droite.")
    marie.page.click("#report-form button[type=submit]")
    marie.page.wait_for_selector("#report-preview")
    marie.step("8-report-preview", "Pneumopathie basale droite.")
    marie.page.click("#sign-report button[type=submit]")
    marie.page.wait_for_selector("section.report")
    marie.step("9-report-signed", "Pneumopathie basale droite.")
    marie.close()

    # 4. Koffi reads the report on his case page.
    page.goto(case_url)
    reload_until(page, "section.report", "the report back at Cotonou")
    text = koffi.step("10-report-back", "Pneumopathie basale droite.", words["report_back"])
    assert re.search(r"UTC", text)  # times say their zone
    # A photo's patient is known by nothing but a made-up id: none is shown as his, nor
    # the English " : " of a French label.
    assert "photos:" not in text
    assert ("Qualité des images : " if lang == "fr" else "Image quality: ") in text
    koffi.close()


WORDS = {
    "fr": {
        "new_case": "Nouveau cas",
        "sent": "Envoyé",
        "my_cases": "Mes cas",
        "to_follow": "Cas à suivre",
        "worklist": "Liste de travail",
        "report_back": "Réponse reçue",
    },
    "en": {
        "new_case": "New case",
        "sent": "Submitted",
        "my_cases": "My cases",
        "to_follow": "Cases to follow",
        "worklist": "Worklist",
        "report_back": "Report back",
    },
}
