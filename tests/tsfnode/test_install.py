"""A hospital's IT person installs a node without the source: the wheel built from this
checkout, installed into a fresh virtual environment, runs a node; the systemd unit
that `tsfnode service install` writes passes `systemd-analyze verify`; a node run by
systemd says when it is ready and keeps its watchdog fed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.harness.nodes import RunningNode, get, get_json, tsfnode
from tests.harness.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
DATA = (
    "tsfnode/web/templates/case.html",
    "tsfnode/web/static/viewer.js",
    "tsfnode/intake/data/ps315_e11_2026c.csv",
    "tsfnode/locale/fr/LC_MESSAGES/tsfnode.po",
    "protocol/vectors.json",
    "bootstrap/networks/demo.toml",
    "simulations/scenarios/pilot_2008.toml",
)


def _build(kind: str, out: Path) -> Path:
    """The wheel or sdist of this checkout, built as a release would build it."""
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            f"--{kind}",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    (built,) = out.glob("*.whl" if kind == "wheel" else "*.tar.gz")
    return built


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_runs_a_node(tmp_path: Path) -> None:
    wheel = _build("wheel", tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(DATA) <= names, set(DATA) - names
    assert not any(n.startswith("tests/") for n in names)
    sdist = _build("sdist", tmp_path / "dist")
    with tarfile.open(sdist) as tar:
        inside = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert set(DATA) <= inside, set(DATA) - inside

    venv = tmp_path / "venv"
    # No pip of its own (copying one in took most of this test's time): this
    # environment's pip installs into it (--python).
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    # The wheel itself, offline; its dependencies come from this test's environment,
    # appended after the fresh venv's own packages (no network, no editable checkout).
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "Successfully installed tsfnode" in installed.stdout, installed.stdout
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    found = subprocess.run(
        [str(python), "-c", "import tsfnode; print(tsfnode.__file__)"],
        capture_output=True, text=True, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert found.stdout.startswith(str(venv)), found.stdout + found.stderr
    command = venv / "bin" / "tsfnode"
    node = tmp_path / "node"
    made = subprocess.run(
        [str(command), "init", str(node), "--name", "CHU Parakou", "--port", "0"],
        capture_output=True, text=True, check=False, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    log = open(tmp_path / "node.log", "wb")
    process = subprocess.Popen(
        [str(command), "run", str(node)], env=env, cwd=tmp_path, stdout=log, stderr=log
    )
    try:
        wait_for("the installed node answers", lambda: (node / "run.json").exists())
        url = __import__("json").loads((node / "run.json").read_text())["url"]
        wait_for("healthz", lambda: get_json(url + "/healthz") is not None)
        status, _, page = get(url + "/web/login", {"Accept-Language": "fr"})
        assert status == 200
        assert "Mot de passe" in page  # the templates and the French catalogue are inside
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_the_service_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    node = tmp_path / "srv" / "tsfnode"
    assert tsfnode("init", node, "--name", "CHU Parakou", "--port", "0").returncode == 0
    units = tmp_path / "units"
    user = os.environ.get("USER") or "root"
    made = tsfnode(
        "service", "install", node, "--unit-dir", units, "--no-create-user", "--user", user,
        "--executable", str(Path(sys.executable).parent / "tsfnode"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    unit = units / "tsfnode.service"
    text = unit.read_text()
    for line in (
        "Type=notify",
        "ProtectSystem=strict",
        f"ReadWritePaths={node.resolve()}",
        "Restart=on-failure",
        "WatchdogSec=60s",
        "NoNewPrivileges=true",
        f"User={user}",
    ):
        assert line in text.splitlines(), line
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert str(unit) not in verified.stderr, verified.stderr  # no warning about the unit


def test_a_node_under_systemd_says_it_is_ready_and_feeds_the_watchdog(tmp_path: Path) -> None:
    node = tmp_path / "node"
    assert tsfnode("init", node, "--name", "CHU Parakou", "--port", "0").returncode == 0
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify))
        listener.settimeout(30)
        env = {"NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "1000000"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            running = RunningNode(node)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        try:
            seen: list[str] = []
            while not ({"READY=1", "WATCHDOG=1"} <= {m.split("\n")[0] for m in seen}):
                assert len(seen) < 20, seen
                seen.append(listener.recv(4096).decode())
            assert any(m.startswith("READY=1") and "STATUS=serving on" in m for m in seen)
            running.stop()
            rest: list[str] = []
            listener.settimeout(5)
            try:  # until it says it is stopping (not until 5 s of silence), 10 messages at most
                while "STOPPING=1" not in rest and len(rest) < 10:
                    rest.append(listener.recv(4096).decode())
            except TimeoutError:
                pass
            assert "STOPPING=1" in rest
        finally:
            running.stop()
