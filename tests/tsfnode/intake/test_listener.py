"""The node's DICOM listener, driven by dcmtk's real clients (echoscu, storescu, dcmsend)."""

from __future__ import annotations

import socket
import subprocess
import tomllib
from pathlib import Path

import pydicom
import tomli_w

from tests.harness.data import PYDICOM_FILES
from tests.harness.nodes import RunningNode
from tests.tsfnode.intake.conftest import require_tool

CT = PYDICOM_FILES / "CT_small.dcm"
JPEG_LS = PYDICOM_FILES / "MR_small_jpeg_ls_lossless.dcm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def enable_dicom(node_dir: Path) -> int:
    port = free_port()
    path = node_dir / "config.toml"
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    config["dicom"] = {"ae_title": "TSF_ERASME", "port": port}
    config["discovery"] = {"mdns": False}
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    return port


def dcmtk(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool(str(args[0])), *map(str, args[1:])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def received(node_dir: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted((node_dir / "intake").rglob("*.dcm"))]


def test_echo_and_store_from_dcmtk(node_dir: Path) -> None:
    port = enable_dicom(node_dir)
    with RunningNode(node_dir) as node:
        echo = dcmtk("echoscu", "-aec", "TSF_ERASME", "127.0.0.1", port)
        assert echo.returncode == 0, echo.stderr
        store = dcmtk("storescu", "-aec", "TSF_ERASME", "127.0.0.1", port, CT)
        assert store.returncode == 0, store.stderr
        send = dcmtk("dcmsend", "--call", "TSF_ERASME", "127.0.0.1", port, JPEG_LS)
        assert send.returncode == 0, send.stderr
        wrong = dcmtk("echoscu", "-aec", "SOMEONE_ELSE", "127.0.0.1", port)
        assert wrong.returncode != 0  # the called AE title is checked
    datasets = received(node_dir)
    assert len(datasets) == 2
    assert all(ds.PatientIdentityRemoved == "YES" for ds in datasets)
    syntaxes = {str(ds.file_meta.TransferSyntaxUID) for ds in datasets}
    assert "1.2.840.10008.1.2.4.80" in syntaxes  # JPEG-LS arrived and stayed compressed
    logs = node.logs()
    assert '"c-store received"' in logs
    assert "CompressedSamples" not in logs  # the patient's name from CT_small


def test_a_refused_instance_gets_a_failure_status(node_dir: Path, tmp_path: Path) -> None:
    port = enable_dicom(node_dir)
    ds = pydicom.dcmread(CT)
    ds.Rows = 0  # absurd
    bad = tmp_path / "bad.dcm"
    ds.save_as(bad)
    with RunningNode(node_dir):
        store = dcmtk("storescu", "-aec", "TSF_ERASME", "127.0.0.1", port, bad)
    assert store.returncode != 0  # storescu reports the failure status it got
    assert received(node_dir) == []
