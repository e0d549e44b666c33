"""Issue 21: ``/api/v1/metrics?since_ms=<400 digits>`` answered 500 (SQLite's integers
overflowed). Times beyond any date are now a clear 400 naming the parameter."""

from __future__ import annotations

import pytest

from tests.harness.inprocess import LocalNode


@pytest.mark.parametrize(
    "query",
    ["since_ms=" + "9" * 400, "until_ms=" + "9" * 400, "since_ms=-5", "since_ms=" + "9" * 19],
)
async def test_times_beyond_any_date_are_a_clear_400(local_node: LocalNode, query: str) -> None:
    koffi = await local_node.account("koffi", "sender")
    status, answer = await koffi.api(f"/metrics?{query}")
    assert status == 400, answer
    assert "a time in ms since 1970" in answer["error"]
    assert query.split("=")[0] in answer["error"]
    assert (await koffi.api("/metrics?since_ms=0"))[0] == 200
