"""Transcoding for WADO-RS and the CD export (dicomweb/transcode.py), on real files
(pydicom's test files: a 16-bit CT, a 10-frame JPEG-LS MR, 8-bit RGB secondary capture,
a JPEG 2000 ultrasound, a structured report), each result read back by pydicom and
checked by dicom3tools' dciodvfy."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from tests.harness.data import read_dicom as read
from tsfnode.dicomweb.transcode import (
    CannotTranscode,
    can_produce,
    file_bytes,
    frame_bytes,
    producible,
)

LOSSLESS = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
    JPEGLSLossless,
    JPEG2000Lossless,
)
FILES = ("CT_small.dcm", "emri_small_jpeg_ls_lossless.dcm", "SC_rgb.dcm", "US1_J2KR.dcm")


def _path(name: str) -> Path:
    return Path(str(get_testdata_file(name)))


def _sent(name: str, syntax: str) -> Dataset:
    path = _path(name)
    stored = str(read(path).file_meta.TransferSyntaxUID)
    return read(io.BytesIO(file_bytes(path, stored, syntax)))  # type: ignore[arg-type]


def _errors(data: Dataset, tmp_path: Path) -> list[str]:
    """dciodvfy's errors on a file (dicom3tools does not read deflated files)."""
    path = tmp_path / "checked.dcm"
    data.save_as(path, enforce_file_format=True)
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("syntax", LOSSLESS)
def test_lossless_transcoding_keeps_every_pixel(name: str, syntax: str, tmp_path: Path) -> None:
    original = read(_path(name))
    assert syntax in can_produce(original.to_json_dict())
    sent = _sent(name, syntax)
    assert sent.file_meta.TransferSyntaxUID == syntax
    assert sent.SOPInstanceUID == original.SOPInstanceUID
    assert np.array_equal(sent.pixel_array, original.pixel_array)
    assert str(sent.get("LossyImageCompression", "00")) == str(
        original.get("LossyImageCompression", "00")
    )
    if syntax != DeflatedExplicitVRLittleEndian:
        assert _errors(sent, tmp_path) == _errors(original, tmp_path)  # nothing new wrong


def test_baseline_jpeg_of_8_bit_images_is_close_and_marked_lossy(tmp_path: Path) -> None:
    for name in ("SC_rgb.dcm", "US1_J2KR.dcm"):
        original = read(_path(name))
        sent = _sent(name, JPEGBaseline8Bit)
        assert sent.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
        assert sent.PhotometricInterpretation == "YBR_FULL_422"
        difference = np.abs(sent.pixel_array.astype(float) - original.pixel_array)
        assert 0 < difference.mean() < 3  # lossy, and close
        assert sent.LossyImageCompression == "01"
        assert sent.LossyImageCompressionMethod == "ISO_10918_1"
        assert float(sent.LossyImageCompressionRatio) > 1
        assert not [e for e in _errors(sent, tmp_path) if "Photometric" in e or "Lossy" in e]


def test_12_and_16_bit_images_are_never_baseline_jpeg_and_the_reason_is_given() -> None:
    ct = read(_path("CT_small.dcm"))
    why = producible(ct.to_json_dict())[JPEGBaseline8Bit]
    assert "8-bit" in why
    assert "16 bits stored" in why
    assert ExplicitVRBigEndian not in can_produce(ct.to_json_dict())  # retired, not written
    with pytest.raises(CannotTranscode, match="8-bit"):
        file_bytes(_path("CT_small.dcm"), str(ct.file_meta.TransferSyntaxUID), JPEGBaseline8Bit)


@pytest.mark.parametrize(("syntax", "method"), [(JPEG2000, "ISO_15444_1"),
                                                (JPEGLSNearLossless, "ISO_14495_1")])  # fmt: skip
def test_other_lossy_syntaxes_are_marked_with_their_method(syntax: str, method: str) -> None:
    original = read(_path("CT_small.dcm"))
    sent = _sent("CT_small.dcm", syntax)
    assert (sent.LossyImageCompression, sent.LossyImageCompressionMethod) == ("01", method)
    assert not np.array_equal(sent.pixel_array, original.pixel_array)
    if syntax == JPEGLSNearLossless:  # NEAR=2: no pixel further than 2 from the original
        difference = np.abs(sent.pixel_array.astype(int) - original.pixel_array)
        assert difference.max() <= 2


def test_a_palette_colour_image_is_never_compressed_with_loss() -> None:
    palette = read(_path("OBXXXX1A.dcm"))
    reasons = producible(palette.to_json_dict())
    assert "palette" in reasons[JPEGBaseline8Bit]
    assert reasons[JPEGLSLossless] == ""


def test_a_report_without_pixels_goes_in_any_syntax() -> None:
    report = read(_path("test-SR.dcm"))
    assert "PixelData" not in report
    assert JPEGLSLossless in can_produce(report.to_json_dict())
    sent = _sent("test-SR.dcm", JPEGLSLossless)
    assert sent.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert sent.ContentSequence == report.ContentSequence


def test_frames_are_encoded_one_by_one() -> None:
    mr = read(_path("emri_small_jpeg_ls_lossless.dcm"))
    decoded = mr.pixel_array
    for syntax in (JPEG2000Lossless, RLELossless):
        (frame,) = frame_bytes(mr, [4], syntax)
        single = read(_path("emri_small_jpeg_ls_lossless.dcm"))
        single.NumberOfFrames = 1
        single.PixelData = encapsulate([frame])
        single.file_meta.TransferSyntaxUID = syntax
        assert np.array_equal(single.pixel_array, decoded[3])
    (native,) = frame_bytes(mr, [2], ExplicitVRLittleEndian)
    assert native == decoded[1].astype("<u2").tobytes()
