"""PS3.15 E.3.5 Clean Descriptors Option on a real CT (pydicom-data's CQ500 slice): the
series description a radiologist reads survives de-identification; a patient's name, ids
and dates planted in it do not (issue 22, item 9)."""

from __future__ import annotations

import warnings

from pydicom import dcmread

from tests.harness.data import pydicom_data_folder
from tsfnode.intake.anonymize import Anonymizer, Patient
from tsfnode.intake.profile import load_profile


def _ct() -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(pydicom_data_folder() / "693_UNCI.dcm")


def _anonymized(ds: object, **options: bool) -> object:
    anonymizer = Anonymizer(
        load_profile(**options), secret=b"s" * 32, patient_of=lambda _: Patient("P1", -400)
    )
    anonymizer.anonymize(ds)  # type: ignore[arg-type]
    return ds


def test_a_series_description_survives_de_identification() -> None:
    ds = _anonymized(_ct())
    assert ds.SeriesDescription == "5/5mm Plain"  # type: ignore[attr-defined]
    codes = {c.CodeValue for c in ds.DeidentificationMethodCodeSequence}  # type: ignore[attr-defined]
    assert "113105" in codes  # Clean Descriptors Option


def test_a_name_id_and_date_planted_in_descriptions_are_cleaned_out() -> None:
    ds = _ct()
    ds.PatientName = "Mensah^Akosua"  # type: ignore[attr-defined]
    ds.AccessionNumber = "ACC7731"  # type: ignore[attr-defined]
    ds.InstitutionName = "CHU Cotonou"  # type: ignore[attr-defined]
    ds.SeriesDescription = "ABDOMEN PELVIS 5mm MENSAH Akosua ACC7731"  # type: ignore[attr-defined]
    ds.StudyDescription = "CT abdomen 12/03/2026 CHU Cotonou 20260312"  # type: ignore[attr-defined]
    ds.ProtocolName = "Akosua"  # type: ignore[attr-defined]
    ds = _anonymized(ds)
    assert ds.SeriesDescription == "ABDOMEN PELVIS 5mm"  # type: ignore[attr-defined]
    assert ds.StudyDescription == "CT abdomen"  # type: ignore[attr-defined]
    assert "Akosua" not in str(ds.get("ProtocolName", ""))  # type: ignore[attr-defined]


def test_without_the_option_descriptions_are_removed_as_the_basic_profile_says() -> None:
    ds = _anonymized(_ct(), clean_descriptors=False)
    assert "SeriesDescription" not in ds  # type: ignore[operator]
