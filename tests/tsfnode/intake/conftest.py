"""Real DICOM files nobody here wrote: those shipped with pydicom, pydicom-data and
deid-data, read from their installed folders (never downloaded)."""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import deid_data
import pydicom
import pytest

from tsfnode.intake.importer import Importer, ImportReport, _read_dicom
from tsfnode.intake.pseudonyms import PseudonymMap

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
DEID_FILES = Path(deid_data.__file__).parent / "data"


def pydicom_data_folder() -> Path:
    import data_store  # the module of the pydicom-data package

    return Path(data_store.__file__).parent / "data"


SOURCES = [PYDICOM_FILES, pydicom_data_folder(), DEID_FILES]


@dataclass
class Pair:
    name: str
    original: bytes
    output: Path


@dataclass
class Imported:
    root: Path
    importer: Importer
    report: ImportReport
    pairs: list[Pair]


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: .ci/run installs it")
        pytest.skip(f"{name} is not installed here (CI installs it)")
    return path


@pytest.fixture(scope="session")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Imported:
    root = tmp_path_factory.mktemp("intake")
    importer = Importer(root / "intake", PseudonymMap(root / "keys"))
    report = importer.run(SOURCES)
    outputs = {p.stem: p for p in (root / "intake").rglob("*.dcm")}
    # Some files hold the same instance (one image in several transfer syntaxes): the
    # last one imported is the one on disk, as for an instance sent twice.
    pairs: dict[str, Pair] = {}
    scratch = ImportReport()
    refused = {r.name for r in report.rejected}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for source in importer.sources(SOURCES, scratch):
            if source.name in refused:
                continue
            data = source.read()
            try:
                ds = _read_dicom(data)
            except Exception:  # noqa: S112 - not DICOM: the importer said why
                continue
            uid = str(ds.get("SOPInstanceUID", ""))
            new = importer.anonymizer.new_uid(uid) if uid else ""
            if new in outputs:
                pairs[new] = Pair(source.name, data, outputs[new])
    return Imported(root, importer, report, list(pairs.values()))
