"""One node in process: its application built by ``create_app`` in a temporary node
directory, with a ``ManualClock``, driven by aiohttp's test client (``aiohttp_client``).

No process is started, no port is opened but the test server's on 127.0.0.1, and time
moves only when the test says so (``node.clock.advance(ms)``). Accounts and tokens are
made in the node's store by the same functions the CLI calls (``create_account``,
``create_token``); a signed-in browser goes through the real sign-in form.

    async def test_x(local_node: LocalNode) -> None:
        marie = await local_node.account("marie", "reader")
        status, found = await marie.api("/cases")
        web = await local_node.browser("marie")
        status, url, page = await web.get("/web/cases")
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import io
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from protocol.envelope import encode_envelope
from protocol.identity import Identity, PublicIdentity
from tsfnode.app import create_app
from tsfnode.appkeys import STORE
from tsfnode.auth.accounts import DICOMWEB_TOKEN, create_account, create_token
from tsfnode.clock import ManualClock
from tsfnode.config import NodeConfig
from tsfnode.logs import AccessLogger, JsonFormatter
from tsfnode.node import init_node
from tsfnode.nodedir import NodeDir
from tsfnode.store import Store

PASSWORD = "correct horse battery"
START_MS = 1_767_348_000_000  # Friday 2 January 2026, 10:00 UTC: a working day
SEND_TOKEN = "send"  # the purpose of a sender's token (`tsfnode account token`)

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


def local_config(**changes: Any) -> NodeConfig:
    """A node that stays on 127.0.0.1 and looks for no one: no mDNS, no seed."""
    base = NodeConfig(name="CHU Cotonou", country="BJ", http_port=0, discovery_mdns=False)
    return base.replace(**changes) if changes else base


@dataclass
class Account:
    """A person with an account on the node, and a bearer token for its local API."""

    node: LocalNode
    username: str
    role: str
    person: PublicIdentity | None
    token: str

    @property
    def id(self) -> str:
        assert self.person is not None, f"{self.username} ({self.role}) has no person key"
        return self.person.text

    async def api(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        """``/api/v1{path}`` with this person's token: (status, JSON or text)."""
        return await self.node.call(f"/api/v1{path}", self.token, method, body)

    async def ok(self, path: str, method: str = "GET", body: Any = None) -> Any:
        status, answer = await self.api(path, method, body)
        assert 200 <= status < 300, (path, status, answer)
        return answer

    async def dicomweb_token(self, days: int = 30, label: str = "test") -> str:
        return await self.node.token(self.username, DICOMWEB_TOKEN, days=days, label=label)


@dataclass
class WebBrowser:
    """A person's browser without JavaScript, on its own cookie jar: forms with their
    CSRF token, the page as text (entities decoded)."""

    client: Client
    page: str = ""
    url: str = ""

    async def get(self, path: str, **headers: str) -> tuple[int, str, str]:
        async with self.client.get(path, headers=headers) as response:
            self.page = html.unescape(await response.text())
            self.url = str(response.url.relative())
            return response.status, self.url, self.page

    async def post(
        self, path: str, fields: dict[str, str], csrf: bool = True
    ) -> tuple[int, str, str]:
        if csrf:
            fields = {"csrf": re.findall(r'name="csrf" value="([^"]+)"', self.page)[-1], **fields}
        async with self.client.post(path, data=fields) as response:
            self.page = html.unescape(await response.text())
            self.url = str(response.url.relative())
            return response.status, self.url, self.page

    async def sign_in(self, username: str, password: str = PASSWORD) -> tuple[int, str, str]:
        await self.get("/web/login")
        return await self.post("/web/login", {"username": username, "password": password})


@dataclass
class LocalNode:
    """A node's application in process, with its own clock and test client."""

    root: Path
    config: NodeConfig
    identity: Identity
    clock: ManualClock
    app: web.Application
    client: Client
    make_client: MakeClient
    accounts: dict[str, Account] = field(default_factory=dict)

    @property
    def node_dir(self) -> NodeDir:
        return NodeDir(self.root)

    @property
    def store(self) -> Store:
        return self.app[STORE]

    async def post_envelope(self, data: bytes) -> int:
        """Signed bytes posted to this node's peer API as an envelope: the status."""
        answer = await self.client.post(
            "/peer/v1/envelope", data=data, headers={"Content-Type": "application/octet-stream"}
        )
        await answer.read()
        return answer.status

    def envelope(self, kind: str, sender: Identity, body: dict[str, Any]) -> bytes:
        """An envelope of ``kind`` from ``sender`` to this node, signed now."""
        return encode_envelope(
            kind=kind, sender=sender, recipient=self.identity.public, body=body,
            now=self.clock.now_ms(), rng=secrets.token_bytes,
        )  # fmt: skip

    async def account(
        self, username: str, role: str, name: str = "", language: str = "fr"
    ) -> Account:
        """A new account (with a person key unless an admin) and a bearer token."""
        person = await create_account(
            self.store,
            username=username,
            display_name=name or f"Dr {username.title()}",
            role=role,
            password=PASSWORD,
            language=language,
            now=self.clock.now_ms(),
            people=self.node_dir.people,
        )
        token = await self.token(username)
        made = Account(self, username, role, person, token)
        self.accounts[username] = made
        return made

    async def token(
        self, username: str, purpose: str = SEND_TOKEN, days: int = 90, label: str = ""
    ) -> str:
        return await create_token(
            self.store,
            username=username,
            purpose=purpose,
            days=days,
            now=self.clock.now_ms(),
            label=label,
        )

    async def call(
        self, path: str, token: str = "", method: str = "GET", body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None if body is None else json.dumps(body)
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.client.request(method, path, data=data, headers=headers) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    async def client_from(self, address: str) -> Client:
        """A new client whose connections come from ``address`` (any of 127.0.0.0/8):
        to the node, a caller elsewhere."""
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        return await self.make_client(self.client.server, connector=connector)

    async def browser(self, username: str | None = None, address: str = "") -> WebBrowser:
        """A new browser (its own cookies), signed in as ``username`` if given; from
        ``address`` if given (else 127.0.0.1)."""
        client = await (
            self.client_from(address) if address else self.make_client(self.client.server)
        )
        opened = WebBrowser(client)
        if username is not None:
            status, url, _ = await opened.sign_in(username)
            assert status == 200, (username, status, url)
            assert "/web/login" not in url, (username, url)
        return opened


@contextlib.contextmanager
def node_log() -> Iterator[io.StringIO]:
    """What a node in this process logs, as ``tsfnode run`` writes it (JSON lines, info
    and above, pydicom's records dropped); the loggers are put back afterwards."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root, pydicom_log = logging.getLogger(), logging.getLogger("pydicom")
    saved = root.level, pydicom_log.propagate
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    pydicom_log.propagate = False
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        pydicom_log.propagate = saved[1]


async def start_local_node(
    root: Path,
    make_client: MakeClient,
    *,
    start_ms: int = START_MS,
    **config: Any,
) -> LocalNode:
    """``init_node`` in ``root``, then ``create_app`` with a ManualClock at ``start_ms``,
    served by aiohttp's test server; ``make_client`` is pytest-aiohttp's
    ``aiohttp_client``, which closes it at the end of the test."""
    settings = local_config(**config)
    identity = await asyncio.to_thread(init_node, root, settings)
    clock = ManualClock(start_ms)
    app = create_app(NodeDir(root), settings, identity, clock=clock)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(
        access_log_class=AccessLogger, access_log=logging.getLogger("tsfnode.http")
    )  # the node's own access log, as `tsfnode run` has it
    client = await make_client(server)
    return LocalNode(root, settings, identity, clock, app, client, make_client)
