"""The wait between a delivery's attempts doubles from ``[transfer] retry_base_ms`` up to
``[transfer] retry_cap_ms`` (an hour unless the operator says otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from tests.harness.inprocess import start_local_node
from tsfnode.appkeys import TRANSFERS
from tsfnode.config import NodeConfig


async def test_the_wait_between_attempts_stops_doubling_at_retry_cap_ms(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    node = await start_local_node(
        tmp_path / "cotonou",
        aiohttp_client,
        transfer_retry_base_ms=200,
        transfer_retry_cap_ms=2_000,
    )
    backoff = node.app[TRANSFERS].outbox.backoff
    waits = [backoff.delay(failures, os.urandom) for failures in range(40)]
    assert max(waits) <= 2_000
    assert max(waits[5:]) > 1_000  # it doubled up to the cap (less half of it, jitter)
    assert NodeConfig(name="x").transfer_retry_cap_ms == 3_600_000  # the default: an hour
