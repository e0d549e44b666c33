"""Signing in to the web application, in process, time moved by the node's clock: a
session's twelve hours, the CSRF token of forms, and pages refused to visitors and to
other roles. (The wait after failed sign-ins: tests/security/test_auth_sign_in.py.)"""

from __future__ import annotations

import re

import pytest

from tests.harness.inprocess import LocalNode
from tsfnode.auth.sessions import SESSION_MS

PAGES = {  # who may open each page of one node: the others are refused
    "/web/cases": ("koffi", "marie", "anne"),
    "/web/new": ("koffi",),
    "/web/pairs": ("koffi", "marie", "anne"),
    "/web/coordinator": ("anne",),
    "/web/admin": ("it.cotonou",),
    "/web/tools": ("koffi", "marie", "anne"),
}
ROLES = {"koffi": "sender", "marie": "reader", "anne": "coordinator", "it.cotonou": "admin"}


@pytest.fixture
async def node(local_node: LocalNode) -> LocalNode:
    for username, role in ROLES.items():
        await local_node.account(username, role)
    return local_node


async def test_a_session_lasts_twelve_hours(node: LocalNode) -> None:
    marie = await node.browser("marie")
    node.clock.advance(SESSION_MS - 1)
    status, url, _ = await marie.get("/web/cases")
    assert (status, url) == (200, "/web/cases")
    node.clock.advance(1)
    status, url, _ = await marie.get("/web/cases")
    assert status == 200
    assert url == "/web/login?next=/web/cases"  # signed out: back to the sign-in form


async def test_a_form_without_the_sessions_csrf_token_is_refused(node: LocalNode) -> None:
    marie = await node.browser("marie")
    await marie.get("/web/tools?lang=en")
    status, _, _ = await marie.post("/web/tools/tokens", {"label": "x", "days": "30"}, csrf=False)
    assert status == 403
    forged = {"csrf": "not-the-sessions", "label": "x", "days": "30"}
    status, _, _ = await marie.post("/web/tools/tokens", forged, csrf=False)
    assert status == 403
    status, _, page = await marie.get("/web/tools?lang=en")
    assert status == 200
    assert "tsf_" not in page  # no token was made
    status, _, _ = await (await node.browser()).post(  # nor a sign-in without its cookie
        "/web/login", {"csrf": "guess", "username": "marie", "password": "x" * 12}, csrf=False
    )
    assert status == 403


async def test_pages_are_refused_to_visitors_and_to_other_roles(node: LocalNode) -> None:
    browsers = {username: await node.browser(username) for username in ROLES}
    for path, allowed in PAGES.items():
        status, url, _ = await (await node.browser()).get(path)
        assert url.startswith("/web/login"), (path, status, url)
        for username, browser in browsers.items():
            status, _, text = await browser.get(path)
            if username in allowed:
                assert status == 200, (path, username)
            else:
                assert status == 403, (path, username, status)
                assert re.search("not for your role|pas pour votre rôle", text)
    # The uploader's calls too: a reader cannot start an upload on a sender's node.
    status, _, _ = await browsers["marie"].get("/web/uploads/" + "0" * 32)
    assert status == 403
