"""Accounts and the person keys their node holds, sealed at rest with the node's key."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

from tests.harness.nodes import tsfnode

PASSWORD = "correct horse battery"


def add(node_dir: Path, username: str, role: str) -> str:
    made = tsfnode(
        "account", "add", node_dir, username, "--role", role, "--name", "Dr Test",
        "--password-stdin", input_text=PASSWORD,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return made.stdout.split("Person id: ")[1].split()[0]


def test_a_person_key_is_sealed_with_the_node_key_and_opens_only_beside_it(
    node_dir: Path, tmp_path: Path
) -> None:
    person_id = add(node_dir, "marie", "reader")
    key_file = node_dir / "people" / "marie.key"
    header, body = key_file.read_text().split()
    assert header == "tsfnode-ed25519-seed-sealed-v1"
    assert len(base64.b64decode(body)) == 24 + 32 + 16  # nonce, seed, tag: no bare seed
    assert key_file.stat().st_mode & 0o077 == 0
    # In its node directory, the tools open it (the coordinator's CLI signs with it).
    shown = tsfnode("key", "show", key_file)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split()[-1] == person_id
    # A copy of the people folder (a backup, a stolen disk image) without node.key: no key.
    copy = tmp_path / "copy" / "people"
    shutil.copytree(node_dir / "people", copy)
    refused = tsfnode("key", "show", copy / "marie.key")
    assert refused.returncode == 2
    assert "sealed with its node's key" in refused.stderr
    # Beside another node's key: refused, named.
    other = tmp_path / "other"
    assert tsfnode("init", other, "--name", "Autre", "--port", "0").returncode == 0
    shutil.copytree(node_dir / "people", other / "people")
    refused = tsfnode("key", "show", other / "people" / "marie.key")
    assert refused.returncode == 2
    assert "sealed by another node" in refused.stderr


def test_an_admin_account_has_no_person_key(node_dir: Path) -> None:
    made = tsfnode(
        "account", "add", node_dir, "it.erasme", "--role", "admin", "--name", "IT",
        "--password-stdin", input_text=PASSWORD,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert not (node_dir / "people" / "it.erasme.key").exists()
