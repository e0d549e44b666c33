"""`tsfnode send`: de-identified on the sender's computer, uploaded in chunks, resumed
after a cut; the node never sees the patient's name. The node runs in this process, but
for the cut (a real node process behind a proxy that drops the line)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pydicom
import pytest

from tests.harness.data import PYDICOM_FILES, pydicom_data_folder
from tests.harness.inprocess import LocalNode, node_log
from tests.harness.nodes import RunningNode, sender_token, tsfnode
from tests.harness.proxy import LoopThread, Proxy

CT = PYDICOM_FILES / "CT_small.dcm"
BIG = pydicom_data_folder() / "US1_UNCR.dcm"  # about 900 KB: several chunks


async def test_send_de_identifies_here_and_uploads(local_node: LocalNode, tmp_path: Path) -> None:
    token = (await local_node.account("emetteur.cotonou", "sender")).token
    home = tmp_path / "sender-laptop"
    url = str(local_node.client.make_url("")).rstrip("/")
    with node_log() as log:  # the command talks to the node served by this test's loop
        result = await asyncio.to_thread(
            tsfnode, "send", CT, "--node", url, "--token", token, "--home", home
        )
        assert result.returncode == 0, result.stderr
        bad = await asyncio.to_thread(
            tsfnode, "send", CT, "--node", url, "--token", "tsf_wrong", "--home", home
        )
    assert bad.returncode == 2
    assert "refused the token" in bad.stderr
    assert "Sent / envoyé: 1 file(s) in 1 study(ies)" in result.stdout
    (received,) = list((local_node.root / "intake").rglob("*.dcm"))
    ds = pydicom.dcmread(received)
    assert ds.PatientIdentityRemoved == "YES"
    assert b"CompressedSamples" not in received.read_bytes()
    # The pseudonym map is on the sender's computer, not on the node.
    assert (home / "pseudonyms" / "pseudonyms.bin").exists()
    node_map = local_node.root / "pseudonyms" / "pseudonyms.bin"
    assert not node_map.exists() or b"CompressedSamples" not in node_map.read_bytes()
    assert '"path": "/api/v1/uploads' in log.getvalue()  # the node's log was taken
    assert "CompressedSamples" not in log.getvalue()


@pytest.mark.slow
def test_send_resumes_after_a_cut(node_dir: Path, tmp_path: Path) -> None:
    token = sender_token(node_dir)
    home = tmp_path / "sender-laptop"
    loop = LoopThread()
    with RunningNode(node_dir) as node:
        host, port = node.url.removeprefix("http://").split(":")
        proxy = Proxy("127.0.0.1", (host, int(port)))
        loop.run(proxy.start())
        proxy.cut_after = 300 * 1024  # the line drops after ~300 KB
        try:
            # Two tries, not the default five: every try after the cut is cut at once (the
            # proxy counts bytes across connections), so the default's pauses (1+2+4+8 s)
            # only made the test wait 15 s; two still go through a retry.
            first = tsfnode(
                "send", BIG, "--node", proxy.url, "--token", token, "--home", home,
                "--retries", "2",
            )  # fmt: skip
            assert first.returncode == 2, first.stdout + first.stderr
            assert first.stdout.count("retrying") == 2, first.stdout
            assert "run the same command again to resume" in first.stderr
            proxy.cut_after = None
            second = tsfnode("send", BIG, "--node", proxy.url, "--token", token, "--home", home)
            assert second.returncode == 0, second.stdout + second.stderr
            assert "Resuming at" in second.stdout
            resumed_at = int(second.stdout.split("Resuming at ")[1].split()[0])
            assert resumed_at > 0
        finally:
            loop.run(proxy.stop())
            loop.close()
    assert len(list((node_dir / "intake").rglob("*.dcm"))) == 1


async def test_uploads_belong_to_their_sender_and_check_offsets(local_node: LocalNode) -> None:
    mine = (await local_node.account("emetteur.cotonou", "sender")).token
    theirs = (await local_node.account("emetteur.dakar", "sender")).token
    client = local_node.client

    async def call(
        method: str, url: str, token: str, data: bytes | None = None, **headers: str
    ) -> tuple[int, dict[str, object]]:
        headers["Authorization"] = f"Bearer {token}"
        async with client.request(method, url, data=data, headers=headers) as response:
            body = await response.read()
            return response.status, json.loads(body) if body.startswith(b"{") else {}

    base = "/api/v1/uploads"
    json_type = {"Content-Type": "application/json"}
    status, created = await call("POST", base, mine, json.dumps({"size": 10}).encode(), **json_type)
    assert status == 201
    url = f"{base}/{created['id']}"
    assert (await call("GET", url, theirs))[0] == 404  # another sender sees nothing
    assert (await call("GET", url, "tsf_nonsense"))[0] == 401
    status, answer = await call("PATCH", url, mine, b"abc", **{"Upload-Offset": "5"})
    assert status == 409
    assert answer["offset"] == 0
    status, answer = await call("PATCH", url, mine, b"abc", **{"Upload-Offset": "0"})
    assert (status, answer["offset"]) == (200, 3)
    bad_size = await call("POST", base, mine, b'{"size": -1}', **json_type)
    assert bad_size[0] == 400
