"""The app factory, in process, through aiohttp's test client."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from protocol.identity import Identity
from tsfnode.app import create_app
from tsfnode.config import NodeConfig
from tsfnode.node import init_node
from tsfnode.nodedir import NodeDir

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client) -> Client:  # type: ignore[no-untyped-def]
    config = NodeConfig(name="CHU Cotonou", country="BJ", http_port=0)
    identity = await asyncio.to_thread(init_node, tmp_path / "n", config)
    assert isinstance(identity, Identity)
    return await aiohttp_client(create_app(NodeDir(tmp_path / "n"), config, identity))


async def test_root_redirects_to_the_web_app(client: Client) -> None:
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/web/"


async def test_web_app_follows_the_browser_language(client: Client) -> None:
    fr = await client.get("/web/", headers={"Accept-Language": "fr-BE,fr;q=0.9,en;q=0.5"})
    assert fr.headers["Content-Language"] == "fr"
    assert "Identifiant du nœud" in await fr.text()
    en = await client.get("/web/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Node id" in await en.text()


async def test_language_choice_is_remembered_over_the_browser(client: Client) -> None:
    chosen = await client.get("/web/?lang=en", headers={"Accept-Language": "fr"})
    assert "Node id" in await chosen.text()
    assert chosen.cookies["lang"].value == "en"
    assert chosen.cookies["lang"]["httponly"]
    later = await client.get("/web/", headers={"Accept-Language": "fr"})
    assert later.headers["Content-Language"] == "en"


async def test_pages_are_light_and_fetch_nothing_from_outside(client: Client) -> None:
    response = await client.get("/web/")
    body = await response.read()
    assert len(body) < 150 * 1024
    assert b"http://" not in body
    assert b"https://" not in body
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


async def test_peer_and_api_sub_apps_expose_the_same_identity(client: Client) -> None:
    hello = await (await client.get("/peer/v1/hello")).json()
    node = await (await client.get("/api/v1/node")).json()
    health = await (await client.get("/healthz")).json()
    assert hello["id"] == node["id"] == health["id"]


async def test_changing_language_keeps_where_the_sign_in_leads(client: Client) -> None:
    # Signed out, a viewer's address leads to the sign-in page; choosing English there
    # must not lose where the person was going.
    asked = await client.get("/web/cases/" + "0" * 32 + "/viewer", allow_redirects=False)
    login = asked.headers["Location"]
    page = await (await client.get(login)).text()
    (link,) = re.findall(r'<a href="([^"]+)" hreflang="en"', page)
    assert link == "?next=%2Fweb%2Fcases%2F" + "0" * 32 + "%2Fviewer&amp;lang=en"


async def test_the_whole_address_comes_back_after_signing_in(client: Client) -> None:
    asked = await client.get("/web/cases?x=1&y=2", allow_redirects=False)
    assert asked.headers["Location"].endswith("x%3D1%26y%3D2")  # "&" not cut off
    page = await (await client.get(asked.headers["Location"])).text()
    assert 'name="next" value="/web/cases?x=1&amp;y=2"' in page
