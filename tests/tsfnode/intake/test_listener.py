"""The node's DICOM listener, driven by dcmtk's real clients (echoscu, storescu, dcmsend),
the node in this process."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pydicom
from pytest_aiohttp import AiohttpClient

from tests.harness.data import PYDICOM_FILES
from tests.harness.inprocess import node_log, start_local_node
from tests.harness.pacs import free_port
from tests.tsfnode.intake.conftest import dcmtk, encapsulated_pdf, listening_node
from tsfnode.auth.accounts import bind_workstation
from tsfnode.store.accounts import AccountStore

CT = PYDICOM_FILES / "CT_small.dcm"
JPEG_LS = PYDICOM_FILES / "MR_small_jpeg_ls_lossless.dcm"


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


async def test_an_encapsulated_pdf_is_refused_with_its_reason(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    document = await encapsulated_pdf(
        tmp_path,
        "report",
        "Report for DUPONT Jean, born 1961",
        "+pn",
        "DUPONT^Jean",
        "+pi",
        "12345",
    )
    with node_log() as log:
        node, port = await listening_node(tmp_path, aiohttp_client)
        store = await dcmtk("storescu", "-d", "-aec", "TSF_ERASME", "127.0.0.1", port, document)
    assert store.returncode != 0  # a failure status, not Success with an empty document
    assert "0x0122" in store.stderr  # Refused: SOP Class not supported
    assert "may identify the patient" in store.stderr  # the Error Comment, shown by dcmtk
    assert received(node.root) == []
    logs = log.getvalue()
    assert '"c-store refused"' in logs
    assert "an encapsulated document" in logs
    assert "DUPONT" not in logs


async def test_a_repeated_instance_never_replaces_the_first_silently(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    lossy = pydicom.dcmread(CT)
    lossy.LossyImageCompression = "01"  # the same instance, once lossy-compressed
    lossy_path = tmp_path / "lossy.dcm"
    lossy.save_as(lossy_path)
    with node_log() as log:
        node, port = await listening_node(tmp_path, aiohttp_client)
        first = await dcmtk("storescu", "-d", "-aec", "TSF_ERASME", "127.0.0.1", port, lossy_path)
        assert first.returncode == 0, first.stderr
        (stored,) = sorted((node.root / "intake").rglob("*.dcm"))
        held = stored.read_bytes()
        again = await dcmtk("storescu", "-d", "-aec", "TSF_ERASME", "127.0.0.1", port, lossy_path)
        assert again.returncode == 0, again.stderr  # a warning status
        assert "first copy was kept" in again.stderr
        assert stored.read_bytes() == held  # the copy held is untouched
        lossless = await dcmtk("storescu", "-d", "-aec", "TSF_ERASME", "127.0.0.1", port, CT)
        assert lossless.returncode == 0, lossless.stderr
        assert "lossy copy was replaced" in lossless.stderr
        lossy_again = await dcmtk(
            "storescu", "-d", "-aec", "TSF_ERASME", "127.0.0.1", port, lossy_path
        )
        assert "first copy was kept" in lossy_again.stderr
    (only,) = received(node.root)
    assert only.get("LossyImageCompression") != "01"  # the lossless copy is the one kept
    logs = log.getvalue()
    assert logs.count('"c-store repeated instance"') == 3
    assert '"kept": "lossless"' in logs


def open_garbage(port: int, count: int) -> list[socket.socket]:
    """``count`` connections to the listener: half say an HTTP request, half nothing."""
    opened = []
    for n in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if n % 2 == 0:
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        opened.append(s)
    return opened


def closed_by_peer(s: socket.socket, deadline: float) -> bool:
    """Whether the node closed ``s`` before ``deadline`` (monotonic), reading what it
    says (an A-ABORT) until then."""
    import time

    while time.monotonic() < deadline:
        s.settimeout(max(0.1, min(1.0, deadline - time.monotonic())))
        try:
            if s.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset by the node: closed too
            return True
    return False


async def test_connections_without_dicom_do_not_block_modalities(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    import time

    node, port = await listening_node(
        tmp_path, aiohttp_client, dicom_artim_timeout_s=2, dicom_network_timeout_s=5,
        dicom_max_associations_per_address=0,  # ARTIM alone here; the cap per address:
    )  # tests/security/test_network_connection_limits.py  # fmt: skip
    garbage = open_garbage(port, 20)  # a port scan, HTTP health checks
    try:
        echo = await dcmtk("echoscu", "-aec", "TSF_ERASME", "127.0.0.1", port)
        assert echo.returncode == 0, echo.stderr
        store = await dcmtk("storescu", "-aec", "TSF_ERASME", "127.0.0.1", port, CT)
        assert store.returncode == 0, store.stderr
        deadline = time.monotonic() + 60  # generous: the node closes them after 2 s
        still_open = [
            n
            for n, s in enumerate(garbage)
            if not await asyncio.to_thread(closed_by_peer, s, deadline)
        ]
        assert still_open == []
    finally:
        for s in garbage:
            s.close()
    assert len(received(node.root)) == 1


async def test_only_the_listed_calling_ae_titles_may_send(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    port = free_port()
    with node_log() as log:
        node = await start_local_node(
            tmp_path / "erasme",
            aiohttp_client,
            dicom_ae_title="TSF_ERASME",
            dicom_port=port,
            dicom_calling_ae_titles=("CT_SCANNER", "PACS@192.0.2.10"),
        )
        allowed = await dcmtk(
            "storescu", "-aet", "CT_SCANNER", "-aec", "TSF_ERASME", "127.0.0.1", port, CT
        )
        assert allowed.returncode == 0, allowed.stderr
        stranger = await dcmtk(
            "storescu", "-aet", "INTRUDER", "-aec", "TSF_ERASME", "127.0.0.1", port, JPEG_LS
        )
        assert stranger.returncode != 0
        assert "Calling AE Title Not Recognized" in stranger.stderr
        elsewhere = await dcmtk(  # PACS may call, but from its own address only
            "storescu", "-aet", "PACS", "-aec", "TSF_ERASME", "127.0.0.1", port, JPEG_LS
        )
        assert elsewhere.returncode != 0
    assert len(received(node.root)) == 1
    refusals = [
        json.loads(line)
        for line in log.getvalue().splitlines()
        if '"dicom association refused"' in line
    ]
    assert {(r["calling_ae"], r["reason"].split(" ")[0]) for r in refusals} == {
        ("INTRUDER", "calling"),
        ("PACS", "this"),
    }


async def test_a_workstation_bound_to_an_account_is_admitted_for_query_retrieve_only(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    node, port = await listening_node(
        tmp_path, aiohttp_client, dicom_calling_ae_titles=("CT_SCANNER",)
    )
    find = ("findscu", "-S", "-aet", "HOROS", "-aec", "TSF_ERASME", "-k",
            "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", "127.0.0.1", port)  # fmt: skip
    before = await dcmtk(*find)
    assert before.returncode != 0
    assert "Calling AE Title Not Recognized" in before.stderr
    marie = await node.account("marie", "reader")
    account = await AccountStore(node.store.db).account(marie.username)
    assert account is not None
    await bind_workstation(
        node.store, account_id=account.id, ae_title="HOROS", host="127.0.0.1", port="11112",
        now=node.clock.now_ms(),
    )  # fmt: skip
    assert (await dcmtk(*find)).returncode == 0  # admitted at once, no restart
    echo = await dcmtk("echoscu", "-aet", "HOROS", "-aec", "TSF_ERASME", "127.0.0.1", port)
    assert echo.returncode == 0, echo.stderr
    store = await dcmtk("storescu", "-aet", "HOROS", "-aec", "TSF_ERASME", "127.0.0.1", port, CT)
    assert store.returncode != 0  # a workstation retrieves; it does not send into intake
    assert received(node.root) == []
