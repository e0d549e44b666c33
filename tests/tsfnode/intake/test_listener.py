"""The node's DICOM listener, driven by dcmtk's real clients (echoscu, storescu, dcmsend),
the node in this process."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

import pydicom
from pytest_aiohttp import AiohttpClient

from tests.harness.data import PYDICOM_FILES
from tests.harness.inprocess import LocalNode, node_log, start_local_node
from tests.tsfnode.intake.conftest import require_tool

CT = PYDICOM_FILES / "CT_small.dcm"
JPEG_LS = PYDICOM_FILES / "MR_small_jpeg_ls_lossless.dcm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def listening_node(tmp_path: Path, aiohttp_client: AiohttpClient) -> tuple[LocalNode, int]:
    """A node in this process whose DICOM listener (pynetdicom, in its own thread) takes
    C-STORE on a free port of 127.0.0.1."""
    port = free_port()
    node = await start_local_node(
        tmp_path / "erasme", aiohttp_client, dicom_ae_title="TSF_ERASME", dicom_port=port
    )
    return node, port


async def dcmtk(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """A dcmtk client, run off the loop (the node's HTTP side stays served)."""
    return await asyncio.to_thread(
        subprocess.run,
        [require_tool(str(args[0])), *map(str, args[1:])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def received(node_dir: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted((node_dir / "intake").rglob("*.dcm"))]


async def test_echo_and_store_from_dcmtk(tmp_path: Path, aiohttp_client: AiohttpClient) -> None:
    with node_log() as log:
        node, port = await listening_node(tmp_path, aiohttp_client)
        echo = await dcmtk("echoscu", "-aec", "TSF_ERASME", "127.0.0.1", port)
        assert echo.returncode == 0, echo.stderr
        store = await dcmtk("storescu", "-aec", "TSF_ERASME", "127.0.0.1", port, CT)
        assert store.returncode == 0, store.stderr
        send = await dcmtk("dcmsend", "--call", "TSF_ERASME", "127.0.0.1", port, JPEG_LS)
        assert send.returncode == 0, send.stderr
        wrong = await dcmtk("echoscu", "-aec", "SOMEONE_ELSE", "127.0.0.1", port)
        assert wrong.returncode != 0  # the called AE title is checked
    datasets = received(node.root)
    assert len(datasets) == 2
    assert all(ds.PatientIdentityRemoved == "YES" for ds in datasets)
    syntaxes = {str(ds.file_meta.TransferSyntaxUID) for ds in datasets}
    assert "1.2.840.10008.1.2.4.80" in syntaxes  # JPEG-LS arrived and stayed compressed
    logs = log.getvalue()
    assert '"c-store received"' in logs
    assert "CompressedSamples" not in logs  # the patient's name from CT_small


async def test_a_refused_instance_gets_a_failure_status(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    ds = pydicom.dcmread(CT)
    ds.Rows = 0  # absurd
    bad = tmp_path / "bad.dcm"
    ds.save_as(bad)
    node, port = await listening_node(tmp_path, aiohttp_client)
    store = await dcmtk("storescu", "-aec", "TSF_ERASME", "127.0.0.1", port, bad)
    assert store.returncode != 0  # storescu reports the failure status it got
    assert received(node.root) == []
