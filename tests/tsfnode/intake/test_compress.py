"""Lossless compression round-trips bit-exact on the real images; lossy is flagged."""

from __future__ import annotations

import io
import warnings

import numpy
import pydicom
import pytest

from tests.harness.data import PYDICOM_FILES, pydicom_data_folder
from tests.tsfnode.intake.conftest import Imported
from tsfnode.intake.compress import compress_lossless, compress_lossy

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.timeout(600)  # decodes every real image twice: minutes on a loaded machine
def test_lossless_round_trips_bit_exact_on_every_real_image(imported: Imported) -> None:
    compressed = 0
    total_before = total_after = 0
    for pair in imported.pairs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(pair.output)
            if "PixelData" not in ds or ds.file_meta.TransferSyntaxUID.is_compressed:
                continue
            try:
                original = ds.pixel_array.copy()
            except Exception:  # noqa: S112 - pixel data pydicom cannot read either
                continue
            before = len(ds.PixelData)
            if not compress_lossless(ds):
                continue
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            again = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
            assert again.SOPInstanceUID == ds.SOPInstanceUID
            assert numpy.array_equal(again.pixel_array, original), pair.name
        compressed += 1
        total_before += before
        total_after += len(ds.PixelData)
    assert compressed >= 30
    assert total_after < total_before


def test_lossy_is_for_plain_films_and_says_so() -> None:
    film = pydicom.dcmread(pydicom_data_folder() / "RG1_UNCR.dcm")
    assert film.Modality in ("CR", "RG", "DX")
    assert compress_lossy(film, ratio=10)
    assert film.LossyImageCompression == "01"
    assert "ISO_15444_1" in film.LossyImageCompressionMethod
    ct = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm", download=False))
    assert not compress_lossy(ct, ratio=10)  # never for cross-sectional imaging


@pytest.mark.parametrize("name", ["liver.dcm", "CT_small.dcm", "SC_rgb.dcm"])
def test_transport_encoding_is_lossless_and_no_larger(name: str) -> None:
    from tsfnode.intake.compress import encode_for_transport

    folder = pydicom_data_folder()
    path = folder / name if (folder / name).exists() else PYDICOM_FILES / name
    ds = pydicom.dcmread(path)
    original = ds.pixel_array.copy()
    encoded = encode_for_transport(ds)
    assert len(encoded) <= path.stat().st_size
    again = pydicom.dcmread(io.BytesIO(encoded))
    assert numpy.array_equal(again.pixel_array, original)
    assert again.SOPInstanceUID == ds.SOPInstanceUID
