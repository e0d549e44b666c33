"""HTTPS as a hospital's IT person sets it up: the node serving TLS itself from the
certificate named in config.toml (a renewed one taken on SIGHUP), or behind nginx (from
Debian, started here on loopback) that terminates TLS; session cookies Secure and HSTS
then, proxy headers believed only from the configured proxy; and peers that reach each
other over HTTPS."""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.keys import write_key
from bootstrap.network import NetworkFile, demo_anchor
from tests.harness.cluster import Cluster, configure, directory_names
from tests.harness.nodes import RunningNode, tsfnode
from tests.harness.waiting import wait_for

IPS = ("127.0.0.1", "127.0.0.2", "127.0.0.10", "127.0.0.11", "127.0.0.100", "127.0.0.101")


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def make_ca(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-subj", "/CN=tsfnode test CA", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem",
        cwd=folder,
    )  # fmt: skip
    return folder / "ca.pem"


def make_cert(folder: Path, name: str) -> tuple[Path, Path]:
    """A server certificate for the loopback addresses the tests use, signed by the CA."""
    (folder / "san.cnf").write_text("subjectAltName=" + ",".join(f"IP:{ip}" for ip in IPS))
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-subj", "/CN=127.0.0.1", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", f"{name}.pem",
        cwd=folder,
    )  # fmt: skip
    return folder / f"{name}.pem", folder / f"{name}.key"


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CA this test trusts, and the node processes it starts (SSL_CERT_FILE)."""
    pem = make_ca(tmp_path / "pki")
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    return pem


def fetch(
    url: str, cafile: Path | None, headers: dict[str, str] | None = None
) -> tuple[int, list[tuple[str, str]]]:
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, list(response.headers.items())
    except urllib.error.HTTPError as exc:
        return exc.code, list(exc.headers.items())


def peer_serial(host: str, port: int, cafile: Path) -> int:
    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection((host, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(
        subprocess.run(
            ["openssl", "x509", "-inform", "der", "-noout", "-serial"],
            input=der, capture_output=True, check=True, timeout=30,
        ).stdout.decode().strip().split("=")[1], 16,
    )  # fmt: skip


def cookies(headers: list[tuple[str, str]]) -> list[str]:
    return [v for k, v in headers if k.lower() == "set-cookie"]


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "parakou"
    made = tsfnode("init", directory, "--name", "CHU Parakou", "--port", "0")
    assert made.returncode == 0, made.stderr
    return directory


def test_the_node_serves_https_with_secure_cookies_and_hsts_and_takes_a_renewed_certificate(
    node_dir: Path, ca: Path
) -> None:
    cert, key = make_cert(ca.parent, "first")
    configure(node_dir, http={"tls_cert": str(cert), "tls_key": str(key)})
    with RunningNode(node_dir) as node:
        assert node.url.startswith("https://127.0.0.1:")
        status, headers = fetch(node.url + "/web/login", ca)
        assert status == 200
        assert ("Strict-Transport-Security", "max-age=31536000") in headers
        assert cookies(headers)
        assert all("Secure" in c for c in cookies(headers)), cookies(headers)
        port = int(node.url.rsplit(":", 1)[1])
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            fetch(f"http://127.0.0.1:{port}/healthz", None)  # plain HTTP is not served
        before = peer_serial("127.0.0.1", port, ca)
        renewed, renewed_key = make_cert(ca.parent, "renewed")
        shutil.copy(renewed, cert)
        shutil.copy(renewed_key, key)
        node.process.send_signal(signal.SIGHUP)
        wait_for(
            "the renewed certificate is served",
            lambda: peer_serial("127.0.0.1", port, ca) != before,
        )
        assert "certificate reloaded" in node.logs()
        # A broken renewal keeps the certificate in use, and says why.
        cert.write_text("not a certificate")
        node.process.send_signal(signal.SIGHUP)
        wait_for("the refusal is logged", lambda: "certificate not reloaded" in node.logs())
        assert fetch(node.url + "/healthz", ca)[0] == 200


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def nginx(tmp_path: Path, ca: Path, node_dir: Path) -> Iterator[tuple[str, RunningNode]]:
    """nginx on 127.0.0.1 terminating TLS, reaching the node from 127.0.0.2 (the only
    address the node trusts as its proxy)."""
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    configure(node_dir, http={"trusted_proxies": ["127.0.0.2/32"]})
    node = RunningNode(node_dir)
    cert, key = make_cert(ca.parent, "proxy")
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = _free_port("127.0.0.1")
    upstream = node.url.removeprefix("http://")
    (prefix / "nginx.conf").write_text(f"""
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://{upstream};
            proxy_bind 127.0.0.2;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
""")
    process = subprocess.Popen(
        ["nginx", "-p", str(prefix), "-e", str(prefix / "error.log"),
         "-c", str(prefix / "nginx.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"https://127.0.0.1:{port}"
        wait_for("nginx answers", lambda: _answers(url + "/healthz", ca))
        yield url, node
    finally:
        process.terminate()
        process.wait(timeout=20)
        node.stop()


def _answers(url: str, ca: Path) -> bool:
    try:
        return fetch(url, ca)[0] == 200
    except (urllib.error.URLError, OSError):
        return False


def test_behind_nginx_cookies_are_secure_and_proxy_headers_count_only_from_the_proxy(
    nginx: tuple[str, RunningNode], ca: Path
) -> None:
    proxy_url, node = nginx
    status, headers = fetch(proxy_url + "/web/login", ca)
    assert status == 200
    assert ("Strict-Transport-Security", "max-age=31536000") in headers
    assert cookies(headers)
    assert all("Secure" in c for c in cookies(headers)), cookies(headers)
    # The same headers sent straight to the node by anyone else change nothing.
    spoofed = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-For": "127.0.0.1",
    }
    status, headers = fetch(node.url + "/web/login", None, spoofed)
    assert status == 200
    assert not any(k == "Strict-Transport-Security" for k, _ in headers)
    assert not any("Secure" in c for c in cookies(headers))
    # Through the proxy, a client's own X-Forwarded-For does not make it another
    # address: the node reads the chain from the right and stops at the first address
    # that is not its proxy (here the client's loopback, which may see operator views).
    assert fetch(proxy_url + "/api/v1/peers", ca, {"X-Forwarded-For": "8.8.8.8"})[0] == 200


def test_two_nodes_reach_each_other_over_https(tmp_path: Path, ca: Path) -> None:
    anchor = tmp_path / "anchor.key"
    write_key(anchor, demo_anchor())
    cluster = Cluster(tmp_path / "net", anchor, 2, direct=(0, 1), prefix="127.0.0")  # IPS
    try:
        for i, directory in enumerate(cluster.dirs):
            cert, key = make_cert(ca.parent, f"node{i}")
            configure(
                directory,
                http={
                    "tls_cert": str(cert),
                    "tls_key": str(key),
                    "public_url": f"https://{cluster.hosts[i]}:{cluster.ports[i]}",
                },
            )
        seeds = (f"https://{cluster.hosts[0]}:{cluster.ports[0]}",)
        cluster.network_file.write_text(
            NetworkFile("demo", (demo_anchor().public,), seeds=seeds).to_toml(), encoding="utf-8"
        )
        cluster.start()
        for i in range(2):
            assert cluster.url(i).startswith("https://")
        wait_for(
            "each node knows the other, over HTTPS",
            lambda: (
                directory_names(cluster.url(0), "node")
                == directory_names(cluster.url(1), "node")
                == {"Hôpital 0", "Hôpital 1"}
            ),
            timeout=60,
        )
    finally:
        cluster.close()
