"""A hospital's DICOM side for tests: free loopback ports, dcmtk's storescp, Orthanc."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.waiting import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[Callable[..., tuple[int, Path]]]:
    """dcmtk's storescp as the PACS "HOROS" on a free loopback port, its files in its own
    folder (``extra`` are its options): call it to start one, get (port, folder)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> tuple[int, Path]:
        port = free_port()
        out = tmp_path / f"storescp-{port}"
        out.mkdir()
        command = ["storescp", "--aetitle", "HOROS", "-uf", "-od", str(out), *extra, str(port)]
        started.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        wait_for("storescp listening", lambda: listening(port), timeout=20)
        return port, out

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


ORTHANC = Path("/usr/sbin/Orthanc")


@contextlib.contextmanager
def orthanc_running(
    folder: Path, ae_title: str, modalities: dict[str, list[Any]], **options: Any
) -> Iterator[tuple[int, int]]:
    """Orthanc (Debian) as ``ae_title`` in ``folder``, with free HTTP and DICOM ports,
    reached from 127.0.0.1 only, knowing the DICOM nodes ``modalities`` (name: [AE,
    host, port]), with more configuration ``options`` (e.g. AcceptedTransferSyntaxes):
    (HTTP port, DICOM port)."""
    if not ORTHANC.exists():
        pytest.fail("Orthanc is not installed: apt-get install orthanc (.ci/run does)")
    http_port, dicom_port = free_port(), free_port()
    folder.mkdir()
    config = {
        "Name": f"orthanc-{ae_title.lower()}",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ae_title,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAlwaysAllowStore": True,
        "DicomCheckCalledAet": True,
        "Plugins": [],
        "LuaScripts": [],
        "DicomModalities": modalities,
        **options,
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [str(ORTHANC), str(folder / "orthanc.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=folder,
    )
    try:
        wait_for("Orthanc answers", lambda: listening(http_port) and listening(dicom_port),
                 timeout=60)  # fmt: skip
        yield http_port, dicom_port
    finally:
        process.terminate()
        process.wait(20)


def orthanc_get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as response:
        return json.loads(response.read()) if "/file" not in path else response.read()


def orthanc_post(port: int, path: str, body: Any) -> Any:
    """A POST of ``body`` (JSON, or bytes as they are: a DICOM file to /instances) to
    Orthanc's REST API: its JSON answer."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())
