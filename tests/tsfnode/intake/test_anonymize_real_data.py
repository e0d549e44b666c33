"""Every parsable image of pydicom, pydicom-data and deid-data goes through intake and
de-identification; nothing identifying survives, the output still parses and validates
as well as its input did."""

from __future__ import annotations

import io
import re
import subprocess
import warnings
from collections import Counter
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from tests.tsfnode.intake.conftest import Imported, require_tool
from tsfnode.intake.descriptors import CLEANED
from tsfnode.intake.profile import load_profile

# The real files carry odd values on purpose (pydicom's own test data): pydicom warns
# about them while we read them back to check the output.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
PROFILE = load_profile()
# Descriptions (E.3.5), kept cleaned: where a sequence repeats the procedure's description
# (a scheduled step's), the same words are no leak.
DESCRIPTIONS = {*CLEANED, 0x00400007}
STRUCTURAL = re.compile(r"ClassUID$|TransferSyntaxUID$")


def read(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(io.BytesIO(data), force=True)


def identifying_values(ds: Dataset, out: set[str], kept: set[str]) -> None:
    """Values the profile removes or replaces (``out``), and values it keeps (``kept``)."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                identifying_values(item, out, kept)
            continue
        if elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or elem.value is None:
            continue
        values = elem.value if elem.VM > 1 else [elem.value]
        texts = [str(v).strip() for v in values]
        if int(elem.tag) in DESCRIPTIONS and PROFILE.clean_descriptors:
            continue  # kept, cleaned (E.3.5): test_descriptors_are_kept_without_names
        action = None if elem.tag.is_private else PROFILE.action(int(elem.tag))
        structural = bool(STRUCTURAL.search(elem.keyword or ""))
        removed = (
            elem.tag.is_private
            or (action is not None and action != "K")
            or elem.VR == "PN"
            or (elem.VR == "UI" and not structural)
        )
        if elem.VR in ("DA", "DT", "TM"):
            # Dates are shifted (test_dates_are_shifted_by_one_interval_per_patient): a
            # shifted date may by chance equal another original date. Times of day stay.
            continue
        for text in texts:
            if elem.VR == "UI" and text.startswith("1.2.840.10008."):
                continue
            (out if removed else kept).add(text)


def without_pixels(data: bytes) -> bytes:
    ds = read(data)
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:
            del ds[keyword]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def test_real_files_are_taken_or_refused_with_a_reason(imported: Imported) -> None:
    report = imported.report
    assert len(report.taken) >= 100
    # files that hold an instance already taken (pydicom's MR_small in many syntaxes)
    assert len(report.taken) + len(report.repeated) >= 150
    assert len(imported.pairs) >= 100
    for rejected in report.rejected:
        assert rejected.reason
        assert rejected.name
    reasons = Counter(r.reason.split(" (")[0] for r in report.rejected)
    assert "truncated pixel data" in reasons  # MR_truncated.dcm and its kind


def test_no_identifying_value_survives_anywhere_in_the_output(imported: Imported) -> None:
    leaks = []
    for pair in imported.pairs:
        removed: set[str] = set()
        kept: set[str] = set()
        identifying_values(read(pair.original), removed, kept)
        # Pixel data is binary: a short ASCII value can occur in it by chance. Burned-in
        # text is the burned-in check's matter (test_burned_in_images_are_flagged).
        output = without_pixels(pair.output.read_bytes())
        # The node's new UIDs (2.25 and 39 random digits) hold any short number by
        # chance ('123456' was found in one): numbers are looked for outside them.
        outside_uids = re.sub(rb"2\.25\.[0-9]{1,39}", b"", output)
        for value in removed - kept:
            if len(value) < 4 or set(value) <= set("0.:-+ "):
                continue
            if value.replace(".", "").isdigit() and len(value) < 6:
                continue  # short numbers occur by chance elsewhere too (lengths, counts)
            if any(value in k for k in kept):
                continue  # part of a value the profile keeps (a manufacturer's name...)
            numeric = value.replace(".", "").isdigit()
            if value.encode("latin-1", "ignore") in (outside_uids if numeric else output):
                leaks.append((pair.name.split("site-packages/")[-1], value))
    assert leaks == [], "\n".join(f"{n}: {v!r}" for n, v in leaks)


def test_descriptors_are_kept_without_names(imported: Imported) -> None:
    """PS3.15 E.3.5: the descriptions a reader needs survive, with no word of a name."""
    kept = 0
    for pair in imported.pairs:
        before, after = read(pair.original), read(pair.output.read_bytes())
        names = re.split(r"[\^=\s,]+", str(before.get("PatientName", "")))
        for tag in CLEANED:
            text = str(after.get(tag).value) if tag in after else ""
            for name in names:
                if len(name) >= 3:
                    assert not re.search(rf"\b{re.escape(name)}\b", text, re.I), (pair.name, text)
            kept += bool(text)
    assert kept >= 50


def test_outputs_parse_and_say_how_they_were_de_identified(imported: Imported) -> None:
    for pair in imported.pairs:
        ds = read(pair.output.read_bytes())
        assert ds.PatientIdentityRemoved == "YES"
        codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
        assert codes == {"113100", "113105", "113107", "113108"}
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
        assert str(ds.PatientID).startswith("P")
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert pair.output.read_bytes()[:128] == bytes(128)


def test_uids_stay_consistent_across_a_study(imported: Imported) -> None:
    studies: dict[str, set[str]] = {}
    for pair in imported.pairs:
        before, after = read(pair.original), read(pair.output.read_bytes())
        studies.setdefault(str(before.StudyInstanceUID), set()).add(str(after.StudyInstanceUID))
        assert after.SOPInstanceUID != before.SOPInstanceUID
        assert str(after.SOPInstanceUID).startswith("2.25.")
    assert all(len(new) == 1 for new in studies.values())
    assert len(studies) >= 20


def test_dates_are_shifted_by_one_interval_per_patient(imported: Imported) -> None:
    from datetime import date

    def day(text: str) -> date:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))

    shifts: dict[str, set[int]] = {}
    for pair in imported.pairs:
        before, after = read(pair.original), read(pair.output.read_bytes())
        for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
            old, new = before.get(keyword), after.get(keyword)
            if old and new and len(str(old)) == 8:
                shifts.setdefault(str(after.PatientID), set()).add(
                    (day(str(new)) - day(str(old))).days
                )
    assert shifts
    for patient, values in shifts.items():
        assert len(values) == 1, (patient, values)
        assert next(iter(values)) <= -365


def dciodvfy_errors(path: Path) -> set[str]:
    result = subprocess.run(
        [require_tool("dciodvfy"), "-new", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
        check=False,
    )
    errors = set()
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("Error"):
            # Values differ by design (dummies, shifted dates): compare the messages,
            # which name the attribute and the rule.
            errors.add(re.sub(r"= <[^>]*>|\"[^\"]*\"|\b\d+\b", "#", line))
    return errors


def test_images_pass_dciodvfy_with_no_new_errors(imported: Imported, tmp_path: Path) -> None:
    new_errors = {}
    compared = unreadable = 0
    for i, pair in enumerate(imported.pairs):
        original = tmp_path / f"in{i}.dcm"
        original.write_bytes(pair.original)
        before = dciodvfy_errors(original)
        if any("read failed" in e for e in before):
            unreadable += 1  # dciodvfy cannot read the input (deflated, cut short): no baseline
            continue
        compared += 1
        added = dciodvfy_errors(pair.output) - before
        if added:
            new_errors[pair.name] = sorted(added)
    assert new_errors == {}
    assert compared >= 80
    assert unreadable <= 5
