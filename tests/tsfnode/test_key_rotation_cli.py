"""`tsfnode key rotate` and `tsfnode readmit`, run as an operator would, on real node
directories (SPEC.md §8.5)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from bootstrap.keys import read_key
from bootstrap.network import load_network
from protocol.directory import Directory
from protocol.documents import decode_document, split_documents
from protocol.identity import PublicIdentity
from tests.harness.cluster import add_records, node_id
from tests.harness.nodes import tsfnode
from tsfnode.store import Store


def admitted(node_dir: Path, anchor_key: Path, tmp_path: Path) -> str:
    """Admit the node of ``node_dir`` to the demo network; its id."""
    me = node_id(node_dir)
    cert = tmp_path / "cert.tsfd"
    result = tsfnode("admit", me, "--network", "demo", "--key", anchor_key, "--out", cert)
    assert result.returncode == 0, result.stderr
    add_records(node_dir, cert)
    return me


def directory_of(node_dir: Path, now: int) -> Directory:
    directory = Directory(load_network("demo").network)
    directory.add_many(_records(node_dir), now)
    return directory


def test_a_node_rotates_its_key_in_place_and_keeps_the_old_one_aside(
    node_dir: Path, anchor_key: Path, tmp_path: Path
) -> None:
    old = admitted(node_dir, anchor_key, tmp_path)
    tsfnode("account", "add", node_dir, "dr.diallo", "--role", "reader", "--name", "Dr Diallo",
            "--password-stdin", input_text="correct horse battery")  # fmt: skip
    person_before = read_key(node_dir / "people" / "dr.diallo.key")

    result = tsfnode("key", "rotate", node_dir)

    assert result.returncode == 0, result.stderr
    new = node_id(node_dir)
    assert new != old
    assert f"Old id: {old}" in result.stdout
    assert f"New id: {new}" in result.stdout
    kept = node_dir / "retired-keys" / f"{PublicIdentity.from_text(old).key.hex()}.key"
    assert read_key(kept).public.text == old
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    # The person keys are sealed with the node's key: sealed again with the new one.
    assert read_key(node_dir / "people" / "dr.diallo.key").seed == person_before.seed
    rotation = next(d for d in map(decode_document, _records(node_dir)) if d.kind == "key_rotation")
    view = directory_of(node_dir, rotation.created).view(rotation.created)
    assert view.current(PublicIdentity.from_text(old).key) == PublicIdentity.from_text(new).key
    assert view.is_admitted(PublicIdentity.from_text(new).key)
    # The node starts under its new id with its data.
    status = tsfnode("status", node_dir)
    assert status.returncode == 0, status.stderr


def test_a_node_that_is_not_admitted_has_nothing_to_rotate(node_dir: Path) -> None:
    before = node_id(node_dir)
    result = tsfnode("key", "rotate", node_dir)
    assert result.returncode == 2
    assert "not admitted" in result.stderr
    assert node_id(node_dir) == before


def test_the_anchor_readmits_a_node_under_a_new_key(
    node_dir: Path, anchor_key: Path, tmp_path: Path
) -> None:
    old = admitted(node_dir, anchor_key, tmp_path)
    new_key = tmp_path / "new.key"
    tsfnode("key", "new", new_key)
    new = tsfnode("key", "show", new_key).stdout.strip()
    out = tmp_path / "readmit.tsfd"

    result = tsfnode("readmit", new, "--replaces", old, "--revoke", "--network", "demo",
                     "--key", anchor_key, "--out", out)  # fmt: skip

    assert result.returncode == 0, result.stderr
    kinds = [decode_document(r) for r in split_documents(out.read_bytes())]
    assert [d.kind for d in kinds] == ["revocation", "node_cert"]
    assert kinds[1].body["replaces"] == PublicIdentity.from_text(old).key
    add_records(node_dir, out)
    view = directory_of(node_dir, kinds[1].created).view(kinds[1].created)
    assert view.current(PublicIdentity.from_text(old).key) == PublicIdentity.from_text(new).key
    assert PublicIdentity.from_text(old).key in view.revoked
    same = tsfnode("readmit", old, "--replaces", old, "--network", "demo", "--key", anchor_key,
                   "--out", tmp_path / "same.tsfd")  # fmt: skip
    assert same.returncode == 2
    assert "same id" in same.stderr


def _records(node_dir: Path) -> list[bytes]:
    async def load() -> list[bytes]:
        store = await Store.open(node_dir / "node.db")
        try:
            return await store.load_records()
        finally:
            await store.close()

    return asyncio.run(load())
