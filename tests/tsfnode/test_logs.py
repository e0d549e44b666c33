"""Logs are JSON lines and never carry what a request carries in its query or body."""

from __future__ import annotations

import json

from tests.harness.inprocess import LocalNode, node_log

PATIENT = "DUPONT^MARIE"


async def test_access_log_is_json_without_query_strings(local_node: LocalNode) -> None:
    client = local_node.client
    with node_log() as log:
        ok = await client.get(f"/api/v1/node?PatientName={PATIENT}&PatientBirthDate=19800101")
        assert ok.status == 200
        missing = await client.get(f"/nothing-here?q={PATIENT}")
        assert missing.status == 404
    logs = log.getvalue()
    assert PATIENT not in logs
    assert "19800101" not in logs
    records = [json.loads(line) for line in logs.splitlines()]
    requests = [r for r in records if r["event"] == "http request"]
    assert {"path": "/api/v1/node", "status": 200}.items() <= requests[-2].items()
    assert requests[-1]["status"] == 404
    assert all({"ts", "level", "logger", "event"} <= r.keys() for r in records)
