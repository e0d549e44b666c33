"""Inputs as senders bring them: folders, zips (some hostile), CDs, photos of films,
files that are not what they claim. Each bad one is named with its reason; the rest of
the same import is kept; nothing is written outside the intake folder."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import pydicom
import pytest
from PIL import Image

from tests.harness.data import PYDICOM_FILES, pydicom_data_folder
from tests.tsfnode.intake.conftest import require_tool
from tsfnode.intake.importer import Importer, ImportReport
from tsfnode.intake.pseudonyms import PseudonymMap

CT = PYDICOM_FILES / "CT_small.dcm"
MR = PYDICOM_FILES / "MR_small.dcm"


def run(tmp_path: Path, *paths: Path) -> tuple[ImportReport, Path]:
    intake = tmp_path / "node" / "intake"
    report = Importer(intake, PseudonymMap(tmp_path / "node" / "keys")).run(list(paths))
    return report, intake


def reasons(report: ImportReport) -> dict[str, str]:
    return {Path(r.name.split("!")[-1]).name: r.reason for r in report.rejected}


def test_a_mixed_folder_keeps_the_good_and_names_the_bad(tmp_path: Path) -> None:
    folder = tmp_path / "upload"
    folder.mkdir()
    shutil.copy(CT, folder / "scan.dcm")
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "notes.txt").write_text("Patient: DUPONT Marie, née le 01/02/1980")
    (folder / "cut.dcm").write_bytes(CT.read_bytes()[:3000])
    (folder / "fake.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    report, intake = run(tmp_path, folder)
    assert len(report.taken) == 1
    assert reasons(report) == {
        "empty.dcm": "empty file",
        "notes.txt": "not a DICOM file or a photo",
        "cut.dcm": reasons(report)["cut.dcm"],
        "fake.jpg": "not a JPEG or PNG image",
    }
    assert "without pixel data" in reasons(report)["cut.dcm"]
    assert len(list(intake.rglob("*.dcm"))) == 1


def test_absurd_dimensions_are_refused(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT)
    ds.Rows = 0
    bad = tmp_path / "zero.dcm"
    ds.save_as(bad)
    report, _ = run(tmp_path, bad)
    assert "absurd image dimensions" in reasons(report)["zero.dcm"]


def test_zip_with_path_traversal_and_a_bomb(tmp_path: Path) -> None:
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(CT, "series1/ct.dcm")
        z.write(MR, "series2/mr.dcm")
        z.writestr("../../etc/evil.dcm", CT.read_bytes())
        z.writestr("/abs/evil2.dcm", CT.read_bytes())
        z.writestr("bomb.bin", b"\x00" * (64 * 1024 * 1024))
    report, intake = run(tmp_path, archive)
    assert len(report.taken) == 2
    found = reasons(report)
    assert found["evil.dcm"] == "path leaves the archive (refused)"
    assert found["evil2.dcm"] == "path leaves the archive (refused)"
    assert "zip bomb" in found["bomb.bin"]
    everything = {p.resolve() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(tmp_path.resolve() in p.parents for p in everything)
    assert not (tmp_path.parent / "etc").exists()
    assert all(intake.resolve() in p.resolve().parents for p in intake.rglob("*.dcm"))


def test_a_damaged_zip_is_named(tmp_path: Path) -> None:
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    report, _ = run(tmp_path, archive)
    assert report.rejected[0].reason == "damaged zip archive"


def test_a_cd_with_dicomdir_is_read_whole(tmp_path: Path) -> None:
    cd = tmp_path / "cdrom"
    shutil.copytree(PYDICOM_FILES / "dicomdirtests", cd)
    report, _ = run(tmp_path, cd)
    assert report.skipped  # the DICOMDIR index itself
    studies = report.studies
    assert len(studies) >= 2
    assert sum(sum(s.values()) for s in studies.values()) == len(report.taken)


def photo(kind: str, size: tuple[int, int] = (640, 480), **save: object) -> bytes:
    image = Image.new("RGB" if kind != "gray" else "L", size, 128)
    for x in range(0, size[0], 8):
        image.putpixel((x, x % size[1]), 255 if kind == "gray" else (255, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG" if kind == "png" else "JPEG", **save)
    return buffer.getvalue()


def test_photos_of_films_become_one_series_and_pass_dciodvfy(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "film1.jpg").write_bytes(photo("rgb"))
    (folder / "film2.jpg").write_bytes(photo("gray"))
    (folder / "film3.png").write_bytes(photo("png"))
    (folder / "film4.jpg").write_bytes(photo("rgb", progressive=True))
    report, intake = run(tmp_path, folder)
    assert len(report.taken) == 4
    assert len(report.studies) == 1
    assert len(next(iter(report.studies.values()))) == 1  # one series
    assert all(r.burned_in for r in report.taken)
    dciodvfy = require_tool("dciodvfy")
    for path in sorted(intake.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        assert ds.ConversionType == "DF"
        result = subprocess.run(
            [dciodvfy, "-new", str(path)], capture_output=True, text=True, check=False
        )
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
        assert errors == [], (path.name, errors)
    wrapped = [pydicom.dcmread(p) for p in intake.rglob("*.dcm")]
    baseline = [d for d in wrapped if d.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"]
    assert len(baseline) == 2  # the two baseline JPEGs, wrapped as they were
    original = (folder / "film1.jpg").read_bytes()
    assert any(original in bytes(d.PixelData) for d in baseline)
    assert all(d.LossyImageCompression == "01" for d in baseline)


@pytest.mark.parametrize("name", ["US1_UNCR.dcm", "SC_rgb.dcm"])
def test_burned_in_images_are_flagged(tmp_path: Path, name: str) -> None:
    report, _ = run(tmp_path, pydicom_data_folder() / name)
    assert report.taken[0].burned_in
    report, _ = run(tmp_path / "ct", CT)
    assert report.taken[0].burned_in == []


def test_import_command_reports_what_it_took_and_refused(node_dir: Path, tmp_path: Path) -> None:
    from tests.harness.nodes import tsfnode

    folder = tmp_path / "cd"
    folder.mkdir()
    shutil.copy(CT, folder / "IM1")
    shutil.copy(MR, folder / "IM2")
    (folder / "readme.txt").write_text("Hôpital de zone")
    result = tsfnode("import", folder, "--node", node_dir)
    assert result.returncode == 0, result.stderr
    assert "Taken / importés: 2 file(s) in 2 study(ies); refused / refusés: 1" in result.stdout
    assert "readme.txt: not a DICOM file or a photo" in result.stdout
    assert "import" in result.stderr  # the progress bar
    assert len(list((node_dir / "intake").rglob("*.dcm"))) == 2
    assert (node_dir / "pseudonyms" / "pseudonyms.bin").exists()
    key = node_dir / "pseudonyms" / "pseudonyms.key"
    assert key.stat().st_mode & 0o077 == 0
    assert b"CompressedSamples" not in (node_dir / "pseudonyms" / "pseudonyms.bin").read_bytes()


def test_a_mask_blacks_out_a_rectangle_and_nothing_else(tmp_path: Path) -> None:
    from tsfnode.intake.burnedin import mask_regions

    _report, intake = run(tmp_path, pydicom_data_folder() / "US1_UNCR.dcm")
    path = next(intake.rglob("*.dcm"))
    ds = pydicom.dcmread(path)
    before = ds.pixel_array.copy()
    mask_regions(ds, [(10, 5, 100, 20)])
    ds.save_as(path, enforce_file_format=True)
    after = pydicom.dcmread(path).pixel_array
    assert (after[5:25, 10:110] == 0).all()
    outside = after.copy()
    outside[5:25, 10:110] = before[5:25, 10:110]
    assert (outside == before).all()
    assert pydicom.dcmread(path).BurnedInAnnotation == "NO"
    from tests.tsfnode.intake.test_anonymize_real_data import dciodvfy_errors

    assert dciodvfy_errors(path) <= dciodvfy_errors(pydicom_data_folder() / "US1_UNCR.dcm")
    with pytest.raises(ValueError, match="outside the image"):
        mask_regions(ds, [(5000, 0, 10, 10)])
