"""Issue 21: a signed mail poll could be replayed within its 5-minute window, so whoever
saw one go by could ask a relay again for the manifests it holds for that node. A relay
now answers each poll once (it remembers the polls of admitted nodes by node and time
for the window) and answers only the nodes of its network."""

from __future__ import annotations

import os

from bootstrap.network import demo_anchor, load_network
from bootstrap.tools import admit_node
from protocol.codec import unpack
from protocol.identity import Identity
from protocol.transfer import encode_mail_poll
from tests.harness.inprocess import LocalNode
from tsfnode.appkeys import DIRECTORY


async def _post(local_node: LocalNode, poll: bytes) -> tuple[int, bytes]:
    answer = await local_node.client.post("/peer/v1/mail", data=poll)
    return answer.status, await answer.read()


async def test_a_mail_poll_is_answered_once(local_node: LocalNode) -> None:
    reader = Identity.generate(os.urandom)
    now = local_node.clock.now_ms()
    record = admit_node(load_network("demo"), demo_anchor(), reader.public, now=now)
    await local_node.app[DIRECTORY].add([record], now)
    poll = encode_mail_poll(reader, now)
    status, body = await _post(local_node, poll)
    assert status == 200
    assert unpack(body, max_size=1024) == []
    local_node.clock.advance(60_000)  # a minute later, well inside the poll's window
    status, body = await _post(local_node, poll)
    assert status == 403
    assert b"already received" in body
    status, _ = await _post(local_node, encode_mail_poll(reader, local_node.clock.now_ms()))
    assert status == 200  # a new poll is answered
    stranger = Identity.generate(os.urandom)
    status, body = await _post(local_node, encode_mail_poll(stranger, local_node.clock.now_ms()))
    assert status == 403
    assert b"not a node of this network" in body
