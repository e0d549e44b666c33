"""What people expect of the pages around the work, in French and English: a way in from
the node's page, an icon, refusals (403) and unknown addresses (404) as pages of the site
in the person's language with somewhere to go, empty pages that say what to do next,
charts that name their units (and say "no data" rather than 0), sizes in the unit their
magnitude calls for.

In process (``local_node``); the browser test drives Debian's Chromium against the same
in-process node and saves screenshots at 1366x768 and 390x844."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from protocol.cases import Case, Routing, State
from tests.harness.inprocess import START_MS, LocalNode
from tsfnode.i18n import texts
from tsfnode.store.cases import CaseRow
from tsfnode.web.charts import quality_charts

CHROMIUM = Path("/usr/bin/chromium")  # Debian's (.ci/run installs it)
PAGE = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser asks


def page_headers(lang: str) -> dict[str, str]:
    return {**PAGE, "Accept-Language": lang}


@pytest.mark.parametrize(
    ("lang", "sign_in", "join"),
    [("fr", "Connexion", "Demander à rejoindre"), ("en", "Sign in", "Apply to join")],
)
async def test_the_node_page_shows_the_way_in(
    local_node: LocalNode, lang: str, sign_in: str, join: str
) -> None:
    visitor = await local_node.browser()
    status, _, page = await visitor.get("/web/", **page_headers(lang))
    assert status == 200
    assert re.search(rf'<a class="button" href="/web/login">{sign_in}</a>', page), page
    assert join in page
    await local_node.account("koffi", "sender", language=lang)
    koffi = await local_node.browser("koffi")
    status, _, page = await koffi.get("/web/", **page_headers(lang))
    assert 'href="/web/cases"' in page  # signed in: to their own page, not the sign-in
    assert 'href="/web/login"' not in page


async def test_the_node_has_an_icon(local_node: LocalNode) -> None:
    async with local_node.client.get("/favicon.ico") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/svg+xml"
        assert (await response.text()).startswith("<svg")
    visitor = await local_node.browser()
    _, _, page = await visitor.get("/web/login")
    assert '<link rel="icon" href="/web/static/favicon.svg" type="image/svg+xml">' in page
    async with local_node.client.get("/web/static/favicon.svg") as response:
        assert response.status == 200


@pytest.mark.parametrize(
    ("lang", "title", "why", "home"),
    [
        ("fr", "Accès refusé", "Cette page n'est pas pour votre rôle", "Votre page d'accueil"),
        ("en", "Not for you", "This page is not for your role", "Your home page"),
    ],
)
async def test_a_page_of_another_role_is_refused_by_a_page_in_the_persons_language(
    local_node: LocalNode, lang: str, title: str, why: str, home: str
) -> None:
    await local_node.account("koffi", "sender", language=lang)
    koffi = await local_node.browser("koffi")
    status, _, page = await koffi.get("/web/admin", **PAGE)
    assert status == 403
    assert f'<html lang="{lang}">' in page
    assert f"<h1>{title}</h1>" in page
    assert why in page
    assert "pas pour votre rôle" not in page or lang == "fr"  # never both languages
    assert f'<a href="/web/cases">{home}</a>' in page  # somewhere to go
    assert 'action="/web/logout"' in page  # the navigation of every page, signed in
    assert "403" in page
    # The uploader's and the scripts' calls keep their plain answer.
    status, _, text = await koffi.get("/web/admin")
    assert status == 403
    assert "<html" not in text


@pytest.mark.parametrize(
    ("lang", "title", "sign_in"),
    [("fr", "Page introuvable", "Connexion"), ("en", "Page not found", "Sign in")],
)
@pytest.mark.parametrize("path", ["/web/no-such-page", "/no-such-page"])
async def test_an_unknown_address_answers_a_page_in_the_visitors_language(
    local_node: LocalNode, lang: str, title: str, sign_in: str, path: str
) -> None:
    visitor = await local_node.browser()
    status, _, page = await visitor.get(path, **page_headers(lang))
    assert status == 404
    assert f'<html lang="{lang}">' in page
    assert f"<h1>{title}</h1>" in page
    assert "404: Not Found" not in page
    assert f">{sign_in}</a>" in page
    assert 'href="/web/">' in page
    # Signed in: the page has the person's navigation and their own home.
    await local_node.account("marie", "reader", language=lang)
    marie = await local_node.browser("marie")
    status, _, page = await marie.get(path, **PAGE)
    assert status == 404
    assert f"<h1>{title}</h1>" in page
    assert 'action="/web/logout"' in page
    # The JSON API and scripts keep their plain answers.
    status, _, text = await visitor.get("/api/v1/no-such-thing", **PAGE)
    assert status == 404
    assert "<html" not in text


@pytest.mark.parametrize(
    ("lang", "sender_next", "reader_next"),
    [
        ("fr", "commencez un nouveau cas", "proposez un binôme"),
        ("en", "start a new case", "propose a pair"),
    ],
)
async def test_empty_pages_say_what_to_do_next(
    local_node: LocalNode, lang: str, sender_next: str, reader_next: str
) -> None:
    await local_node.account("koffi", "sender", language=lang)
    await local_node.account("marie", "reader", language=lang)
    koffi = await local_node.browser("koffi")
    _, _, page = await koffi.get("/web/cases")
    assert sender_next in page
    assert '<a class="button" href="/web/new">' in page
    marie = await local_node.browser("marie")
    _, _, page = await marie.get("/web/cases")
    assert reader_next in page
    assert '<a class="button" href="/web/pairs">' in page


def row(pair: bytes, minutes: float | None, useful: int | None) -> CaseRow:
    submitted = START_MS - 86_400_000
    case = Case(
        case_id=pair + b"case",
        sender=b"s" * 32,
        routing=Routing.PAIR,
        target=b"r" * 32,
        delay_ms=48 * 3_600_000,
        state=State.DELIVERED,
        submitted_ms=submitted,
        delivered_ms=submitted,
        report_back_ms=None if minutes is None else submitted + int(minutes * 60_000),
    )
    return CaseRow(
        case=case,
        role="sender",
        pair_id=pair,
        sender_node=b"n" * 32,
        urgent=False,
        study_uid="",
        recipients=(),
        form_json="{}",
        image_quality="adequate",
        useful=None if useful is None else bool(useful),
        updated_ms=submitted,
    )


def labels_of(svg: str) -> list[str]:
    """The texts of an SVG chart (matplotlib keeps them as text)."""
    return [t.strip() for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)] + re.findall(
        r"<!-- (.*?) -->", svg
    )


@pytest.mark.parametrize(
    ("lang", "no_data", "minutes", "hours"),
    [("fr", "pas de données", "9 min", "1,5 h"), ("en", "no data", "9 min", "1.5 h")],
)
def test_charts_name_their_units_and_say_when_there_is_no_data(
    lang: str, no_data: str, minutes: str, hours: str
) -> None:
    _ = texts(lang)
    names = {b"a" * 16: "Koffi + Marie", b"b" * 16: "Aminata + Jean"}
    # Nine minutes for one pair, nothing back yet for the other; nobody evaluated.
    quick = quality_charts(
        [row(b"a" * 16, 9, None), row(b"b" * 16, None, None)], names, _, START_MS
    )
    turnaround = labels_of(quick["turnaround"])  # each text of the chart
    assert minutes in turnaround
    assert "0 h" not in turnaround
    assert no_data in turnaround  # the pair with no report back
    assert "min" in turnaround  # the axis says its unit
    assert not any(word in text for text in turnaround for word in ("hours", "heures"))
    useful = labels_of(quick["useful"])
    assert useful.count(no_data) == 2  # not "0 %"
    assert "0 %" not in useful
    # Ninety minutes and three hours: hours, with the language's decimal sign.
    slow = quality_charts([row(b"a" * 16, 90, 1), row(b"b" * 16, 180, 0)], names, _, START_MS)
    assert hours in labels_of(slow["turnaround"])
    assert "h" in labels_of(slow["turnaround"])
    assert {"100 %", "0 %"} <= set(labels_of(slow["useful"]))  # measured: 0 % is true


def _xs(svg_part: str) -> list[float]:
    """The x of every point drawn in a part of a matplotlib SVG (paths, marks, texts)."""
    return [float(x) for x in re.findall(r'(?:[ML] |x=")(-?[0-9.]+)', svg_part)]


def test_chart_legends_stand_outside_the_plot_area() -> None:
    names = {b"a" * 16: "Koffi + Marie", b"b" * 16: "Aminata + Jean"}
    rows = [row(b"a" * 16, 9, 1), row(b"b" * 16, 90, 0), row(b"b" * 16, 30, None)]
    charts = quality_charts(rows, names, texts("fr"), START_MS)
    for name in ("quality", "volume"):
        svg = charts[name]
        plot = re.search(r'<g id="patch_2">\s*<path d="([^"]*)"', svg)
        assert plot is not None, name
        right = max(_xs(plot.group(1)))  # the plot area's right edge
        legend = svg[svg.index('<g id="legend_1">') :]
        legend = legend[: legend.index("<defs>")] if "<defs>" in legend else legend
        assert min(_xs(legend)) > right, name  # every mark and label of it beyond
        assert "<text" in legend  # labelled


@pytest.mark.parametrize(
    ("lang", "small", "medium", "progress"),
    [("fr", "13 ko", "7,4 Mo", "0,0 / 11,1 Mo"), ("en", "13 kB", "7.4 MB", "0.0 / 11.1 MB")],
)
def test_sizes_are_in_the_unit_their_magnitude_calls_for(
    lang: str, small: str, medium: str, progress: str
) -> None:
    _ = texts(lang)
    assert _.size(12_345) == small  # a small file is never "0 Mo"
    assert _.size(1) == small.replace("13", "1")
    assert _.size(7_376_145) == medium
    assert _.sizes(0, 11_100_000) == progress
    assert _.size(2_500_000_000).endswith(("Go", "GB"))


@pytest.mark.slow
async def test_the_new_pages_in_chromium_on_a_laptop_and_a_phone(
    local_node: LocalNode, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    found = await asyncio.to_thread(CHROMIUM.exists)
    assert found, "the browser tests need Debian's chromium: apt-get install chromium"
    await local_node.account("koffi", "sender", language="fr")
    await local_node.account("marie", "reader", language="en")
    base = str(local_node.client.make_url("")).rstrip("/")
    shots = tmp_path / "screenshots"
    await asyncio.to_thread(shots.mkdir)
    seen: dict[str, str] = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            for width, height in ((1366, 768), (390, 844)):
                for username, lang, visits in (
                    (None, "fr", ("/web/", "/web/nowhere")),
                    ("koffi", "fr", ("/web/cases", "/web/admin")),
                    ("marie", "en", ("/web/cases", "/web/nowhere")),
                ):
                    context = await browser.new_context(
                        locale=lang, viewport={"width": width, "height": height}
                    )
                    page = await context.new_page()
                    if username:
                        await page.goto(f"{base}/web/login")
                        await page.fill("#username", username)
                        await page.fill("#password", "correct horse battery")
                        await page.click("button[type=submit]")
                        await page.wait_for_url("**/web/cases")
                    for path in visits:
                        response = await page.goto(f"{base}{path}")
                        assert response is not None
                        name = f"{username or 'visitor'}{path.replace('/', '-')}-{width}x{height}"
                        await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                        seen[name] = await page.inner_text("main")
                        # Nothing wider than the screen (the phone's included).
                        scroll = await page.evaluate("document.documentElement.scrollWidth")
                        assert scroll <= width, (name, scroll)
                    icon = await page.evaluate(
                        "fetch('/favicon.ico').then(r => r.headers.get('content-type'))"
                    )
                    assert icon == "image/svg+xml"
                    await context.close()
        finally:
            await browser.close()
    assert "Connexion" in seen["visitor-web--1366x768"]
    assert "Page introuvable" in seen["visitor-web-nowhere-390x844"]
    assert "Accès refusé" in seen["koffi-web-admin-1366x768"]
    assert "commencez un nouveau cas" in seen["koffi-web-cases-390x844"]
    assert "Page not found" in seen["marie-web-nowhere-1366x768"]
    assert "propose a pair" in seen["marie-web-cases-390x844"]
    print(f"screenshots: {shots}")  # noqa: T201 - where the artefacts are
