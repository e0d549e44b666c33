"""init / run / restart / status / graceful shutdown of real node processes (the slow
lane); `init` and the JSON API in this process."""

from __future__ import annotations

import json
import signal
import stat
import tomllib
from pathlib import Path

import pytest

from protocol.identity import PublicIdentity
from tests.harness.cluster import Cluster
from tests.harness.inprocess import LocalNode
from tests.harness.nodes import RunningNode, get_json, tsfnode
from tsfnode.store import SCHEMA_VERSION


def test_init_creates_config_key_database_and_blob_store(node_dir: Path) -> None:
    config = tomllib.loads((node_dir / "config.toml").read_text(encoding="utf-8"))
    assert config["node"] == {
        "name": "Hôpital Erasme",
        "institution": "",
        "country": "BE",
        "network": "demo",
        "timezone": "",  # the system's
    }
    assert stat.S_IMODE((node_dir / "node.key").stat().st_mode) == 0o600
    assert (node_dir / "node.db").read_bytes().startswith(b"SQLite format 3\x00")
    assert (node_dir / "blobs").is_dir()


@pytest.mark.slow
def test_init_prints_the_id_that_the_running_node_reports(tmp_path: Path) -> None:
    result = tsfnode("init", tmp_path / "n", "--name", "CHU Cotonou", "--port", "0")
    assert result.returncode == 0
    printed = next(line for line in result.stdout.splitlines() if line.startswith("Id: "))
    node_id = PublicIdentity.from_text(printed[4:])
    with RunningNode(tmp_path / "n") as node:
        assert get_json(node.url + "/healthz")["id"] == node_id.text


def test_init_refuses_to_overwrite_an_existing_node(node_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in node_dir.iterdir() if p.is_file()}
    result = tsfnode("init", node_dir, "--name", "Other", "--port", "0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "already holds a node" in result.stderr
    assert {p.name: p.read_bytes() for p in node_dir.iterdir() if p.is_file()} == before


def test_init_force_replaces_the_node_and_keeps_the_old_one_aside(node_dir: Path) -> None:
    old_key = (node_dir / "node.key").read_bytes()
    result = tsfnode("init", node_dir, "--name", "Nouveau", "--port", "0", "--force")
    assert result.returncode == 0, result.stderr
    assert (node_dir / "node.key").read_bytes() != old_key
    (aside,) = node_dir.glob("replaced-*")
    assert (aside / "node.key").read_bytes() == old_key
    assert (aside / "node.db").exists()


@pytest.mark.slow
def test_identity_survives_restart(node_dir: Path) -> None:
    with RunningNode(node_dir) as node:
        first = get_json(node.url + "/peer/v1/hello")
    with RunningNode(node_dir) as node:
        second = get_json(node.url + "/peer/v1/hello")
    assert first["id"] == second["id"]
    assert second["name"] == "Hôpital Erasme"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_on_signal(node_dir: Path, signum: int) -> None:
    node = RunningNode(node_dir)
    assert (node_dir / "run.json").exists()
    assert node.stop(signum) == 0
    events = [json.loads(line)["event"] for line in node.logs().splitlines()]
    assert events[-4:] == ["node stopping", "transfers stopped", "peering stopped", "node stopped"]
    assert not (node_dir / "run.json").exists()
    # The lock is released: the same directory can be served again at once.
    with RunningNode(node_dir):
        pass


@pytest.mark.slow
def test_a_node_directory_is_served_only_once(node_dir: Path) -> None:
    with RunningNode(node_dir) as node:
        result = tsfnode("run", node_dir)
        assert result.returncode == 2
        assert f"already being served (pid {node.process.pid})" in result.stderr


@pytest.mark.slow
def test_status_prints_id_addresses_and_database_state(node_dir: Path) -> None:
    stopped = tsfnode("status", node_dir)
    assert stopped.returncode == 0, stopped.stderr
    assert "Running:   no" in stopped.stdout
    assert f"schema {SCHEMA_VERSION} (up to date)" in stopped.stdout
    with RunningNode(node_dir) as node:
        running = tsfnode("status", node_dir)
        node_id = get_json(node.url + "/healthz")["id"]
    assert f"Id:        {node_id}" in running.stdout
    assert f"at {node.url}" in running.stdout
    assert "Node:      Hôpital Erasme (BE)" in running.stdout


async def test_json_api_reports_node_and_schema(local_node: LocalNode) -> None:
    info = await (await local_node.client.get("/api/v1/node")).json()
    assert info["name"] == "CHU Cotonou"
    assert info["id"] == local_node.identity.public.text
    assert info["schema_version"] == SCHEMA_VERSION
    assert info["protocol"] == 1


@pytest.mark.slow
def test_a_cluster_whose_node_cannot_start_leaves_none_running(
    tmp_path: Path, anchor_key: Path
) -> None:
    """The harness's own promise: a test or benchmark whose network fails to start does
    not leave its seed running behind it on a shared machine."""
    cluster = Cluster(tmp_path, anchor_key, 2)
    (cluster.dirs[1] / "node.db").unlink()  # node 1 refuses to start without it
    with pytest.raises(AssertionError, match="node exited at start"):
        cluster.start()
    seed = cluster.nodes[0]
    assert seed is not None
    assert seed.process.poll() is not None  # stopped, not left running
