"""Issue 21: ``.../frames/1,1,1,...`` (1,999 times) made 125 MiB of answer from one
4 KiB URL. Each frame is now sent once however often it is asked for, and a request
asks for at most ``MAX_FRAMES_PER_REQUEST`` frames (the whole instance is its bulk data)."""

from __future__ import annotations

import asyncio
import json

from tests.harness.people import FORM
from tests.harness.studies import CT
from tests.tsfnode.test_case_access import Cotonou, _node_input
from tests.tsfnode.test_case_access import cotonou as cotonou
from tsfnode.dicomweb.service import MAX_FRAMES_PER_REQUEST


async def test_a_frame_asked_for_again_and_again_is_sent_once(cotonou: Cotonou) -> None:
    node = cotonou
    study = await asyncio.to_thread(_node_input, node.node_dir, CT)
    body = {"study_uid": study, "routing": "pair", "target": node.pair, "form": FORM}
    status, made = await node.api("koffi", "POST", "/cases", body)
    assert status == 201, made
    status, found = await node.web("koffi", "GET", f"/dicomweb/studies/{study}/instances")
    assert status == 200, found
    (instance,) = json.loads(found)
    series = instance["0020000E"]["Value"][0]
    sop = instance["00080018"]["Value"][0]
    base = f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames"
    accept = {"Accept": "multipart/related; type=application/octet-stream"}
    status, one = await node.web("koffi", "GET", f"{base}/1", headers=accept)
    assert status == 200
    status, many = await node.web(
        "koffi", "GET", f"{base}/{','.join(['1'] * 1999)}", headers=accept
    )
    assert status == 200
    assert len(many) < 2 * len(one)  # one frame, not 1,999 copies of it
    asked = ",".join(str(n) for n in range(1, MAX_FRAMES_PER_REQUEST + 2))
    status, text = await node.web("koffi", "GET", f"{base}/{asked}", headers=accept)
    assert status == 400
    assert f"at most {MAX_FRAMES_PER_REQUEST} frames per request" in text.decode()
