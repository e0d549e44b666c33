"""Issue 21, item 2: the files one upload may hold are capped, with a clear refusal.

The attack as it was made: a zip of 3,000 tiny members kept the node busy for about a
minute (each member opened the archive again and read its whole central directory). A
member is now read from the archive opened once; and one upload (an archive, or a web
batch) holds at most ``[intake] max_files`` files (5,000 by default: a CT or MR CD holds
1,500 to 3,000), beyond which it is refused whole, before any is read."""

from __future__ import annotations

from pathlib import Path

from tests.harness.inprocess import LocalNode, MakeClient, start_local_node
from tests.security.upload_helpers import CT, api_upload, web_batch, web_sender, zipped
from tsfnode.config import NodeConfig


async def test_an_upload_with_more_files_than_the_cap_is_refused_whole(
    local_node: LocalNode, tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    # A node as made by default: 5,001 one-byte members are refused whole, none read.
    sender = await local_node.account("koffi", "sender")
    flood = zipped({f"m{i}": b"x" for i in range(5001)}, stored=True)
    status, answer = await api_upload(local_node, sender.token, flood)
    assert status == 200, answer
    assert [r["key"] for r in answer["rejected"]] == ["intake_too_many_files"]
    assert "5001 fichiers" in answer["rejected"][0]["reason"]
    assert NodeConfig(name="x").intake_max_files == 5000

    # The cap is a setting ([intake] max_files); the same rule on the web uploader.
    node = await start_local_node(tmp_path / "dakar", aiohttp_client, intake_max_files=40)
    koffi = await node.account("koffi", "sender")

    many = zipped({f"m{i}.dcm": b"x" for i in range(41)})
    status, answer = await api_upload(node, koffi.token, many)
    assert status == 200, answer
    assert answer["count"] == 0
    (refused,) = answer["rejected"]
    assert refused["key"] == "intake_too_many_files"
    assert "41 fichiers" in refused["reason"]
    assert "40" in refused["reason"]

    enough = zipped({"ct.dcm": CT.read_bytes(), **{f"m{i}.dcm": b"x" for i in range(39)}})
    status, answer = await api_upload(node, koffi.token, enough)
    assert status == 200, answer
    assert answer["count"] == 1
    assert {r["key"] for r in answer["rejected"]} == {"intake_not_dicom"}

    # A web batch: the 41st file is refused when it is announced, the 40 are imported.
    browser, csrf = await web_sender(node, "koffi")
    headers = {"X-CSRF-Token": csrf}
    batch = None
    for i in range(41):
        async with browser.client.post(
            "/web/uploads?lang=en",
            json={"name": f"f{i}.dcm", "size": 1, "batch": batch},
            headers=headers,
        ) as response:
            if i < 40:
                assert response.status == 201, await response.text()
                batch = (await response.json())["batch"]
            else:
                assert response.status == 400
                assert "already has 40 files" in await response.text()
    status, found = await web_batch(browser, csrf, {"ct.dcm": CT.read_bytes()})
    assert status == 200, found  # another case's batch is not concerned
