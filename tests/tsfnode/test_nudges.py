"""Nudges against silent pairs and groups: the pure rules (``cases/nudges.py``) with
their figures, and on a node in process the coordinator's page and e-mail (a real SMTP
server, aiosmtpd), once per nudge per week."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness.smtp import SmtpSink
from tests.tsfnode.test_mail import DAY_MS, start_cotonou
from tsfnode.appkeys import CASES
from tsfnode.cases.nudges import (
    WEEK_MS,
    MemberFacts,
    NudgeRules,
    PairFacts,
    ReaderFacts,
    nudges,
)

NOW = 1_800_000_000_000
RULES = NudgeRules(silent_weeks=4, quota_unused_weeks=3, escalated=3, escalated_of=5)
PAEDIATRICS = b"g" * 32


def pair(since_weeks: float, cases: int = 0, last_weeks: float | None = None) -> PairFacts:
    return PairFacts(
        pair_id=b"p" * 16,
        group=PAEDIATRICS,
        reader="Dr Awa",
        sender="Dr Koffi",
        since_ms=NOW - int(since_weeks * WEEK_MS),
        weekly_quota=3,
        cases=cases,
        last_case_ms=None if last_weeks is None else NOW - int(last_weeks * WEEK_MS),
    )


def test_a_pair_with_no_case_after_the_silent_weeks_is_a_nudge_with_its_weeks() -> None:
    assert nudges(NOW, RULES, [pair(since_weeks=3.9)]) == []
    (found,) = nudges(NOW, RULES, [pair(since_weeks=5.5)])
    assert (found.kind, found.group, found.subject) == ("silent_pair", PAEDIATRICS, b"p" * 16)
    assert found.figures == {"reader": "Dr Awa", "sender": "Dr Koffi", "weeks": 5}


def test_a_pair_whose_quota_sits_unused_is_a_nudge_and_an_active_pair_is_not() -> None:
    assert nudges(NOW, RULES, [pair(since_weeks=20, cases=4, last_weeks=1)]) == []
    (found,) = nudges(NOW, RULES, [pair(since_weeks=20, cases=4, last_weeks=3)])
    assert found.kind == "quota_unused"
    assert found.figures == {
        "reader": "Dr Awa",
        "sender": "Dr Koffi",
        "weeks": 3,
        "quota": 3,
        "cases": 4,
    }


def test_a_member_with_no_case_in_their_first_weeks_is_a_nudge() -> None:
    member = MemberFacts(b"m" * 32, PAEDIATRICS, "Dr Ines", "sender", NOW - 6 * WEEK_MS, 0)
    busy = MemberFacts(b"n" * 32, PAEDIATRICS, "Dr Jo", "reader", NOW - 6 * WEEK_MS, 2)
    new = MemberFacts(b"o" * 32, PAEDIATRICS, "Dr Lu", "reader", NOW - 1 * WEEK_MS, 0)
    (found,) = nudges(NOW, RULES, members=[member, busy, new])
    assert (found.kind, found.subject) == ("silent_member", b"m" * 32)
    assert found.figures == {"member": "Dr Ines", "weeks": 6}


@pytest.mark.parametrize(
    ("history", "escalated"),
    [
        ((True, True, False, False, False), None),  # 2 of 5
        ((True, True, True, False, False), 3),  # 3 of 5
        ((True, True, True, False, False, False, False, False), None),  # old ones forgotten
        ((True, True, True), 3),  # 3 of 3
    ],
)
def test_a_reader_whose_cases_are_repeatedly_escalated_is_a_nudge(
    history: tuple[bool, ...], escalated: int | None
) -> None:
    reader = ReaderFacts(b"r" * 32, PAEDIATRICS, "Dr Awa", history)
    found = nudges(NOW, RULES, readers=[reader])
    if escalated is None:
        assert found == []
    else:
        (nudge,) = found
        assert nudge.kind == "escalated_reader"
        last = history[-5:]
        assert nudge.figures == {"reader": "Dr Awa", "escalated": escalated, "of": len(last)}


def test_a_nudge_is_one_notice_per_week() -> None:
    (found,) = nudges(NOW, RULES, [pair(since_weeks=5)])
    assert found.key(NOW) == found.key(NOW + 1)
    assert found.key(NOW) != found.key(NOW + WEEK_MS)


async def test_the_coordinator_sees_a_silent_pair_on_their_page_and_by_email_once_a_week(
    tmp_path: Path, aiohttp_client: Any, sink: SmtpSink
) -> None:
    place = await start_cotonou(
        tmp_path / "cotonou", aiohttp_client, sink, mailing={"anne": "immediately"}
    )
    browser = await place.node.browser("anne")
    node = place.node
    status, _, page = await browser.get("/web/coordinator")
    assert status == 200
    assert "Rien à relancer" in page  # the pair was just agreed
    node.clock.advance(5 * WEEK_MS)
    browser = await node.browser("anne")  # (the session of 12 h is over)
    status, _, page = await browser.get("/web/coordinator")
    assert "Binôme Reader / Sender : aucun cas en 5 semaines" in page
    assert "Reader : aucun cas en 5 semaines" in page  # Awa, a reader of the group
    service = node.app[CASES]
    assert await service.send_nudges(node.clock.now_ms()) == 2
    messages = await place.wait_sent(2)
    assert {m["To"] for m in messages} == {"anne@example.org"}
    subjects = sorted(m["Subject"] for m in messages)
    assert subjects == [
        "[tsf · CHU Cotonou] Binôme Reader / Sender : aucun cas en 5 semaines",
        "[tsf · CHU Cotonou] Reader : aucun cas en 5 semaines",
    ]
    assert messages[0].get_content().strip().splitlines()[2].endswith("/web/coordinator")
    node.clock.advance(DAY_MS)  # the same week: not again
    assert await service.send_nudges(node.clock.now_ms()) == 0
    node.clock.advance(WEEK_MS)  # a week on, still silent: told again
    assert await service.send_nudges(node.clock.now_ms()) == 2
    # Once the pair exchanges a case, neither it nor its reader is silent.
    await place.case_for_awa()
    browser = await node.browser("anne")
    status, _, page = await browser.get("/web/coordinator")
    assert "aucun cas" not in page
    assert "Rien à relancer" in page
