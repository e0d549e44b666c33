"""What the upload tests of tests/security share: DICOM files made from pydicom's real
test files with the values an attacker chose, zip archives of them, and the two ways in
(the light client's `/api/v1/uploads`, the web uploader's batches) driven as their
clients drive them."""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pydicom
from pydicom import config as pydicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from tests.harness.data import PYDICOM_FILES
from tests.harness.inprocess import LocalNode, WebBrowser

CT = PYDICOM_FILES / "CT_small.dcm"
MR = PYDICOM_FILES / "MR_small.dcm"
PATIENT = "DUPONT^MARIE"
CLAIM = "tsfnode: PS3.15 Basic Profile"  # what tsfnode writes in DeidentificationMethod


def dataset(source: Path = CT, **values: str) -> Dataset:
    """``source`` read, with a patient named PATIENT and ``values`` set as they are (UIDs
    that are not UIDs included: the reader of a file never sees them checked)."""
    ds = pydicom.dcmread(source)
    ds.PatientName = PATIENT
    ds.PatientID = "CNHU-4711"
    for keyword, value in values.items():
        tag = pydicom.datadict.tag_for_keyword(keyword)
        assert tag is not None, keyword
        vr = pydicom.datadict.dictionary_VR(tag)
        ds[tag] = DataElement(tag, vr, value, validation_mode=pydicom_config.IGNORE)
    return ds


def claiming_de_identified(ds: Dataset) -> Dataset:
    """``ds`` saying, as tsfnode's own output does, that its identity was removed."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = CLAIM
    return ds


def dicom_bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the values are wrong on purpose
        ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def zipped(members: dict[str, bytes], *, stored: bool = False) -> bytes:
    out = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out, "w", compression=method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


async def api_upload(node: LocalNode, token: str, data: bytes) -> tuple[int, Any]:
    """``data`` through ``/api/v1/uploads`` in one PATCH, as `tsfnode send` does for a
    small archive: the status and answer of the PATCH that ends it."""
    status, made = await node.call("/api/v1/uploads", token, "POST", {"size": len(data)})
    assert status == 201, made
    headers = {"Authorization": f"Bearer {token}", "Upload-Offset": "0"}
    async with node.client.patch(
        f"/api/v1/uploads/{made['id']}", data=data, headers=headers
    ) as response:
        return response.status, json.loads(await response.text())


async def web_sender(node: LocalNode, username: str) -> tuple[WebBrowser, str]:
    """A sender signed in on the web application, and the CSRF token its uploader sends."""
    browser = await node.browser(username)
    status, _, page = await browser.get("/web/new")
    assert status == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return browser, found[1]


async def web_batch(
    browser: WebBrowser, csrf: str, files: dict[str, bytes], *, lang: str = "en"
) -> tuple[int, Any]:
    """``files`` sent as the new-case page sends them, in one batch, then imported: the
    status and answer of the import."""
    headers = {"X-CSRF-Token": csrf}
    batch = None
    for name, data in files.items():
        async with browser.client.post(
            "/web/uploads", json={"name": name, "size": len(data), "batch": batch}, headers=headers
        ) as made:
            assert made.status == 201, await made.text()
            upload = await made.json()
        batch = upload["batch"]
        async with browser.client.patch(
            f"/web/uploads/{upload['id']}", data=data, headers={**headers, "Upload-Offset": "0"}
        ) as sent:
            assert sent.status == 200, await sent.text()
    async with browser.client.post(
        f"/web/batches/{batch}/import?lang={lang}", headers=headers
    ) as response:
        text = await response.text()
        return response.status, json.loads(text) if text.startswith("{") else text


def intake_files(root: Path) -> list[Path]:
    return sorted((root / "intake").rglob("*.dcm"))
