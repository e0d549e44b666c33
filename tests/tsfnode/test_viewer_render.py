"""The viewer's rendering against pydicom's own Modality LUT, VOI LUT, windowing, colour
and decoding, on real files shipped with pydicom and pydicom-data."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels.processing import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi_lut,
    apply_windowing,
)

from tests.harness.data import PYDICOM_FILES, pydicom_data_folder
from tests.harness.data import read_dicom as dataset
from tests.harness.studies import ct_series
from tsfnode.images import render
from tsfnode.images.render import (
    HEADER_SHARE,
    HEADERS_MIN,
    Renderer,
    Window,
    decode,
    is_lossy,
    orientation_markers,
    read_header,
    slice_position,
    spacing,
    to_8bit,
)

DATA = pydicom_data_folder()


DEFLATE = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian


def pydicom_window_8bit(values: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """pydicom's windowing, from its output range (PS3.3 C.11.2.1.2) to 0..255."""
    out = apply_windowing(values.astype(np.float64), ds)
    if ds.PixelRepresentation == 0:
        low, high = 0.0, 2.0**ds.BitsStored - 1
    else:
        low, high = -(2.0 ** (ds.BitsStored - 1)), 2.0 ** (ds.BitsStored - 1) - 1
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        low, high = low * slope + intercept, high * slope + intercept
    return np.rint((out - low) * 255.0 / (high - low)).astype(np.int16)


def test_the_modality_lut_is_pydicoms() -> None:
    path = DATA / "mlut_18.dcm"
    ds = dataset(path)
    assert "ModalityLUTSequence" in ds
    ours = decode(path, 0)
    assert ours.mono is not None
    assert np.array_equal(ours.mono, apply_modality_lut(ds.pixel_array, ds).astype(np.float32))


def test_the_images_own_voi_lut_is_used_as_pydicom_applies_it() -> None:
    path = DATA / "vlut_04.dcm"
    ds = dataset(path)
    values = decode(path, 0)
    expected = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds, prefer_lut=True)
    bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
    expected_8bit = np.rint(expected * 255.0 / (2**bits - 1))
    ours = to_8bit(values, read_header(path), None, invert=False)
    assert np.abs(ours.astype(np.int16) - expected_8bit).max() <= 1
    assert len(np.unique(ours)) > 50  # not a flat image


def test_the_images_window_and_a_chosen_window_match_pydicoms_windowing() -> None:
    path = PYDICOM_FILES / "MR_small.dcm"
    ds = dataset(path)
    values = decode(path, 0)
    assert values.mono is not None
    ours = to_8bit(values, ds, None, invert=False).astype(np.int16)
    assert np.abs(ours - pydicom_window_8bit(values.mono, ds)).max() <= 1
    chosen = Window(400.0, 300.0)
    ds.WindowCenter, ds.WindowWidth = chosen.centre, chosen.width
    ours = to_8bit(values, ds, chosen, invert=False).astype(np.int16)
    assert np.abs(ours - pydicom_window_8bit(values.mono, ds)).max() <= 1


def test_monochrome1_shows_low_values_white_and_invert_turns_it_back() -> None:
    path = DATA / "RG1_UNCI.dcm"
    ds = read_header(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    values = decode(path, 0)
    assert values.mono is not None
    low, high = float(values.mono.min()), float(values.mono.max())
    window = Window((low + high) / 2, high - low)
    shown = to_8bit(values, ds, window, invert=False)
    inverted = to_8bit(values, ds, window, invert=True)
    lowest = np.unravel_index(np.argmin(values.mono), values.mono.shape)
    assert shown[lowest] == 255
    assert inverted[lowest] == 0
    assert np.array_equal(shown.astype(np.int16), 255 - inverted.astype(np.int16))


@pytest.mark.parametrize("name", ["OBXXXX1A.dcm", "OBXXXX1A_rle_2frame.dcm"])
def test_palette_colour_is_pydicoms_colour_lut(name: str) -> None:
    path = DATA / name
    ds = dataset(path)
    values = decode(path, 0)
    assert values.rgb is not None
    arr = ds.pixel_array
    expected = apply_color_lut(arr[0] if arr.ndim == 3 else arr, ds)
    if expected.dtype != np.uint8:
        expected = (expected >> 8).astype(np.uint8)
    assert np.array_equal(values.rgb, expected)


def test_ybr_is_shown_as_pydicoms_rgb_for_each_frame() -> None:
    path = PYDICOM_FILES / "examples_ybr_color.dcm"
    ds = dataset(path)
    assert ds.PhotometricInterpretation.startswith("YBR")
    frames = ds.pixel_array  # pydicom converts YBR to RGB
    for index in (0, 17, 29):
        values = decode(path, index)
        assert values.rgb is not None
        assert np.array_equal(values.rgb, frames[index])


def test_each_frame_of_a_multiframe_image_is_its_own() -> None:
    path = DATA / "emri_small.dcm"
    ds = dataset(path)
    frames = apply_modality_lut(ds.pixel_array, ds)
    for index in (0, 5, 9):
        values = decode(path, index)
        assert values.mono is not None
        assert np.array_equal(values.mono, frames[index].astype(np.float32))


def decodable() -> Iterator[Path]:
    """Every compressed file of pydicom and pydicom-data that pydicom decodes here."""
    compressed = {"1.2.840.10008.1.2.4.", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.99"}
    for folder in (PYDICOM_FILES, DATA):
        for path in sorted(folder.glob("*.dcm")):
            try:
                ds = dataset(path)
                syntax = str(ds.file_meta.TransferSyntaxUID)
                if not any(syntax.startswith(c) for c in compressed) or "PixelData" not in ds:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if syntax == DEFLATE:  # its stream is inflated whole to reach the pixels
                        pydicom.dcmread(path).pixel_array  # noqa: B018 - decodes, or raises
                    else:
                        pydicom.pixels.utils.pixel_array(path, index=0)
            except Exception:  # noqa: S112 - pydicom cannot decode it either
                continue
            yield path


def test_every_compressed_file_pydicom_decodes_is_rendered_to_a_jpeg_of_its_size() -> None:
    paths = list(decodable())
    assert len(paths) >= 40  # JPEG, JPEG-LS, JPEG 2000, RLE, deflate from both packages
    renderer = Renderer()
    syntaxes = set()
    for path in paths:
        ds = read_header(path)
        syntaxes.add(str(ds.file_meta.TransferSyntaxUID))
        jpeg = renderer.render(path, 0, max_size=256, quality=80)
        image = Image.open(io.BytesIO(jpeg))
        assert image.format == "JPEG"
        rows, columns = int(ds.Rows), int(ds.Columns)
        scale = min(1.0, 256 / max(rows, columns))
        assert abs(image.size[0] - columns * scale) <= 1, path.name
        assert abs(image.size[1] - rows * scale) <= 1, path.name
    assert len(syntaxes) >= 6
    assert DEFLATE in syntaxes  # a masked photo of a film is stored so
    assert is_lossy(read_header(DATA / "RG1_J2KI.dcm"))
    assert not is_lossy(read_header(DATA / "RG1_J2KR.dcm"))


def test_orientation_position_and_spacing_of_a_ct_slice() -> None:
    ds = read_header(PYDICOM_FILES / "CT_small.dcm")
    markers = orientation_markers(ds)
    assert markers == {"right": "L", "left": "R", "bottom": "P", "top": "A"}  # axial
    assert slice_position(ds) is not None
    found = spacing(ds)
    assert found is not None
    assert found["source"] == "PixelSpacing"
    assert found["row"] == pytest.approx(float(ds.PixelSpacing[0]))


def test_a_deflate_stored_image_is_decoded_as_pydicom_decodes_it() -> None:
    """Issue 22 item 1 / 23 item 4: a Deflated Explicit VR Little Endian file (how a
    masked film photo is stored) answered 500: no Pixel Data where the file was read."""
    path = PYDICOM_FILES / "image_dfl.dcm"
    ds = dataset(path)
    assert str(ds.file_meta.TransferSyntaxUID) == DEFLATE
    values = decode(path, 0)
    assert values.mono is not None
    assert np.array_equal(values.mono, apply_modality_lut(ds.pixel_array, ds).astype(np.float32))


def test_the_renderer_keeps_a_bounded_number_of_headers_least_recently_used_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's node in the 256 MiB box kept every header it had rendered (about
    50 kB each for a CT slice) until it stopped: paging through a 2,000-slice CT took
    100 MB that way. Now at most ``headers_max``, the least recently used dropped, and a
    header dropped is read again when asked for."""
    assert Renderer(budget=256 * 1024 * 1024).headers_max == 512
    assert Renderer(budget=32 * 1024 * 1024).headers_max == HEADERS_MIN == 64
    monkeypatch.setattr(render, "HEADERS_MIN", 2)
    paths = ct_series(tmp_path, 6)
    small = Renderer(budget=1)
    for path in paths:
        assert small.render(path, 0, max_size=64)[:2] == b"\xff\xd8"
    assert list(small._headers) == paths[-2:]
    first = small.header(paths[0])  # read again
    assert list(small._headers) == [paths[-1], paths[0]]
    assert small.header(paths[0]) is first
    roomy = Renderer(budget=HEADER_SHARE * 8)
    held = [roomy.header(p) for p in paths]
    assert all(roomy.header(p) is h for p, h in zip(paths, held, strict=True))
    assert len(roomy._headers) == 6
