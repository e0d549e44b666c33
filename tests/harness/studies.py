"""Studies for tests and benchmarks, made from real images nobody here wrote."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from tests.harness.data import pydicom_data_folder

CT = pydicom_data_folder() / "693_UNCI.dcm"  # a real 512x512 CT slice (pydicom-data)


def ct_series(folder: Path, slices: int) -> list[Path]:
    """A CT series of ``slices`` slices 1 mm apart: the real slice ``CT``, each copy with
    its own UIDs, position and instance number, its pixels shifted down by one row."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        template = pydicom.dcmread(CT)
    arr = template.pixel_array
    study, series = generate_uid(), generate_uid()
    x, y, z = (float(v) for v in template.ImagePositionPatient)
    paths = []
    for i in range(slices):
        ds = template.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [x, y, z - i * 1.0]
        ds.PixelData = np.roll(arr, i, axis=0).tobytes()
        path = folder / f"slice{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
