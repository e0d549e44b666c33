"""`tsfnode send`: de-identified on the sender's computer, uploaded in chunks, resumed
after a cut; the node never sees the patient's name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pydicom

from tests.harness.data import PYDICOM_FILES, pydicom_data_folder
from tests.harness.nodes import RunningNode, tsfnode
from tests.harness.proxy import LoopThread, Proxy

CT = PYDICOM_FILES / "CT_small.dcm"
BIG = pydicom_data_folder() / "US1_UNCR.dcm"  # about 900 KB: several chunks


def sender_token(node_dir: Path, username: str = "emetteur.cotonou") -> str:
    """A sender account on the node, made with the CLI, and its upload token."""
    add = subprocess.run(
        [
            sys.executable,
            "-m",
            "tsfnode",
            "account",
            "add",
            str(node_dir),
            username,
            "--role",
            "sender",
            "--name",
            f"Dr {username}",
            "--password-stdin",
        ],
        input="un mot de passe assez long\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert add.returncode == 0, add.stderr
    token = tsfnode("account", "token", node_dir, username)
    assert token.returncode == 0, token.stderr
    return token.stdout.strip()


def test_send_de_identifies_here_and_uploads(node_dir: Path, tmp_path: Path) -> None:
    token = sender_token(node_dir)
    home = tmp_path / "sender-laptop"
    with RunningNode(node_dir) as node:
        result = tsfnode("send", CT, "--node", node.url, "--token", token, "--home", home)
        assert result.returncode == 0, result.stderr
        bad = tsfnode("send", CT, "--node", node.url, "--token", "tsf_wrong", "--home", home)
        assert bad.returncode == 2
        assert "refused the token" in bad.stderr
    assert "Sent / envoyé: 1 file(s) in 1 study(ies)" in result.stdout
    (received,) = list((node_dir / "intake").rglob("*.dcm"))
    ds = pydicom.dcmread(received)
    assert ds.PatientIdentityRemoved == "YES"
    assert b"CompressedSamples" not in received.read_bytes()
    # The pseudonym map is on the sender's computer, not on the node.
    assert (home / "pseudonyms" / "pseudonyms.bin").exists()
    assert not (node_dir / "pseudonyms" / "pseudonyms.bin").exists() or (
        b"CompressedSamples" not in (node_dir / "pseudonyms" / "pseudonyms.bin").read_bytes()
    )
    assert "CompressedSamples" not in node.logs()


def test_send_resumes_after_a_cut(node_dir: Path, tmp_path: Path) -> None:
    token = sender_token(node_dir)
    home = tmp_path / "sender-laptop"
    loop = LoopThread()
    with RunningNode(node_dir) as node:
        host, port = node.url.removeprefix("http://").split(":")
        proxy = Proxy("127.0.0.1", (host, int(port)))
        loop.run(proxy.start())
        proxy.cut_after = 300 * 1024  # the line drops after ~300 KB
        try:
            first = tsfnode("send", BIG, "--node", proxy.url, "--token", token, "--home", home)
            assert first.returncode == 2, first.stdout + first.stderr
            assert "run the same command again to resume" in first.stderr
            proxy.cut_after = None
            second = tsfnode("send", BIG, "--node", proxy.url, "--token", token, "--home", home)
            assert second.returncode == 0, second.stdout + second.stderr
            assert "Resuming at" in second.stdout
            resumed_at = int(second.stdout.split("Resuming at ")[1].split()[0])
            assert resumed_at > 0
        finally:
            loop.run(proxy.stop())
            loop.close()
    assert len(list((node_dir / "intake").rglob("*.dcm"))) == 1


def test_uploads_belong_to_their_sender_and_check_offsets(node_dir: Path) -> None:
    import json
    import urllib.error
    import urllib.request

    mine = sender_token(node_dir)
    theirs = sender_token(node_dir, "emetteur.dakar")

    def call(
        method: str,
        url: str,
        token: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, object]]:
        request = urllib.request.Request(
            url,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()
            return exc.code, json.loads(body) if body.startswith(b"{") else {}

    with RunningNode(node_dir) as node:
        base = f"{node.url}/api/v1/uploads"
        status, created = call(
            "POST",
            base,
            mine,
            json.dumps({"size": 10}).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 201
        url = f"{base}/{created['id']}"
        assert call("GET", url, theirs)[0] == 404  # another sender sees nothing
        assert call("GET", url, "tsf_nonsense")[0] == 401
        status, answer = call("PATCH", url, mine, b"abc", {"Upload-Offset": "5"})
        assert status == 409
        assert answer["offset"] == 0
        status, answer = call("PATCH", url, mine, b"abc", {"Upload-Offset": "0"})
        assert (status, answer["offset"]) == (200, 3)
        bad_size = call("POST", base, mine, b'{"size": -1}', {"Content-Type": "application/json"})
        assert bad_size[0] == 400
