"""`tsfnode doctor`, as the hospital's IT person runs it: each thing that often breaks,
found and said with what to do, in French or English; exit status 1 while a problem
remains. And what `init` and `run` write is the node user's alone."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from tests.harness.cluster import configure
from tests.harness.nodes import RunningNode, tsfnode
from tests.tsfnode.test_tls import make_ca, make_cert


def test_doctor_names_each_problem_and_what_to_do_in_french_and_english(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = tmp_path / "parakou"
    node.mkdir(mode=0o755)
    assert tsfnode("init", node, "--name", "CHU Parakou", "--port", "0").returncode == 0
    # init makes the operator's folder and its files private
    assert stat.S_IMODE(node.stat().st_mode) == 0o700
    for name in ("node.key", "node.db", "config.toml"):
        assert stat.S_IMODE((node / name).stat().st_mode) == 0o600, name
    (node / "node.key").chmod(0o644)  # as a careless copy leaves it
    checked = tsfnode("doctor", node, "--lang", "fr")
    assert checked.returncode == 1
    out = checked.stdout
    assert "✘ D'autres peuvent lire node.key" in out
    assert "chmod -R go-rwx" in out
    assert "! Aucune sauvegarde programmée" in out
    assert "! Le nœud ne tourne pas" in out
    assert "1 problème à corriger." in out

    (node / "node.key").chmod(0o600)
    backups = tmp_path / "backups"
    backups.mkdir()
    pki = make_ca(tmp_path / "pki")
    assert pki.exists()
    cert, key = make_cert(tmp_path / "pki", "parakou")  # valid 2 days: renew soon
    public = base64.b64encode(os.urandom(32)).decode()
    configure(
        node,
        backup={"folder": str(backups), "to_key": public},
        http={"tls_cert": str(cert), "tls_key": str(key)},
    )
    checked = tsfnode("doctor", node, "--lang", "en")
    assert "✘ No backup in" in checked.stdout
    assert "! TLS certificate" in checked.stdout
    assert "expires in 1 days" in checked.stdout or "expires in 2 days" in checked.stdout
    (backups / "tsfnode-20261207T000000Z.tsfbackup").write_bytes(b"x")
    monkeypatch.setenv("SSL_CERT_FILE", str(pki))
    with RunningNode(node) as running:
        checked = tsfnode("doctor", node, "--lang", "en")
        assert f"✔ The node runs and answers at {running.url}" in checked.stdout
        assert "✔ Peers: 0 of 0 reachable." in checked.stdout
        assert "✔ Last backup 0 hours ago (1 kept)." in checked.stdout
        assert checked.returncode == 0, checked.stdout
        assert "No problem found." in checked.stdout
        # what the running node wrote is private too
        for path in node.rglob("*"):
            if path.is_file() and path.name != "run.json":
                assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
