"""Logs are JSON lines and never carry what a request carries in its query or body."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.harness.nodes import RunningNode, get

PATIENT = "DUPONT^MARIE"


def test_access_log_is_json_without_query_strings(node_dir: Path) -> None:
    with RunningNode(node_dir) as node:
        get(f"{node.url}/api/v1/node?PatientName={PATIENT}&PatientBirthDate=19800101")
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"{node.url}/nothing-here?q={PATIENT}", timeout=5)
    logs = node.logs()
    assert PATIENT not in logs
    assert "19800101" not in logs
    records = [json.loads(line) for line in logs.splitlines()]
    requests = [r for r in records if r["event"] == "http request"]
    assert {"path": "/api/v1/node", "status": 200}.items() <= requests[-2].items()
    assert requests[-1]["status"] == 404
    assert all({"ts", "level", "logger", "event"} <= r.keys() for r in records)
