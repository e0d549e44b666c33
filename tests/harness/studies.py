"""Studies for tests and benchmarks, made from real images nobody here wrote."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

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


def reader_instance(sop_class: str, modality: str, source: Dataset, **extra: object) -> Dataset:
    """An instance a reader's workstation makes from ``source`` (an instance of the
    case's study, as the reader's node holds it): a key object selection, a presentation
    state, an SR... of class ``sop_class``, in ``source``'s (pseudonymised) patient and
    study, in a series and with a UID of its own, referencing ``source``; ``extra``:
    more attributes by keyword."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate"):
        setattr(ds, keyword, source.get(keyword, ""))
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, 900, 1
    if "SOPInstanceUID" in source:
        reference = Dataset()
        reference.ReferencedSOPClassUID = source.SOPClassUID
        reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
        series = Dataset()
        series.SeriesInstanceUID = source.SeriesInstanceUID
        series.ReferencedSOPSequence = [reference]
        ds.ReferencedSeriesSequence = [series]
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def part10(ds: Dataset) -> bytes:
    """``ds`` as a DICOM file's bytes (preamble, file meta, data set)."""
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
