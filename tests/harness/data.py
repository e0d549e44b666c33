"""Real DICOM files nobody here wrote: those shipped with pydicom, pydicom-data and
deid-data, read from their installed folders (never downloaded)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import deid_data
import pydicom

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
DEID_FILES = Path(deid_data.__file__).parent / "data"


def pydicom_data_folder() -> Path:
    import data_store  # the module of the pydicom-data package

    return Path(data_store.__file__).parent / "data"


def read_dicom(path: Path, **options: Any) -> pydicom.Dataset:
    """``pydicom.dcmread`` without the warnings real files give (values a little off)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, **options)
