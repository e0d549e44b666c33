"""A hospital's DICOM side for tests: free loopback ports, dcmtk's storescp, Orthanc.

A port found free may be taken by another program on the machine (another test run,
a demo network) before the server started here binds it: the server then exits, while
the port answers for the other program. So a server is waited for until the port is
held by its own process (``listening_by``, from /proc), and started again on other
ports if it exits first, ``PORT_ATTEMPTS`` times at most."""

from __future__ import annotations

import contextlib
import json
import os
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


PORT_ATTEMPTS = 5


def listening_by(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a TCP socket listening on ``port`` (its sockets'
    inodes, from /proc/PID/fd, among the listening ones of /proc/net/tcp and tcp6)."""
    inodes = set()
    with contextlib.suppress(OSError):  # the process is gone
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[len("socket:[") : -1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and inode in inodes:
                    return True
    return False


def started_on_free_ports(
    start: Callable[[list[int]], subprocess.Popen[bytes]], ports: int, what: str, timeout: float
) -> tuple[subprocess.Popen[bytes], list[int]]:
    """``start(ports)`` on ``ports`` free ports, until its process listens on all of them
    (another program may take one first: the process exits, and it is started again on
    others); the process and its ports."""
    for attempt in range(PORT_ATTEMPTS):
        chosen = [free_port() for _ in range(ports)]
        process = start(chosen)

        def settled(process: subprocess.Popen[bytes] = process, chosen: list[int] = chosen) -> bool:
            exited = process.poll() is not None
            return exited or all(listening_by(process.pid, port) for port in chosen)

        try:
            wait_for(f"{what} listening", settled, timeout=timeout)
        except BaseException:
            process.kill()
            process.wait(20)
            raise
        if process.poll() is None:
            return process, chosen
        if attempt == PORT_ATTEMPTS - 1:
            raise RuntimeError(f"{what} exited at start {PORT_ATTEMPTS} times (ports taken?)")
    raise AssertionError("unreachable")


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[Callable[..., tuple[int, Path]]]:
    """dcmtk's storescp as the PACS "HOROS" on a free loopback port, its files in its own
    folder (``extra`` are its options): call it to start one, get (port, folder)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> tuple[int, Path]:
        def run(ports: list[int]) -> subprocess.Popen[bytes]:
            out = tmp_path / f"storescp-{ports[0]}"
            out.mkdir()
            command = ["storescp", "--aetitle", "HOROS", "-uf", "-od", str(out), *extra,
                       str(ports[0])]  # fmt: skip
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            started.append(process)
            return process

        _, (port,) = started_on_free_ports(run, 1, "storescp", timeout=20)
        return port, tmp_path / f"storescp-{port}"

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
    folder.mkdir()

    def run(ports: list[int]) -> subprocess.Popen[bytes]:
        http_port, dicom_port = ports
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
        return subprocess.Popen(
            [str(ORTHANC), str(folder / "orthanc.json")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=folder,
        )

    process, (http_port, dicom_port) = started_on_free_ports(run, 2, "Orthanc", timeout=60)
    try:
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
