"""Issue 21: a signed mail poll could be replayed within its 5-minute window, so whoever
saw one go by could ask a relay again for the manifests it holds for that node. A relay
now answers each poll once (it remembers the polls of admitted nodes by node and time
for the window) and answers only the nodes of its network; after a restart, which it
does not remember across, it refuses the polls made before it started."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bootstrap.network import demo_anchor, load_network
from bootstrap.tools import admit_node
from protocol.codec import unpack
from protocol.identity import Identity
from protocol.transfer import encode_mail_poll
from tests.harness.cluster import Cluster
from tests.harness.inprocess import LocalNode
from tests.tsfnode.transfers.conftest import QUICK, met, post
from tsfnode.appkeys import DIRECTORY
from tsfnode.keyfile import read_key


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


@pytest.mark.slow
def test_a_mail_poll_seen_before_a_relay_restart_is_not_answered_after_it(
    tmp_path: Path, anchor_key: Path
) -> None:
    """The relay remembered polls in memory only: restarted, it answered again a poll
    seen on the wire within its 5 minutes. Now a poll made before the relay's process
    started is refused; a new one is answered."""
    c = Cluster(tmp_path, anchor_key, 2, **QUICK)
    try:
        c.start()
        met(c)
        reader = read_key(c.dirs[1] / "node.key")
        mail = f"{c.url(0)}/peer/v1/mail"
        poll = encode_mail_poll(reader, int(time.time() * 1000))
        assert post(mail, poll) == (200, "")
        assert post(mail, poll)[0] == 403  # a replay, while the relay remembers it
        c.stop_node(0)
        c.start_node(0)
        assert post(mail, poll) == (
            403,
            "mail poll refused: made before this relay started (poll again)",
        )
        assert post(mail, encode_mail_poll(reader, int(time.time() * 1000))) == (200, "")
    finally:
        c.close()
