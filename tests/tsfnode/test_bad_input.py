"""Each operator mistake gives one clear line, exit status 2, and changes nothing.

`tsfnode run` is refused here in this process (the CLI's ``main``, whose status the
process exits with); one refusal is checked in a real process too."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from tests.harness.nodes import tsfnode, tsfnode_here, tsfnode_process


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "node.lock"
    }


def assert_refused(directory: Path, *words: str, process: bool = False) -> None:
    before = files_of(directory)
    run = tsfnode_process if process else tsfnode_here
    result = run("run", str(directory))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tsfnode: ")
    for word in words:
        assert word in lines[0]
    assert files_of(directory) == before


def test_missing_config(tmp_path: Path) -> None:
    tmp_path.joinpath("empty").mkdir()
    assert_refused(tmp_path / "empty", "config.toml is missing", "tsfnode init")


@pytest.mark.slow
def test_a_refused_node_process_exits_with_status_2_and_one_line(node_dir: Path) -> None:
    (node_dir / "node.key").unlink()
    assert_refused(node_dir, "node.key is missing", "backup", process=True)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"[node\nname = ", ("not valid TOML",)),
        (b"\xff\xfe garbage", ("not UTF-8",)),
        (b'[node]\nname = "X"\n[http]\nport = "eighty"\n', ("port must be an integer",)),
        (b'[node]\nname = "X"\n[http]\nport = 70000\n', ("between 0 and 65535",)),
        (b'[node]\nname = "X"\ncolour = "blue"\n', ("unknown setting 'colour'",)),
        (b'[node]\nname = ""\n', ("name is missing",)),
    ],
)
def test_corrupt_config(node_dir: Path, content: bytes, words: tuple[str, ...]) -> None:
    (node_dir / "config.toml").write_bytes(content)
    assert_refused(node_dir, "config.toml", *words)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_with_loose_permissions(node_dir: Path, mode: int) -> None:
    (node_dir / "node.key").chmod(mode)
    assert_refused(node_dir, "node.key", f"mode {mode:04o}", "chmod 600")


def test_missing_key_file(node_dir: Path) -> None:
    (node_dir / "node.key").unlink()
    assert_refused(node_dir, "node.key is missing", "backup")


def test_corrupt_key_file(node_dir: Path) -> None:
    (node_dir / "node.key").write_text("not a key\n")
    assert_refused(node_dir, "not a tsfnode key file")


def test_key_of_another_node(node_dir: Path, tmp_path: Path) -> None:
    assert tsfnode("init", tmp_path / "other", "--name", "Other", "--port", "0").returncode == 0
    # The database records its node's id from `init` on.
    (node_dir / "node.key").write_bytes((tmp_path / "other" / "node.key").read_bytes())
    assert_refused(node_dir, "does not belong to this node's database")


@contextmanager
def port_in_use() -> Iterator[int]:
    """A loopback port something else listens on, for as long as the block lasts."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_port_in_use(node_dir: Path) -> None:
    with port_in_use() as port:
        config = (node_dir / "config.toml").read_text(encoding="utf-8")
        # The [http] port comes first in the file; [dicom] port stays 0 (off).
        (node_dir / "config.toml").write_text(config.replace("port = 0", f"port = {port}", 1))
        assert_refused(node_dir, f"port {port}", "already in use", "[http] port")


def test_database_from_a_newer_version(node_dir: Path) -> None:
    with closing(sqlite3.connect(node_dir / "node.db")) as db:
        db.execute("PRAGMA user_version = 99")
    assert_refused(node_dir, "schema version 99", "upgrade tsfnode", "not changed")
    with closing(sqlite3.connect(node_dir / "node.db")) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 99


def test_corrupt_database(node_dir: Path) -> None:
    (node_dir / "node.db").write_bytes(b"this is not sqlite" * 100)
    assert_refused(node_dir, "not a tsfnode database")


def test_status_reports_the_same_errors(node_dir: Path) -> None:
    (node_dir / "node.key").chmod(0o644)
    result = tsfnode("status", node_dir)
    assert result.returncode == 2
    assert "chmod 600" in result.stderr


def test_init_with_a_bad_country_code(tmp_path: Path) -> None:
    result = tsfnode("init", tmp_path / "n", "--name", "X", "--country", "Belgium")
    assert result.returncode == 2
    assert "two-letter" in result.stderr
    assert not (tmp_path / "n").exists()


def test_dicom_port_in_use(node_dir: Path) -> None:
    with port_in_use() as port:
        config = (node_dir / "config.toml").read_text(encoding="utf-8")
        config = config.replace(
            'ae_title = "TSFNODE"\nport = 0', f'ae_title = "TSFNODE"\nport = {port}'
        )
        assert f"port = {port}" in config
        (node_dir / "config.toml").write_text(config)
        assert_refused(node_dir, f"DICOM port {port}", "[dicom] port")
