"""`tsfnode doctor`, as the hospital's IT person runs it: each thing that often breaks,
found and said with what to do, in French or English; exit status 1 while a problem
remains. And what `init` and `run` write is the node user's alone."""

from __future__ import annotations

import base64
import os
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from protocol.echo import encode_echo_request
from protocol.identity import PublicIdentity
from tests.harness.cluster import configure, node_id
from tests.harness.cluster import running as running_cluster
from tests.harness.nodes import RunningNode, get_json, tsfnode
from tests.harness.waiting import wait_for
from tests.protocol.helpers import identity
from tests.tsfnode.test_tls import make_ca, make_cert
from tsfnode.keyfile import read_key


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


def _ask_echo(peer_url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(f"{peer_url}/peer/v1/echo", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.slow
def test_doctor_has_a_peer_connect_back_and_says_what_to_do_when_the_port_is_closed(
    tmp_path: Path, anchor_key: Path
) -> None:
    with running_cluster(tmp_path, anchor_key, 2) as cluster:
        here, peer = cluster.dirs[1], cluster.proxies[0].url
        published = cluster.proxies[1].url
        wait_for(
            "node 1 hears node 0",
            lambda: (
                [p["status"] for p in get_json(f"{cluster.url(1)}/api/v1/peers")["peers"]]
                == ["alive"]
            ),
        )
        checked = tsfnode("doctor", here, "--lang", "en")
        assert f"✔ Reachable from outside at {published} (Hôpital 0 connected back)." in (
            checked.stdout
        ), checked.stdout

        # A node asks for an address it does not publish (another host's SSH port): the
        # peer refuses without connecting anywhere; never a port scanner.
        me = read_key(here / "node.key")
        asked = PublicIdentity.from_text(node_id(cluster.dirs[0])).key
        now = int(time.time() * 1000)
        status, text = _ask_echo(peer, encode_echo_request(me, asked, "http://127.0.0.1:22", now))
        assert status == 403
        assert "only at an address its directory record publishes" in text
        # A request signed by no node of the network is refused too.
        stranger = identity("stranger")
        status, _ = _ask_echo(peer, encode_echo_request(stranger, asked, published, now))
        assert status == 403

        # Nothing listens at the published address any more (a closed firewall port).
        cluster.loop.run(cluster.proxies[1].stop())
        checked = tsfnode("doctor", here, "--lang", "fr")
        assert (
            f"✘ Hôpital 0 ne peut pas joindre ce nœud à {published} : connexion refusée. "
            f"Ouvrez le port {cluster.proxies[1].port} vers cette machine"
        ) in checked.stdout, checked.stdout
        assert "nommez un relais dans [transfer] relays" in checked.stdout
        assert checked.returncode == 1
