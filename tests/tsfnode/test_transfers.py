"""Bundles between real node processes on loopback: sealed from a reviewed study,
delivered directly or through a relay, received byte for byte, acknowledged by a
signed receipt; through cuts, kills and bad relays."""

from __future__ import annotations

import json
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from protocol.documents import decode_document
from tests.cluster import Cluster, wait_for
from tests.nodes import get_json, tsfnode
from tests.tsfnode.intake.conftest import PYDICOM_FILES, pydicom_data_folder
from tsfnode.intake.compress import encode_for_transport

pytestmark = pytest.mark.slow
RADIOGRAPH = pydicom_data_folder() / "RG1_UNCR.dcm"  # 7 MB, many chunks
CT = PYDICOM_FILES / "CT_small.dcm"
QUICK = {"transfer": {"poll_interval_ms": 500, "retry_base_ms": 200}}


@pytest.fixture
def pair(tmp_path: Path, anchor_key: Path) -> Iterator[Cluster]:
    """Node 0 sends (Cotonou), node 1 reads (Erasme)."""
    c = Cluster(tmp_path, anchor_key, 2, **QUICK)
    try:
        yield c
    finally:
        c.close()


def import_study(directory: Path, source: Path) -> str:
    result = tsfnode("import", source, "--node", directory, "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    studies = tsfnode("studies", "--node", directory).stdout.split()
    return studies[0]


def seal(directory: Path, study: str, *to: str) -> str:
    args: list[Any] = ["seal", directory, study]
    for node in to:
        args += ["--to", node]
    result = tsfnode(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.split("bundle ")[1].split()[0]


def get_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        data: bytes = response.read()
    return data


def transfers(url: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = get_json(f"{url}/api/v1/transfers")
    return listed


def state_of(url: str, bundle: str, direction: str) -> str | None:
    found = [t for t in transfers(url) if t["bundle_id"] == bundle and t["direction"] == direction]
    return found[0]["state"] if found else None


def expected_files(intake_study: Path) -> dict[str, bytes]:
    """What the sender sealed: each intake file as encoded for the journey."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(intake_study.glob("*/*.dcm")):
            out[f"{path.parent.name}/{path.name}"] = encode_for_transport(pydicom.dcmread(path))
    return out


def received_files(directory: Path, bundle: str) -> dict[str, bytes]:
    root = directory / "received" / bundle / "files"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.dcm")}


def test_a_study_goes_directly_and_a_signed_receipt_comes_back(pair: Cluster) -> None:
    sender, reader = pair.dirs
    study = import_study(sender, RADIOGRAPH)
    bundle = seal(sender, study, pair.ids[1])
    pair.start()
    wait_for(
        "the delivery is acknowledged",
        lambda: state_of(pair.url(0), bundle, "out") == "delivered",
        timeout=90,
    )
    assert state_of(pair.url(1), bundle, "in") == "complete"
    assert received_files(reader, bundle) == expected_files(sender / "intake" / study)
    case = json.loads((reader / "received" / bundle / "case.json").read_text())
    assert case == {"study_uid": study, "urgency": "routine"}
    (out,) = [t for t in transfers(pair.url(0)) if t["bundle_id"] == bundle]
    assert out["route"] == "direct"
    assert out["bytes_done"] == out["size"]
    assert out["done_ms"] is not None
    # The receipt the sender checked: signed by the reader's node, for this bundle.
    doc = decode_document(get_bytes(f"{pair.url(1)}/peer/v1/bundles/{bundle}/receipt"))
    assert doc.signer.text == pair.ids[1]
    assert doc.body["bundle_id"].hex() == bundle


def test_a_study_with_an_unchecked_image_is_not_sealed(pair: Cluster) -> None:
    sender = pair.dirs[0]
    study = import_study(sender, PYDICOM_FILES / "examples_rgb_color.dcm")
    result = tsfnode("seal", sender, study, "--to", pair.ids[1])
    assert result.returncode == 2
    assert "may show the patient's identity" in result.stderr
    assert not (sender / "blobs").exists() or not any((sender / "blobs").rglob("*"))
