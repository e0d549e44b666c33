"""The listing's DICOM JSON model is pydicom's, made faster: the same dictionary for
every real file at hand (pydicom's test files, pydicom-data, deid-data)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.harness.data import DEID_FILES, PYDICOM_FILES, pydicom_data_folder
from tsfnode.images import dicomjson
from tsfnode.images.listing import BULK, BULK_THRESHOLD, dicomweb_record
from tsfnode.images.render import read_header

pytestmark = pytest.mark.filterwarnings("ignore")


def _headers() -> list[Path]:
    found = []
    for folder in (PYDICOM_FILES, pydicom_data_folder(), DEID_FILES):
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    read_header(path)
            except Exception:  # noqa: S112 - not DICOM, or not readable by pydicom
                continue
            found.append(path)
    return found


def _pydicom(path: Path) -> dict[str, object]:
    ds = read_header(path)
    return ds.to_json_dict(
        BULK_THRESHOLD, lambda e: f"{BULK}{e.tag:08X}", suppress_invalid_tags=True
    )


def test_the_json_model_is_pydicoms_for_every_real_file() -> None:
    paths = _headers()
    assert len(paths) > 200  # the three collections (243 files), not an empty folder
    differ = [
        p.name
        for p in paths
        if dicomjson.to_json_dict(read_header(p), BULK_THRESHOLD, BULK) != _pydicom(p)
    ]
    assert differ == []


def test_the_listing_carries_that_model(tmp_path: Path) -> None:
    path = PYDICOM_FILES / "CT_small.dcm"
    record = dicomweb_record(path, read_header(path))
    expected = _pydicom(path)
    assert {k: v for k, v in record["meta"].items() if k in expected} == expected
