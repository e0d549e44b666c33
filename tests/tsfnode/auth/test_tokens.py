"""Bearer tokens, in process, time moved by the node's clock: a DICOMweb token ends with
its days, a sender's upload token too; a reader makes hers on her tools page, sees it
once, and revokes it."""

from __future__ import annotations

import base64
import re

from tests.harness.inprocess import LocalNode

DAY_MS = 86_400_000


async def dicomweb_status(node: LocalNode, authorization: str) -> tuple[int, str]:
    async with node.client.get(
        "/dicomweb/studies", headers={"Authorization": authorization}
    ) as response:
        return response.status, await response.text()


async def test_a_dicomweb_token_ends_with_its_last_day(local_node: LocalNode) -> None:
    marie = await local_node.account("marie", "reader")
    token = await marie.dicomweb_token(days=1)
    assert await dicomweb_status(local_node, f"Bearer {token}") == (200, "[]")
    basic = base64.b64encode(f"marie:{token}".encode()).decode()
    assert (await dicomweb_status(local_node, f"Basic {basic}"))[0] == 200  # as Weasis sends it
    local_node.clock.advance(DAY_MS - 1)
    assert (await dicomweb_status(local_node, f"Bearer {token}"))[0] == 200
    local_node.clock.advance(1)
    status, text = await dicomweb_status(local_node, f"Bearer {token}")
    assert status == 401
    assert "expired" in text
    # A token for uploads is no DICOMweb token, however fresh.
    assert (await dicomweb_status(local_node, f"Bearer {marie.token}"))[0] == 401


async def test_an_upload_token_ends_with_its_days(local_node: LocalNode) -> None:
    await local_node.account("koffi", "sender")
    token = await local_node.token("koffi", days=2)
    assert (await local_node.call("/api/v1/studies", token))[0] == 200
    local_node.clock.advance(2 * DAY_MS)
    assert (await local_node.call("/api/v1/studies", token))[0] == 401


async def test_a_reader_makes_a_token_on_her_tools_page_sees_it_once_and_revokes_it(
    local_node: LocalNode,
) -> None:
    await local_node.account("marie", "reader")
    marie = await local_node.browser("marie")
    status, _, page = await marie.get("/web/tools?lang=en")
    assert status == 200
    assert "Weasis" in page
    assert "OHIF" in page
    status, _, page = await marie.post("/web/tools/tokens", {"label": "Weasis", "days": "30"})
    assert status == 200
    (token,) = re.findall(r"<code class=\"id\">(tsf_[A-Za-z0-9_-]+)</code>", page)
    assert f'Authorization: "Bearer {token}"' in page  # OHIF's app-config.js, ready to use
    assert (await dicomweb_status(local_node, f"Bearer {token}"))[0] == 200
    _, _, page = await marie.get("/web/tools")
    assert token not in page  # shown once only
    row = re.search(r"Weasis.*?name=\"token\" value=\"(\d+)\"", page, re.DOTALL)
    assert row is not None
    await marie.post("/web/tools/tokens/revoke", {"token": row.group(1)})
    assert (await dicomweb_status(local_node, f"Bearer {token}"))[0] == 401
    status, _, page = await marie.post("/web/tools/tokens", {"label": "x", "days": "0"})
    assert status == 400
    # The node's own viewer needs no token: the session's cookie is enough.
    async with marie.client.get("/dicomweb/studies") as response:
        assert response.status == 200
        assert await response.json() == []
