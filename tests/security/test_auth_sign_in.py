"""Attacks on the web sign-in (issue 21), in process: the node's own application over
loopback, each caller a real source address of 127.0.0.0/8, time moved by the node's
clock.

- Someone elsewhere failing on a person's name must not keep that person out; failures
  on other names from one address must not keep out a hospital behind that address.
- Failures make the next attempt of the same name from the same address wait, longer
  each time up to a few minutes, and the refusal says when to try again.
- An unknown name costs the same argon2 work as a known one, done off the event loop.
"""

from __future__ import annotations

import re
import threading

import nacl.pwhash
import pytest

from tests.harness.inprocess import PASSWORD, LocalNode, WebBrowser
from tsfnode.auth.throttle import FIRST_WAIT_MS, FREE_FAILURES, MAX_WAIT_MS

ATTACKER, PERSON, HOSPITAL = "127.0.0.2", "127.0.0.3", "127.0.0.4"
TRIES = 30  # an attacker's attempts, bounded


async def attempt(
    browser: WebBrowser, username: str, password: str, lang: str = "en"
) -> tuple[int, str]:
    """One attempt through the real form: (status, the refusal shown, or the page's URL)."""
    await browser.get(f"/web/login?lang={lang}")
    status, url, page = await browser.post(
        "/web/login", {"username": username, "password": password}
    )
    found = re.search(r'<p class="error" role="alert">([^<]*)</p>', page)
    return status, found.group(1) if found else url


async def test_failures_from_elsewhere_never_keep_a_person_out(node: LocalNode) -> None:
    attacker = await node.browser(address=ATTACKER)
    statuses = [(await attempt(attacker, "marie", "guess"))[0] for _ in range(TRIES)]
    assert statuses[:FREE_FAILURES] == [401] * FREE_FAILURES
    assert set(statuses[FREE_FAILURES:]) == {429}  # the attacker waits, not marie
    marie = await node.browser(address=PERSON)
    assert await attempt(marie, "marie", PASSWORD) == (200, "/web/cases")


async def test_failures_on_other_names_never_keep_a_hospital_out(node: LocalNode) -> None:
    """Many failures from one address (a hospital behind NAT, or someone in it trying
    names) leave its other people free to sign in."""
    someone = await node.browser(address=HOSPITAL)
    for n in range(25):
        assert (await attempt(someone, f"nobody-{n}", "guess"))[0] == 401
    for _ in range(TRIES):  # and on one name, until it waits
        if (await attempt(someone, "marie", "guess"))[0] == 429:
            break
    koffi = await node.browser(address=HOSPITAL)
    assert await attempt(koffi, "koffi", PASSWORD) == (200, "/web/cases")


async def test_each_failure_makes_the_next_attempt_wait_longer_and_says_when(
    node: LocalNode,
) -> None:
    marie = await node.browser(address=PERSON)
    for _ in range(FREE_FAILURES):
        assert (await attempt(marie, "marie", "typo"))[0] == 401
    # Even the right password waits, and is told how long, in English and French.
    assert await attempt(marie, "marie", PASSWORD) == (
        429,
        "Too many attempts: try again in 15 s.",
    )
    node.clock.advance(10_000)
    assert await attempt(marie, "marie", PASSWORD, "fr") == (
        429,
        "Trop d'essais : réessayez dans 5 s.",  # an attempt while waiting adds nothing
    )
    node.clock.advance(5_000)
    waits = []
    wait_ms = FIRST_WAIT_MS
    for _ in range(8):  # each failure past the free ones doubles the wait, up to the cap
        assert (await attempt(marie, "marie", "typo"))[0] == 401
        status, said = await attempt(marie, "marie", PASSWORD)
        assert status == 429
        waits.append(said)
        wait_ms = min(2 * wait_ms, MAX_WAIT_MS)
        node.clock.advance(wait_ms)
    assert waits == [
        "Too many attempts: try again in 30 s.",
        "Too many attempts: try again in 1 min.",
        "Too many attempts: try again in 2 min.",
        "Too many attempts: try again in 4 min.",
        "Too many attempts: try again in 5 min.",
        "Too many attempts: try again in 5 min.",
        "Too many attempts: try again in 5 min.",
        "Too many attempts: try again in 5 min.",
    ]
    assert await attempt(marie, "marie", PASSWORD) == (200, "/web/cases")
    # Signed in: the failures before are forgotten.
    other = await node.browser(address=PERSON)
    assert (await attempt(other, "marie", "typo"))[0] == 401
    assert await attempt(other, "marie", PASSWORD) == (200, "/web/cases")


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every argon2 verification made: (the hash's parameters, the thread it ran in)."""
    calls: list[tuple[str, int]] = []
    verify = nacl.pwhash.verify

    def spy(encoded: bytes, password: bytes) -> bool:
        calls.append((encoded.decode().rsplit("$", 2)[0], threading.get_ident()))
        return bool(verify(encoded, password))

    monkeypatch.setattr(nacl.pwhash, "verify", spy)
    return calls


async def test_an_unknown_name_costs_the_same_argon2_work_as_a_known_one(
    node: LocalNode, hasher: list[tuple[str, int]]
) -> None:
    browser = await node.browser()
    assert (await attempt(browser, "marie", "guess"))[0] == 401
    assert (await attempt(browser, "nobody", "guess"))[0] == 401
    assert (await attempt(browser, "Not A Name!", "guess"))[0] == 401
    assert len(hasher) == 3  # one verification each, known name or not
    known, unknown, invalid = (params for params, _ in hasher)
    assert known.startswith("$argon2id$")
    assert unknown == invalid == known  # the same memory and passes: the same work


async def test_argon2_runs_off_the_event_loop(
    node: LocalNode, hasher: list[tuple[str, int]]
) -> None:
    browser = await node.browser()
    assert await attempt(browser, "marie", PASSWORD) == (200, "/web/cases")
    assert (await attempt(await node.browser(), "nobody", "guess"))[0] == 401
    assert len(hasher) == 2
    loop_thread = threading.get_ident()  # the test and the node share one event loop
    assert all(thread != loop_thread for _, thread in hasher)
