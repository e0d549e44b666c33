"""Issue 21, item 1: a value read from an upload never names a path on the node.

The attack as it was made, against a real node process: a file whose Study Instance UID
is ``../../x`` (and which claims to be de-identified, so that it was stored as it came)
was written outside the node's directory; one whose Study Instance UID was
``../received/<bundle>/files`` wrote into a study received from another node, which the
reader's viewer then showed. ``..`` passed the old check, ``[0-9.]{1,64}``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.harness.nodes import RunningNode, sender_token
from tests.security.upload_helpers import (
    CT,
    MR,
    claiming_de_identified,
    dataset,
    dicom_bytes,
    intake_files,
    zipped,
)
from tsfnode.intake.owners import StudyOwners
from tsfnode.intake.review import ReviewBook


def call(url: str, token: str, method: str, data: bytes, **headers: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Accept-Language", "fr")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def upload(url: str, token: str, data: bytes) -> dict[str, Any]:
    base = f"{url}/api/v1/uploads"
    json_type = {"Content-Type": "application/json"}
    status, made = call(base, token, "POST", json.dumps({"size": len(data)}).encode(), **json_type)
    assert status == 201, made
    status, answer = call(f"{base}/{made['id']}", token, "PATCH", data, **{"Upload-Offset": "0"})
    assert status == 200, answer
    return dict(answer)


@pytest.mark.slow
def test_a_uid_that_climbs_out_of_the_intake_names_no_path(node_dir: Path) -> None:
    token = sender_token(node_dir, "koffi")
    outside = node_dir.parent / "x"
    bundle = "ab" * 16  # a study received from another node, as the reader's node keeps it
    received = node_dir / "received" / bundle / "files"
    received.mkdir(parents=True)
    (received / "frame.dcm").write_bytes(b"the frame the reader's viewer shows")
    climbing = {
        "out.dcm": claiming_de_identified(dataset(CT, StudyInstanceUID="../../x")),
        "in.dcm": claiming_de_identified(
            dataset(MR, StudyInstanceUID=f"../received/{bundle}/files", SeriesInstanceUID=".")
        ),
        "series.dcm": dataset(CT, SeriesInstanceUID="1.2..3", SOPInstanceUID="1.2.3.4"),
        "zeros.dcm": dataset(MR, SOPInstanceUID="1.2.03.4"),
    }
    with RunningNode(node_dir) as node:
        answer = upload(node.url, token, zipped({k: dicom_bytes(v) for k, v in climbing.items()}))
    assert answer["count"] == 0
    refused = {r["name"]: r["reason"] for r in answer["rejected"]}
    assert set(refused) == set(climbing)
    assert "StudyInstanceUID" in refused["out.dcm"]
    assert "n'est pas un UID DICOM valide" in refused["out.dcm"]  # Accept-Language: fr
    assert "StudyInstanceUID" in refused["in.dcm"]
    assert "SeriesInstanceUID" in refused["series.dcm"]
    assert "SOPInstanceUID" in refused["zeros.dcm"]
    assert not outside.exists()
    assert [p.name for p in received.rglob("*")] == ["frame.dcm"]
    assert (received / "frame.dcm").read_bytes() == b"the frame the reader's viewer shows"
    assert intake_files(node_dir) == []
    # Nothing that reads the intake by a UID from outside takes ".." for one either.
    for climber in ("..", "../received", "1..2", "01.2"):
        assert StudyOwners(node_dir / "intake").owner(climber) is None
        with pytest.raises(Exception, match="not a Study Instance UID"):
            ReviewBook(node_dir / "intake").study_folder(climber)
