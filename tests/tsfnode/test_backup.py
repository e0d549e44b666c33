"""Backup and restore, as a hospital's IT person runs them: an encrypted archive written
while the node serves, a node brought back from it in an empty directory with the same
id, its people, its pseudonym map and its cases; and a node killed mid-case, its
directory lost, brought back from its last backup, the case then finishing."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.cluster import configure
from tests.harness.nodes import RunningNode, get_json, tsfnode
from tests.harness.people import PASSWORD, REPORT, Browser, PairedNet
from tests.harness.studies import ct_series
from tests.harness.waiting import wait_for
from tsfnode.store.backup import backups_in, read_header

PASSPHRASE = "correct horse battery staple"
QUICK = {
    "transfer": {"poll_interval_ms": 500, "retry_base_ms": 200},
    "cases": {"scan_interval_ms": 300, "stats_interval_ms": 1000},
}


def _tree(root: Path, folders: tuple[str, ...]) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for folder in folders
        for p in sorted((root / folder).rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Path, RunningNode]]:
    directory = tmp_path / "erasme"
    made = tsfnode("init", directory, "--name", "Hôpital Erasme", "--country", "BE", "--port", "0")
    assert made.returncode == 0, made.stderr
    made = tsfnode(
        "account", "add", directory, "marie", "--role", "reader", "--name", "Dr Marie",
        "--password-stdin", input_text=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    with RunningNode(directory) as running:
        yield directory, running


def test_a_node_is_backed_up_while_it_serves_and_restored_with_its_id_and_people(
    node: tuple[Path, RunningNode], tmp_path: Path
) -> None:
    directory, running = node
    node_id = get_json(f"{running.url}/api/v1/node")["id"]
    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE + "\n")
    archive = tmp_path / "off-site" / "erasme.tsfbackup"
    made = tsfnode("backup", directory, "--out", archive, "--passphrase-file", secret)
    assert made.returncode == 0, made.stderr
    assert "Backup written" in made.stdout
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    raw = archive.read_bytes()
    # Nothing of the node in clear: not its key, not a person's name, not the database.
    assert (directory / "node.key").read_bytes()[:40] not in raw
    assert b"Dr Marie" not in raw
    assert b"SQLite format 3" not in raw
    assert read_header(archive)["node_id"] == node_id

    # The machine is lost: the node comes back elsewhere, from the archive alone.
    running.stop()
    before = _tree(directory, ("people", "pseudonyms")) | {
        "node.key": (directory / "node.key").read_bytes()
    }
    shutil.rmtree(directory)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase at all\n")
    elsewhere = tmp_path / "new-machine" / "erasme"
    refused = tsfnode("restore", archive, elsewhere, "--passphrase-file", wrong)
    assert refused.returncode != 0
    assert "wrong passphrase" in refused.stderr
    assert not any(elsewhere.iterdir()), "a refused restore leaves nothing behind"
    made = tsfnode("restore", archive, elsewhere, "--passphrase-file", secret)
    assert made.returncode == 0, made.stderr
    after = _tree(elsewhere, ("people", "pseudonyms")) | {
        "node.key": (elsewhere / "node.key").read_bytes()
    }
    assert after == before
    for path in [elsewhere / "node.key", *(elsewhere / "people").rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    again = tsfnode("restore", archive, elsewhere, "--passphrase-file", secret)
    assert again.returncode != 0
    assert "already holds a node" in again.stderr
    with RunningNode(elsewhere) as restored:
        assert get_json(f"{restored.url}/api/v1/node")["id"] == node_id
        browser = Browser(restored.url)
        status, url, page = browser.sign_in("marie", PASSWORD)
        assert status == 200, page[:500]
        assert "/web/login" not in url, page[:500]


def test_a_damaged_or_truncated_archive_is_named_and_restores_nothing(
    node: tuple[Path, RunningNode], tmp_path: Path
) -> None:
    directory, _ = node
    key = tmp_path / "operator.key"
    assert tsfnode("backup-key", "--out", key).returncode == 0
    archive = tmp_path / "erasme.tsfbackup"
    made = tsfnode("backup", directory, "--out", archive, "--to-key", f"{key}.pub")
    assert made.returncode == 0, made.stderr
    data = archive.read_bytes()
    cut = tmp_path / "cut.tsfbackup"
    cut.write_bytes(data[: len(data) // 2])
    refused = tsfnode("restore", cut, tmp_path / "a", "--key", key)
    assert refused.returncode != 0
    assert "truncated" in refused.stderr
    flipped = tmp_path / "flipped.tsfbackup"
    flipped.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])
    refused = tsfnode("restore", flipped, tmp_path / "b", "--key", key)
    assert refused.returncode != 0
    assert "cannot be decrypted" in refused.stderr
    other = tmp_path / "other.key"
    assert tsfnode("backup-key", "--out", other).returncode == 0
    refused = tsfnode("restore", archive, tmp_path / "c", "--key", other)
    assert refused.returncode != 0
    assert "another operator's key" in refused.stderr
    for name in ("a", "b", "c"):
        assert not (tmp_path / name / "node.key").exists()
    made = tsfnode("restore", archive, tmp_path / "d", "--key", key)
    assert made.returncode == 0, made.stderr


def test_scheduled_backups_are_written_sealed_and_pruned(tmp_path: Path) -> None:
    directory = tmp_path / "cotonou"
    assert tsfnode("init", directory, "--name", "CHU Cotonou", "--port", "0").returncode == 0
    key = tmp_path / "operator.key"
    assert tsfnode("backup-key", "--out", key).returncode == 0
    public = (tmp_path / "operator.key.pub").read_text().strip()
    folder = tmp_path / "backups"
    folder.mkdir()
    # Two old ones already there, older than the period: one is written at start, the
    # oldest is pruned (keep = 2).
    for i, name in enumerate(("tsfnode-20260101T000000Z", "tsfnode-20260102T000000Z")):
        old = folder / f"{name}.tsfbackup"
        old.write_bytes(b"old")
        os.utime(old, (time.time() - 86_400 * (3 - i),) * 2)
    configure(
        directory,
        backup={"folder": str(folder), "to_key": public, "every_hours": 24, "keep": 2},
    )
    with RunningNode(directory) as running:
        wait_for(
            "a scheduled backup is written",
            lambda: len(backups_in(folder)) == 2 and backups_in(folder)[-1].stat().st_size > 100,
        )
        assert '"backup written"' in running.logs() or "backup written" in running.logs()
    names = [p.name for p in backups_in(folder)]
    assert names[0] == "tsfnode-20260102T000000Z.tsfbackup"
    restored = tsfnode("restore", backups_in(folder)[-1], tmp_path / "back", "--key", key)
    assert restored.returncode == 0, restored.stderr


def _kill_lose_and_restore(net: PairedNet, i: int, tmp_path: Path) -> str:
    """Node ``i`` backed up (received studies listed, not copied), killed -9, its
    directory deleted, restored from the archive and started again; what restore said."""
    directory = net.cluster.dirs[i]
    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE)
    archive = tmp_path / f"node{i}.tsfbackup"
    made = tsfnode("backup", directory, "--out", archive, "--passphrase-file", secret)
    assert made.returncode == 0, made.stderr
    assert "Received studies are listed, not copied" in made.stdout
    # The box dies (kill -9) and its disk with it.
    net.cluster.stop_node(i, signal.SIGKILL)
    shutil.rmtree(directory)
    made = tsfnode("restore", archive, directory, "--passphrase-file", secret)
    assert made.returncode == 0, made.stderr
    assert not (directory / "received").exists(), "the studies were not in the archive"
    assert (directory / "refetch.json").exists()
    net.cluster.start_node(i)
    return made.stdout


@pytest.mark.slow
def test_a_node_killed_mid_case_comes_back_from_its_backup_fetches_its_studies_again_and_the_case_finishes(  # noqa: E501
    tmp_path: Path,
) -> None:
    (tmp_path / "net").mkdir()
    net = PairedNet(tmp_path / "net", **QUICK)
    try:
        ct = tmp_path / "ct"
        ct.mkdir()
        ct_series(ct, 3)
        case_id = net.submit(ct, {"routing": "pair", "target": net.pair})
        wait_for("the case at Marie's node", lambda: net.marie.state(case_id) == "assigned")
        erasme, cotonou = net.cluster.dirs[1], net.cluster.dirs[0]
        said = _kill_lose_and_restore(net, 1, tmp_path)
        assert "received bundle(s) will be fetched again" in said
        # The study comes back from Koffi's node, its sender (each chunk checked against
        # the signed manifest), and Marie finds her case and its images.
        at_reader = net.marie.case(case_id)
        assert at_reader["state"] == "assigned"
        (images,) = at_reader["images"]
        wait_for(
            "the study fetched again from its sender",
            lambda: bool(list((erasme / images / "files").rglob("*.dcm"))),
        )
        wait_for("nothing left to fetch", lambda: not (erasme / "refetch.json").exists())
        assert "bundle fetched again after restore" in net.cluster.nodes[1].logs()  # type: ignore[union-attr]
        net.marie.ok(f"/cases/{case_id}/report", "POST", REPORT)
        wait_for("the report is back", lambda: net.koffi.state(case_id) == "report_delivered")

        # The sender's box dies in turn: the report's bundle it had received comes back
        # from Erasme, which sealed it; the case and its report are as they were.
        received = {p.name for p in (cotonou / "received").iterdir()}
        assert received
        _kill_lose_and_restore(net, 0, tmp_path)
        wait_for(
            "the sender's received bundles fetched again",
            lambda: not (cotonou / "refetch.json").exists(),
        )
        assert {p.name for p in (cotonou / "received").iterdir()} >= received
        assert net.koffi.state(case_id) == "report_delivered"
        (report,) = [d for d in net.koffi.case(case_id)["documents"] if d["kind"] == "report"]
        assert report["impression"] == REPORT["impression"]
        checked = tsfnode("doctor", cotonou, "--lang", "en")
        assert "left out of the restored backup" not in checked.stdout
    finally:
        net.cluster.close()
