"""Issue 21, item 2: two PATCHes of one upload at the same offset cannot both write.

The attack as it was made: two PATCH requests at offset 0 of the same upload, the second
sent while the first was still sending its body. Both were accepted and both appended,
so the upload held both bodies one after the other: corrupt, and taken as it was."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from tests.harness.inprocess import LocalNode
from tests.security.upload_helpers import web_sender


async def test_a_second_patch_at_the_same_offset_is_refused_while_the_first_writes(
    local_node: LocalNode,
) -> None:
    koffi = await local_node.account("koffi", "sender")
    first, second = b"A" * 4000, b"B" * 4000
    status, made = await local_node.call("/api/v1/uploads", koffi.token, "POST", {"size": 4000})
    assert status == 201, made
    url = f"/api/v1/uploads/{made['id']}"
    halfway, go_on = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:  # a slow line: half, then the rest
        yield first[:2000]
        halfway.set()
        await go_on.wait()
        yield first[2000:]

    headers = {"Authorization": f"Bearer {koffi.token}", "Upload-Offset": "0"}

    async def patch(body: object) -> tuple[int, dict[str, object]]:
        async with local_node.client.patch(url, data=body, headers=headers) as response:
            return response.status, json.loads(await response.text())

    slow = asyncio.create_task(patch(slow_body()))
    await asyncio.wait_for(halfway.wait(), 30)
    status, answer = await asyncio.wait_for(patch(second), 30)
    assert status == 409, answer
    assert answer["offset"] == 0
    go_on.set()
    status, answer = await asyncio.wait_for(slow, 30)
    assert status == 200, answer
    assert answer["offset"] == 4000
    part = local_node.root / "uploads" / f"{made['id']}.part"
    assert not part.exists() or part.read_bytes() == first  # taken whole, or as sent

    # The web uploader's uploads are served by the same code and the same rule.
    browser, csrf = await web_sender(local_node, "koffi")
    async with browser.client.post(
        "/web/uploads", json={"name": "a.dcm", "size": 4000}, headers={"X-CSRF-Token": csrf}
    ) as response:
        upload = await response.json()
    halfway.clear()
    go_on.clear()
    web_headers = {"X-CSRF-Token": csrf, "Upload-Offset": "0"}
    web_url = f"/web/uploads/{upload['id']}"

    async def web_patch(body: object) -> int:
        async with browser.client.patch(web_url, data=body, headers=web_headers) as response:
            return response.status

    slow = asyncio.create_task(web_patch(slow_body()))
    await asyncio.wait_for(halfway.wait(), 30)
    assert await asyncio.wait_for(web_patch(second), 30) == 409
    go_on.set()
    assert await asyncio.wait_for(slow, 30) == 200
    (kept,) = (local_node.root / "uploads" / "web" / "batches").glob(f"*/files/{upload['id']}*")
    assert kept.read_bytes() == first
