"""What a doctor and a radiologist see of their cases in the browser (issue 22): the
stack opens head first, lists sort and filter without JavaScript, an urgent case is due
sooner and says so, times read in each person's time zone.

On CHU Cotonou's node in process (``cotonou`` of test_case_access: Koffi and Ines send,
Anne coordinates the paediatric group), with real DICOM files."""

from __future__ import annotations

import asyncio
import html
import json
import re
import shutil
from collections.abc import Awaitable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bootstrap.network import demo_anchor, load_network
from bootstrap.tools import admit_node
from tests.harness.data import PYDICOM_FILES, read_dicom
from tests.harness.people import FORM, PASSWORD
from tests.harness.studies import CT
from tests.harness.waiting import wait_until
from tests.tsfnode.test_case_access import Cotonou, _node_input, open_cotonou
from tests.tsfnode.test_case_access import cotonou as cotonou  # the fixture
from tsfnode.appkeys import DIRECTORY, IDENTITY, STORE
from tsfnode.auth.accounts import create_account
from tsfnode.auth.sessions import sign_in
from tsfnode.cases.service import STATS_AFTER_CHANGE_MS
from tsfnode.clock import CLOCK, Clock, ManualClock
from tsfnode.i18n import texts

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# A real CT of pydicom's (Routine Brain): its instance numbers run from the feet up
# (18 at z -99.5 mm, then 180, 181, 182 up to z 105.5 mm).
FEET_FIRST = PYDICOM_FILES / "dicomdirtests" / "77654033" / "CT2"
MR = PYDICOM_FILES / "MR_small.dcm"


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


async def _send(cotonou: Cotonou, source: Path, routing: str, **form: str) -> str:
    study = await asyncio.to_thread(_node_input, cotonou.node_dir, source)
    target = cotonou.pair if routing == "pair" else cotonou.paediatrics
    body = {"study_uid": study, "routing": routing, "target": target, "form": {**FORM, **form}}
    status, made = await cotonou.api("koffi", "POST", "/cases", body)
    assert status == 201, made
    return str(made["case_id"])


def _shown(page: str) -> list[str]:
    """The cases of a list page, in the order shown (their short ids)."""
    return re.findall(r'<tr class="case[^"]*">\s*<td><a href="/web/cases/([0-9a-f]{8})', page)


async def test_lists_sort_and_filter_by_their_address_and_urgent_cases_say_so(
    cotonou: Cotonou, tmp_path: Path
) -> None:
    routine = await _send(cotonou, CT, "pair")
    urgent = await _send(cotonou, MR, "pair", urgency="urgent", modality="MR", body_part="HEAD")
    group = await _send(cotonou, await asyncio.to_thread(_feet_first_copy, tmp_path / "ct2"),
                        "group", body_part="HEAD")  # fmt: skip
    ids = {name: case[:8] for name, case in (("r", routine), ("u", urgent), ("g", group))}

    async def page(who: str, query: str = "") -> str:
        status, body = await cotonou.web(who, "GET", f"/web/cases{query}")
        assert status == 200, body
        return html.unescape(body.decode())

    mine = await page("koffi")
    assert _shown(mine) == [ids["g"], ids["u"], ids["r"]]  # the sender's: newest first
    # The urgent case is marked by a word, not by a colour alone.
    (urgent_row,) = re.findall(
        rf'<tr class="case[^"]*">\s*<td><a href="/web/cases/{ids["u"]}.*?</tr>', mine, re.S
    )
    assert '<strong class="tag urgent">urgent</strong>' in urgent_row
    assert "urgent" not in "".join(
        re.findall(r'<tr class="case[^"]*">.*?</tr>', mine.replace(urgent_row, ""), re.S)
    )
    assert _shown(await page("koffi", "?urgency=urgent")) == [ids["u"]]
    assert _shown(await page("koffi", "?modality=CT")) == [ids["g"], ids["r"]]
    assert _shown(await page("koffi", "?urgency=routine&modality=CT&sort=group")) == [
        ids["g"],  # the paediatric group's, then the pair's
        ids["r"],
    ]
    by_urgency = await page("koffi", "?modality=&sort=urgency")
    assert _shown(by_urgency)[0] == ids["u"]
    # Every sort link keeps the filter; the form shows what was chosen.
    filtered = await page("koffi", "?modality=CT")
    assert 'href="?sort=due&modality=CT"' in filtered
    assert '<option value="CT" selected>' in filtered
    assert re.search(r'<option value="MR">MR</option>', filtered)  # still to choose from
    # Nothing matches: said so, with the way back to every case.
    none = await page("koffi", "?state=closed")
    assert 'id="none-shown"' in none
    assert "Aucun cas ne correspond à ces filtres." in none
    assert _shown(none) == []
    # A sort that does not exist is refused by name.
    status, body = await cotonou.web("koffi", "GET", "/web/cases?sort=colour")
    assert status == 400
    assert "Ordre de tri inconnu : « colour »" in body.decode()
    # The coordinator's cases to follow take the same address (and refuse the same).
    status, _ = await cotonou.web("anne", "GET", "/web/coordinator?urgency=urgent&sort=due")
    assert status == 200
    status, _ = await cotonou.web("anne", "GET", "/web/coordinator?sort=colour")
    assert status == 400


async def test_the_network_figures_follow_the_cases_without_waiting_an_hour(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    """The node signs its figures every hour (the default interval), and again at most
    STATS_AFTER_CHANGE_MS after a case moved. The node's clock is the test's: it is moved
    on by that much once the case is sent, rather than waited for (10 s), and the case
    loop looks every 100 ms ([cases] scan_interval_ms)."""
    clock = ManualClock(Clock().now_ms())
    cotonou = await open_cotonou(tmp_path, aiohttp_client, clock=clock, cases_scan_interval_ms=100)
    app = cotonou.client.server.app
    now = app[CLOCK].now_ms()
    identity = app[IDENTITY]  # admitted to the demo network: it signs its figures
    cert = admit_node(load_network("demo"), demo_anchor(), identity.public, now=now)
    assert (await app[DIRECTORY].add([cert], now))["added"] == 1
    await create_account(
        app[STORE], username="it", display_name="IT", role="admin", password=PASSWORD,
        language="en", now=now, people=cotonou.node_dir.people,
    )  # fmt: skip
    it = await sign_in(app[STORE], "it", PASSWORD, source="test", now=app[CLOCK].now_ms())
    cotonou.sessions["it"] = (it[0], it[1].csrf)

    async def sent_here() -> str:
        status, body = await cotonou.web("it", "GET", "/web/admin")
        assert status == 200
        network = html.unescape(body.decode()).split('id="network"')[1].split("</table>")[0]
        # this node's row, named by its id while its own record is not in the directory
        row = re.search(
            rf"<tbody><tr><td>{app[IDENTITY].public.text[:15]}</td><td>(\d+)</td>", network
        )
        return row.group(1) if row else ""

    assert await sent_here() == ""  # signed at the start, before it was admitted
    await _send(cotonou, CT, "pair")  # the stats interval is an hour (the default)
    clock.advance(STATS_AFTER_CHANGE_MS)  # not an hour
    await wait_until("the case in the figures", lambda: _is(sent_here(), "1"), within_s=60)


async def _is(value: Awaitable[str], expected: str) -> bool:
    return await value == expected


async def _choose_zone(cotonou: Cotonou, who: str, zone: str) -> tuple[int, str]:
    """``who`` chooses ``zone`` on their account page (the form, with its CSRF token)."""
    fields = {"csrf": cotonou.sessions[who][1], "timezone": zone}
    status, body = await cotonou.web(who, "POST", "/web/account/timezone", data=fields)
    return status, html.unescape(body.decode())


async def test_times_read_in_each_persons_time_zone(cotonou: Cotonou) -> None:
    case = await _send(cotonou, CT, "pair")
    status, found = await cotonou.api("koffi", "GET", f"/cases/{case}")
    assert status == 200
    submitted = found["submitted_ms"]
    fr = texts("fr")

    async def case_page(who: str) -> str:
        status, body = await cotonou.web(who, "GET", f"/web/cases/{case}")
        assert status == 200, body
        return html.unescape(body.decode())

    # Nobody chose yet: the node's zone (the system's, UTC here).
    assert fr.time(submitted) in await case_page("koffi")
    assert (await _choose_zone(cotonou, "koffi", "Africa/Porto-Novo"))[0] == 303
    assert (await _choose_zone(cotonou, "anne", "Europe/Brussels"))[0] == 303
    at_cotonou = fr.time(submitted, ZoneInfo("Africa/Porto-Novo"))
    at_brussels = fr.time(submitted, ZoneInfo("Europe/Brussels"))
    assert at_cotonou != at_brussels  # the zone is said (and in summer, the hour too)
    assert at_cotonou.endswith("UTC+1 (Porto-Novo)")
    assert at_brussels.endswith("(Bruxelles)")
    koffi, anne = await case_page("koffi"), await case_page("anne")
    assert at_cotonou in koffi
    assert at_brussels not in koffi
    assert at_brussels in anne
    assert at_cotonou not in anne
    mine = (await cotonou.web("koffi", "GET", "/web/cases"))[1].decode()
    assert html.escape(at_cotonou, quote=False) in mine  # every list and page alike
    # The account page shows the choice; an unknown zone is refused by name, kept typed.
    status, page = await cotonou.web("koffi", "GET", "/web/account")
    assert 'value="Africa/Porto-Novo"' in page.decode()
    status, page_text = await _choose_zone(cotonou, "koffi", "Mars/Olympus_Mons")
    assert status == 400
    assert "Fuseau horaire inconnu" in page_text
    assert 'value="Mars/Olympus_Mons"' in page_text
    assert at_cotonou in await case_page("koffi")  # the refused zone changed nothing


def test_a_summer_time_reads_an_hour_apart_at_cotonou_and_brussels() -> None:
    july = 1_783_000_000_000  # 2 July 2026, 13:46 UTC
    en = texts("en")
    assert en.time(july) == "2 Jul 2026, 13:46 UTC"
    assert en.time(july, ZoneInfo("Africa/Porto-Novo")) == "2 Jul 2026, 14:46 UTC+1 (Porto-Novo)"
    assert en.time(july, ZoneInfo("Europe/Brussels")) == "2 Jul 2026, 15:46 UTC+2 (Brussels)"
