"""Other programs that move studies, started hermetically beside the nodes, so that a
benchmark can time them on the same files in the same run: Orthanc's peer store and
Syncthing (Debian's `orthanc` and `syncthing`, installed by `.ci/run`), and a raw
aiohttp stream (always there).

Each starter makes its own temporary folders and configuration, listens on free ports
of 127.0.0.1, and is stopped (killed if it must be) when its ``with`` block ends. When a
program is missing, ``missing(...)`` says why and the benchmark prints the reason
instead of the figure.

* **Orthanc 1.10** (``OrthancPair``): a sender and a receiver; the sender's
  ``OrthancPeers`` lists the receiver, and a study goes by ``POST /peers/receiver/store``
  (``Synchronous``: the answer comes once the receiver has answered for every instance),
  HTTP being what a hospital's Orthanc uses to send over the internet (C-STORE between
  sites needs open DICOM ports and has no encryption; Orthanc's documentation points
  to its peers, over HTTPS, for that). Orthanc 1.10 has no option for the address it
  listens on: its HTTP server listens on every interface, and ``RemoteAccessAllowed:
  false`` makes it refuse any client that is not on this machine; its DICOM server is
  off (``DicomServerEnabled: false``), so no DICOM port is opened.
* **Syncthing 1.19** (``SyncthingPair``): two instances, each with its own ``--home``,
  its GUI/REST and its sync listener on 127.0.0.1 free ports, global and local
  discovery, relays, NAT traversal, usage and crash reporting and upgrades off; each
  knows the other by its device id at a fixed address. The sender's folder is
  send-only, the receiver's receive-only; no file-system watcher, no periodic rescan:
  the benchmark asks for the scan (``scan``), which is how files are queued, and
  ``completion`` is the sender's view of what the receiver holds (Syncthing's receipt).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ORTHANC = "/usr/sbin/Orthanc"
SYNCTHING = "/usr/bin/syncthing"
START_TIMEOUT_S = 60
# A readiness probe waits at most this long for an answer, then the process is looked at
# again: a port taken by a program that listens and never answers must not hold the probe
# for a request's whole timeout while the program we started has already exited.
PROBE_TIMEOUT_S = 1.0


def missing(program: str) -> str:
    """Why ``program`` cannot be measured here ("" if it can)."""
    if not Path(program).exists() and shutil.which(Path(program).name) is None:
        return f"{Path(program).name} is not installed (apt-get install {_package(program)})"
    return ""


def _package(program: str) -> str:
    return "orthanc" if "rthanc" in program else Path(program).name


def _binary(program: str) -> str:
    return program if Path(program).exists() else str(shutil.which(Path(program).name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 600,
) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 URLs made here
        url, data=body, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def _wait(what: str, ready: Any, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``ready()`` is true, bounded in time; the program's log if it died."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError, ValueError):
            if ready():
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready within {START_TIMEOUT_S} s")


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    """Ask every process to stop, then wait for each: a pair stops in the time of its
    slower half (Orthanc takes about 2 s to stop its HTTP server), not of both in turn."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


# --- Orthanc -------------------------------------------------------------------------


PORT_ATTEMPTS = 5  # another program on the machine may take a port we found free


class Orthanc:
    """One Orthanc process with its own storage, on a free HTTP port of 127.0.0.1."""

    def __init__(self, folder: Path, name: str, peers: dict[str, list[str]] | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True)
        for attempt in range(PORT_ATTEMPTS):  # a free port may be taken before Orthanc binds it
            try:
                self._start(name, peers)
                return
            except RuntimeError as exc:
                if "already in use" not in str(exc) or attempt == PORT_ATTEMPTS - 1:
                    raise

    def _start(self, name: str, peers: dict[str, list[str]] | None) -> None:
        folder = self.folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "Name": name,
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "storage"),
            "TemporaryDirectory": str(folder / "tmp"),
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,  # only this machine's clients (see the module)
            "AuthenticationEnabled": False,
            "DicomServerEnabled": False,  # no DICOM port: the peers go over HTTP
            "Plugins": [],
            "OrthancPeers": peers or {},
            "SaveJobs": False,
            "HttpsVerifyPeers": False,
            "StableAge": 3600,  # no Lua or plug-in waits for stability here
            "LogExportedResources": False,
        }
        (folder / "orthanc.json").write_text(json.dumps(config))
        self.log = folder / "orthanc.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [_binary(ORTHANC), str(folder / "orthanc.json")],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=folder,
            )
        _wait(
            f"Orthanc {name}",
            lambda: self.get("/system", timeout=PROBE_TIMEOUT_S)[0] == 200,
            self.process,
            self.log,
        )

    def get(self, path: str, timeout: float = 10) -> tuple[int, bytes]:
        return _http("GET", self.url + path, timeout=timeout)

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        return _http("POST", self.url + path, body)

    def upload(self, path: Path) -> dict[str, Any]:
        """``POST /instances`` of one DICOM file: Orthanc's answer (ids of the instance
        and its study)."""
        status, body = self.post("/instances", path.read_bytes())
        if status != 200:
            raise RuntimeError(f"Orthanc refused {path.name}: HTTP {status} {body[:200]!r}")
        answer: dict[str, Any] = json.loads(body)
        return answer

    def studies(self) -> list[str]:
        status, body = self.get("/studies")
        return list(json.loads(body)) if status == 200 else []

    def series_of(self, study: str) -> list[str]:
        status, body = self.get(f"/studies/{study}/series")
        return [s["ID"] for s in json.loads(body)] if status == 200 else []

    def instance_count(self) -> int:
        status, body = self.get("/statistics")
        return int(json.loads(body)["CountInstances"]) if status == 200 else 0

    def close(self) -> None:
        _stop(self.process)


class OrthancPair:
    """A sender and a receiver, the receiver in the sender's ``OrthancPeers``."""

    def __init__(self, folder: Path) -> None:
        self.receiver = Orthanc(folder / "receiver", "receiver")
        try:
            self.sender = Orthanc(
                folder / "sender", "sender", peers={"receiver": [self.receiver.url + "/"]}
            )
        except BaseException:
            self.receiver.close()
            raise

    def peer_store(self, resources: list[str]) -> None:
        """Send studies (or series, instances) to the receiver, synchronously: done when
        the receiver has answered for each instance."""
        body = json.dumps({"Resources": resources, "Synchronous": True}).encode()
        status, answer = self.sender.post("/peers/receiver/store", body)
        if status != 200:
            raise RuntimeError(f"Orthanc's peer store failed: HTTP {status} {answer[:300]!r}")

    def close(self) -> None:
        _stop(self.sender.process, self.receiver.process)


@contextlib.contextmanager
def orthanc_pair() -> Iterator[OrthancPair]:
    with tempfile.TemporaryDirectory(prefix="bench-orthanc-") as folder:
        pair = OrthancPair(Path(folder))
        try:
            yield pair
        finally:
            pair.close()


# --- Syncthing -----------------------------------------------------------------------

_SYNCTHING_CONFIG = """<configuration version="36">
    <folder id="studies" label="studies" path="{me.folder}" type="{kind}" rescanIntervalS="0"
            fsWatcherEnabled="false" fsWatcherDelayS="10" ignorePerms="false" autoNormalize="true">
        <device id="{me.device_id}" introducedBy=""></device>
        <device id="{peer.device_id}" introducedBy=""></device>
        <minDiskFree unit="%">0</minDiskFree>
    </folder>
    <device id="{me.device_id}" name="{me.name}" compression="metadata">
        <address>dynamic</address>
    </device>
    <device id="{peer.device_id}" name="peer" compression="metadata">
        <address>tcp://127.0.0.1:{peer.listen_port}</address>
    </device>
    <gui enabled="true" tls="false">
        <address>127.0.0.1:{me.gui_port}</address>
        <apikey>{me.api_key}</apikey>
    </gui>
    <options>
        <listenAddress>tcp://127.0.0.1:{me.listen_port}</listenAddress>
        <globalAnnounceEnabled>false</globalAnnounceEnabled>
        <localAnnounceEnabled>false</localAnnounceEnabled>
        <relaysEnabled>false</relaysEnabled>
        <natEnabled>false</natEnabled>
        <urAccepted>-1</urAccepted>
        <urSeen>3</urSeen>
        <crashReportingEnabled>false</crashReportingEnabled>
        <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
        <startBrowser>false</startBrowser>
        <reconnectionIntervalS>1</reconnectionIntervalS>
        <progressUpdateIntervalS>-1</progressUpdateIntervalS>
        <setLowPriority>false</setLowPriority>
        <minHomeDiskFree unit="%">0</minHomeDiskFree>
        <announceLANAddresses>false</announceLANAddresses>
        <stunServer></stunServer>
    </options>
</configuration>
"""


class Syncthing:
    """One Syncthing process, its home and its shared folder in ``root``."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.home = root / "home"
        self.folder = root / "studies"
        self.folder.mkdir(parents=True)
        (self.folder / ".stfolder").mkdir()
        self.gui_port, self.listen_port = free_port(), free_port()
        self.api_key = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.gui_port}"
        made = subprocess.run(
            [_binary(SYNCTHING), "generate", f"--home={self.home}", "--no-default-folder"],
            capture_output=True,
            text=True,
            env=self._env(),
            timeout=60,
            check=True,
        )
        said = (made.stdout + made.stderr).splitlines()  # its log goes to stderr
        found = [line for line in said if "Device ID:" in line]
        self.device_id = found[0].split("Device ID:")[1].strip()
        self.process: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.root),  # nothing written to the user's own folders
            "STNOUPGRADE": "1",
            "STNORESTART": "1",
            "STNODEFAULTFOLDER": "1",
        }

    def start(self, peer: Syncthing, kind: str) -> None:
        (self.home / "config.xml").write_text(
            _SYNCTHING_CONFIG.format(me=self, peer=peer, kind=kind)
        )
        self.log = self.root / "syncthing.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [
                    _binary(SYNCTHING),
                    "serve",
                    f"--home={self.home}",
                    "--no-browser",
                    "--no-restart",
                    "--no-upgrade",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env(),
            )

    def rest(self, method: str, path: str) -> Any:
        headers = {"X-API-Key": self.api_key}
        status, body = _http(method, self.url + path, headers=headers, timeout=10)
        if status != 200:
            raise ValueError(f"syncthing {path}: HTTP {status}")
        return json.loads(body) if body.strip() else None

    def connected_to(self, peer: Syncthing) -> bool:
        connections = self.rest("GET", "/rest/system/connections")["connections"]
        return bool(connections.get(peer.device_id, {}).get("connected"))

    def close(self) -> None:
        if self.process is not None:
            _stop(self.process)


class SyncthingPair:
    def __init__(self, root: Path) -> None:
        self.sender = Syncthing(root / "sender", "sender")
        self.receiver = Syncthing(root / "receiver", "receiver")
        try:
            self.sender.start(self.receiver, "sendonly")
            self.receiver.start(self.sender, "receiveonly")
            for node, other in ((self.sender, self.receiver), (self.receiver, self.sender)):
                assert node.process is not None
                _wait(
                    f"syncthing {node.name} connected",
                    lambda node=node, other=other: node.connected_to(other),
                    node.process,
                    node.log,
                )
        except BaseException:
            self.close()
            raise

    def scan(self) -> None:
        """Ask the sender to scan its folder now (what queues files in Syncthing)."""
        self.sender.rest("POST", "/rest/db/scan?folder=studies")

    def completion(self) -> dict[str, Any]:
        """The sender's view of the receiver's copy of the folder."""
        found: dict[str, Any] = self.sender.rest(
            "GET", f"/rest/db/completion?folder=studies&device={self.receiver.device_id}"
        )
        return found

    def wait_synced(self, sizes: dict[str, int], timeout: float = 600) -> None:
        """Until the sender knows the receiver needs nothing more and the receiver's
        folder holds each file of ``sizes`` (name: bytes) whole (polled every 5 ms,
        bounded in time): the sender's view alone can be out of date right after a
        scan."""
        deadline = time.monotonic() + timeout
        folder = self.receiver.folder
        while time.monotonic() < deadline:
            whole = all(
                (folder / name).is_file() and (folder / name).stat().st_size == size
                for name, size in sizes.items()
            )
            if whole:
                done = self.completion()
                if done.get("needItems") == 0 and done.get("globalItems", 0) >= len(sizes):
                    return
            time.sleep(0.005)
        raise RuntimeError(f"syncthing did not sync {len(sizes)} files within {timeout} s")

    def close(self) -> None:
        _stop(*(n.process for n in (self.sender, self.receiver) if n.process is not None))


@contextlib.contextmanager
def syncthing_pair() -> Iterator[SyncthingPair]:
    with tempfile.TemporaryDirectory(prefix="bench-syncthing-") as folder:
        pair = SyncthingPair(Path(folder))
        try:
            yield pair
        finally:
            pair.close()
