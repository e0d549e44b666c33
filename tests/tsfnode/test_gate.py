"""One gate per sub-application (tsfnode/auth/gate.py), in process: every route is public,
signed, for this machine only, or behind the sub-application's sign-in; nothing else."""

from __future__ import annotations

import asyncio
import itertools
import re
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from protocol.identity import Identity
from tsfnode.app import create_app
from tsfnode.auth.gate import PRINCIPAL, Gate, is_loopback
from tsfnode.config import NodeConfig
from tsfnode.node import init_node
from tsfnode.nodedir import NodeDir

Client = TestClient[web.Request, web.Application]

# What each sub-application answers without credentials, listed here on purpose: a route
# added to the node shows up in this test and must be put in one of these, or be gated.
WEB_PUBLIC = {("GET", "/web/"), ("GET", "/web/login"), ("POST", "/web/login")}
WEB_PUBLIC |= {("POST", "/web/logout"), ("GET", "/web/join"), ("POST", "/web/join")}
API_PUBLIC = {("GET", "/api/v1/node")}
API_LOCAL = {
    ("GET", "/api/v1/peers"),
    ("GET", "/api/v1/directory"),
    ("POST", "/api/v1/directory/records"),
    ("GET", "/api/v1/transfers"),
    ("POST", "/api/v1/transfers/outbox"),  # `tsfnode seal`: look at the outbox now
}


@pytest.fixture
async def app(tmp_path: Path) -> web.Application:
    config = NodeConfig(name="CHU Cotonou", country="BJ", http_port=0)
    identity = await asyncio.to_thread(init_node, tmp_path / "n", config)
    assert isinstance(identity, Identity)
    return create_app(NodeDir(tmp_path / "n"), config, identity)


@pytest.fixture
async def client(app: web.Application, aiohttp_client) -> Client:  # type: ignore[no-untyped-def]
    return await aiohttp_client(app)


SAMPLES = {  # values the routes' patterns accept, by the name of the part
    "id": ("0" * 32, "1"),
    "batch": ("0" * 32,),
    "frames": ("1",),
    "tag": ("7FE00010",),
}


def routes_of(app: web.Application, prefix: str) -> list[tuple[str, str]]:
    """(method, a concrete path the route matches) of every route of the sub-application at
    ``prefix``."""
    out = []
    for resource in app.router.resources():
        if not isinstance(resource, web.PrefixedSubAppResource) or resource.canonical != prefix:
            continue
        for route in resource:
            if route.method == "HEAD" or isinstance(route.resource, web.StaticResource):
                continue
            assert route.resource is not None
            out.append((route.method, _concrete(route.resource.get_info())))
    assert out, f"no route under {prefix}"
    return out


def _concrete(info: dict[str, object]) -> str:
    if "path" in info:
        return str(info["path"])
    formatter, pattern = str(info["formatter"]), info["pattern"]
    assert isinstance(pattern, re.Pattern)
    names = re.findall(r"\{(\w+)\}", formatter)
    choices = []
    for name in names:
        words = re.search(rf"\(\?P<{name}>([a-z|]+)\)", pattern.pattern)  # claim|report|...
        choices.append(
            (words.group(1).split("|")[0],) if words else SAMPLES.get(name, ("1.2.3", "1"))
        )
    for values in itertools.product(*choices):
        path = formatter.format(**dict(zip(names, values, strict=True)))
        if pattern.fullmatch(path):
            return path
    raise AssertionError(f"no sample path for {formatter}")


async def test_every_web_page_but_the_public_ones_asks_to_sign_in(
    app: web.Application, client: Client
) -> None:
    for method, path in routes_of(app, "/web"):
        response = await client.request(method, path, allow_redirects=False)
        if (method, path) in WEB_PUBLIC:
            assert response.status in (200, 303, 400, 403), (method, path, response.status)
            continue
        assert response.status == 303, (method, path, response.status)
        assert response.headers["Location"].startswith("/web/login?next=/web/"), path


async def test_every_api_call_but_the_node_and_the_operators_needs_a_token(
    app: web.Application,
    client: Client,
    aiohttp_client,  # type: ignore[no-untyped-def]
) -> None:
    for n, (method, path) in enumerate(routes_of(app, "/api")):
        # Each forged token from its own address: an address that presents bad tokens
        # soon waits (429) before its next one is looked at (tests/security).
        connector = aiohttp.TCPConnector(local_addr=(f"127.0.{1 + n // 200}.{1 + n % 200}", 0))
        caller = await aiohttp_client(client.server, connector=connector)
        response = await caller.request(
            method, path, headers={"Authorization": "Bearer tsf_forged"}
        )
        if (method, path) in API_PUBLIC | API_LOCAL:
            assert response.status != 401, (method, path)
            continue
        assert response.status == 401, (method, path, response.status)
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), path
        assert "jeton" in await response.text()  # said in both languages


async def test_every_dicomweb_call_needs_a_session_or_a_token(
    app: web.Application, client: Client
) -> None:
    for method, path in routes_of(app, "/dicomweb"):
        response = await client.request(method, path)
        assert response.status == 401, (method, path, response.status)
        assert "Bearer" in response.headers["WWW-Authenticate"], path


async def test_operator_views_answer_this_machine(client: Client) -> None:
    # The test client comes from 127.0.0.1: the CLI and the admin's tools work.
    transfers = await client.get("/api/v1/transfers")
    assert transfers.status == 200
    assert await transfers.json() == []
    peers = await client.get("/api/v1/peers")
    assert peers.status == 200


@pytest.mark.parametrize(
    ("remote", "local"),
    [
        ("127.0.0.1", True),
        ("127.0.0.42", True),
        ("::1", True),
        ("10.0.0.5", False),
        ("192.168.1.20", False),
        ("2001:db8::1", False),
        ("", False),
        (None, False),
        ("not an address", False),
    ],
)
def test_loopback_is_this_machine_and_nothing_else(remote: str | None, local: bool) -> None:
    assert is_loopback(remote) is local


async def test_a_sub_application_that_cannot_sign_in_must_classify_every_route() -> None:
    async def listed(request: web.Request) -> web.Response:
        return web.Response(text="listed")

    async def forgotten(request: web.Request) -> web.Response:
        return web.Response(text="forgotten")

    app = web.Application()
    app.router.add_get("/listed", listed)
    app.router.add_get("/forgotten", forgotten)
    Gate.of(public=[listed]).install(app)
    server = TestServer(app, host="127.0.0.1")
    with pytest.raises(RuntimeError, match="/forgotten is not classified"):
        await server.start_server()
    await server.close()


async def test_a_route_not_listed_is_behind_the_sign_in() -> None:
    async def who(request: web.Request) -> web.Response:
        return web.Response(text=str(request[PRINCIPAL]))

    async def sign_in(request: web.Request) -> object:
        if request.headers.get("Authorization") != "Bearer good":
            raise web.HTTPUnauthorized(text="401")
        return "Dr Koffi"

    app = web.Application()
    app.router.add_get("/who", who)
    Gate.of(authenticate=sign_in).install(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert (await client.get("/who")).status == 401
        good = await client.get("/who", headers={"Authorization": "Bearer good"})
        assert await good.text() == "Dr Koffi"
