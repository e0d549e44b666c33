"""The operators' commands, run as a person would, against real files and nodes."""

from __future__ import annotations

import asyncio
import re
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
import tomli_w

from tests.harness.inprocess import LocalNode
from tests.harness.nodes import RunningNode, tsfnode


def network_create(tmp_path: Path, out: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`tsfnode network create sahel` with the anchor key tmp_path/anchor.key."""
    return tsfnode(
        "network", "create", "sahel", "--anchor-key", tmp_path / "anchor.key",
        "--out", tmp_path / out, *extra,
    )  # fmt: skip


def test_network_create_writes_a_network_and_an_offline_anchor_key(tmp_path: Path) -> None:
    result = network_create(tmp_path, "sahel.toml", "--seed", "http://127.0.0.1:9")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "anchor.key").stat().st_mode) == 0o600
    anchor_id = tsfnode("key", "show", tmp_path / "anchor.key").stdout.strip()
    shown = tsfnode("network", "show", tmp_path / "sahel.toml").stdout
    assert f"Anchor:   {anchor_id}" in shown
    assert "Seed:     http://127.0.0.1:9" in shown
    again = network_create(tmp_path, "other.toml")
    assert again.returncode == 2
    assert "never overwritten" in again.stderr


def test_the_demo_network_is_shipped() -> None:
    shown = tsfnode("network", "show", "demo")
    assert shown.returncode == 0
    assert "Network:  demo" in shown.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["admit", "NOT-AN-ID", "--network", "demo"], "node id 'NOT-AN-ID'"),
        (["network", "show", "atlantis"], "network 'atlantis' not found"),
    ],
)
def test_bad_input_is_named(tmp_path: Path, args: list[str], message: str) -> None:
    key = tmp_path / "k.key"
    assert tsfnode("key", "new", key).returncode == 0
    extra = ["--key", str(key), "--out", str(tmp_path / "out.tsfd")] if args[0] == "admit" else []
    result = tsfnode(*args, *extra)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out.tsfd").exists()


def test_a_typo_in_an_id_is_caught(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    tsfnode("key", "new", key)
    good = tsfnode("key", "show", key).stdout.strip()
    typo = ("B" if good[0] != "B" else "C") + good[1:]
    result = tsfnode("admit", typo, "--network", "demo", "--key", key, "--out", tmp_path / "o")
    assert result.returncode == 2
    assert "check character" in result.stderr


def test_a_file_that_is_not_records_is_refused(node_dir: Path, tmp_path: Path) -> None:
    junk = tmp_path / "photo.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    result = tsfnode("directory", node_dir, "--add", junk)
    assert result.returncode == 2
    assert "photo.jpg is not a records file" in result.stderr


async def test_nearest_measures_and_ranks_nodes(local_node: LocalNode) -> None:
    url = str(local_node.client.make_url("")).rstrip("/")
    result = await asyncio.to_thread(  # the command measures the node this loop serves
        tsfnode, "nearest", url, "http://127.0.0.1:9", "--size-mb", "15", "--probe-kib", "64"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.match(rf"\s+\d+\.\d s  {re.escape(url)}  RTT \d+ ms", lines[1])
    assert lines[2].strip().startswith("unreachable  http://127.0.0.1:9")
    koffi = await local_node.account("koffi", "sender")
    status, ranked = await koffi.api("/nearest?size_mb=1&probe_kib=64")
    assert (status, ranked) == (200, [])  # no other node in its directory yet


@pytest.mark.slow
@pytest.mark.usefixtures("lan")
def test_a_workstation_finds_the_hospital_node_on_the_lan(node_dir: Path) -> None:
    path = node_dir / "config.toml"
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    config["discovery"] = {"mdns": True, "mdns_interface": "127.0.0.1"}
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    with RunningNode(node_dir) as node:
        result = tsfnode("nearest", "--lan", "--mdns-interface", "127.0.0.1", "--probe-kib", "64")
    assert result.returncode == 0, result.stderr
    found = re.search(r"Found on the LAN / trouvés sur le réseau local: (\d+)", result.stdout)
    assert found is not None, result.stdout
    assert int(found.group(1)) >= 1  # others' nodes may announce on 127.0.0.1 too
    assert node.url in result.stdout


async def test_speed_test_endpoint_bounds(local_node: LocalNode) -> None:
    client = local_node.client
    sent = await client.get("/peer/v1/speedtest?bytes=1000")
    assert len(await sent.read()) == 1000
    for bad in ("bytes=-1", "bytes=999999999", "bytes=many"):
        assert (await client.get(f"/peer/v1/speedtest?{bad}")).status == 400
    taken = await client.post("/peer/v1/speedtest", data=bytes(5000))
    assert await taken.read() == b'{"bytes": 5000}'
