"""The clinical form: one schema (every field's kind, limits and keys); a complete form
passes; each wrong field is named; ages keep their unit; forms of older nodes read."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.caseform import (
    AGE_UNITS,
    CASE_FORM,
    FIELDS,
    Age,
    Kind,
    age_of,
    check_case_form,
)
from protocol.codec import pack, unpack
from protocol.errors import MalformedError


def form(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "study_uid": "2.25.1234",
        "urgency": "urgent",
        "age_years": 0,
        "age_months": 7,
        "sex": "F",
        "clinical_history": "Toux fébrile depuis 10 jours, crépitants à droite.",
        "question": "Pneumopathie ? Épanchement ?",
        "modality": "CR",
        "body_part": "thorax",
        "prior_imaging": "",
        "preliminary_reading": "Opacité basale droite ?",
        "answer_language": "fr",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def test_a_complete_form_passes_and_an_adults_form_has_no_finer_age() -> None:
    assert check_case_form(form()) == form()
    adult = check_case_form(form(age_years=54, age_months=...))
    assert "age_months" not in adult
    assert age_of(adult) == Age(54, "years")


def test_every_key_of_the_signed_form_comes_from_one_field_of_the_schema() -> None:
    keys = [key for f in FIELDS for key in f.rules()]
    assert len(keys) == len(set(keys))
    assert set(CASE_FORM.fields) == {"study_uid", *keys}
    assert [f.name for f in FIELDS] == [
        "urgency",
        "age",
        "sex",
        "modality",
        "body_part",
        "question",
        "clinical_history",
        "prior_imaging",
        "preliminary_reading",
        "answer_language",
    ]
    for f in FIELDS:
        assert f.label
        assert f.shown
        if f.kind is Kind.CHOICE:
            assert f.choices
            assert f.default is None or f.default in f.choices
        if f.kind in (Kind.LINE, Kind.TEXT):
            assert 0 <= f.min <= f.max
            assert f.required == (f.min > 0)
    by_name = {f.name: f for f in FIELDS}
    assert not by_name["prior_imaging"].required
    assert by_name["question"].required
    assert by_name["preliminary_reading"].shown != by_name["preliminary_reading"].label


@pytest.mark.parametrize(
    ("age", "keys"),
    [
        (Age(45, "years"), {"age_years": 45}),
        (Age(6, "months"), {"age_years": 0, "age_months": 6}),
        (Age(18, "months"), {"age_years": 1, "age_months": 18}),
        (Age(3, "weeks"), {"age_years": 0, "age_weeks": 3}),
        (Age(10, "days"), {"age_years": 0, "age_days": 10}),
        (Age(0, "days"), {"age_years": 0, "age_days": 0}),
    ],
)
def test_an_age_is_signed_and_read_back_in_the_unit_it_was_given(
    age: Age, keys: dict[str, int]
) -> None:
    signed = check_case_form({**form(age_years=..., age_months=...), **age.as_form()})
    assert {k: v for k, v in signed.items() if k.startswith("age_")} == keys
    again = check_case_form(unpack(pack(signed), max_size=64 * 1024))
    assert age_of(again) == age


@pytest.mark.parametrize(
    ("old", "age"),
    [
        ({"age_years": 45, "age_months": None}, Age(45, "years")),
        ({"age_years": 45}, Age(45, "years")),
        ({"age_years": 0, "age_months": 6}, Age(6, "months")),
        ({"age_years": 0, "age_months": 18}, Age(18, "months")),
        ({"age_years": 1, "age_months": 18}, Age(18, "months")),
        ({"age_years": 1, "age_months": 6}, Age(18, "months")),  # months beyond the year
        ({"age_years": 1, "age_months": 0}, Age(12, "months")),
    ],
)
def test_forms_signed_by_older_nodes_read_with_their_age(old: dict[str, Any], age: Age) -> None:
    signed = check_case_form({**form(age_years=..., age_months=...), **old})
    assert age_of(signed) == age


def test_a_form_in_years_or_months_has_only_the_keys_older_nodes_know() -> None:
    older = {"study_uid", "urgency", "age_years", "age_months", "sex", "clinical_history"}
    older |= {"question", "modality", "body_part", "prior_imaging", "preliminary_reading"}
    older |= {"answer_language"}
    for age in (Age(45, "years"), Age(6, "months")):
        signed = check_case_form({**form(age_years=..., age_months=...), **age.as_form()})
        assert set(signed) <= older


@pytest.mark.parametrize(
    ("value", "unit", "message"),
    [
        (131, "years", "age in years must be between 0 and 130"),
        (24, "months", "age in months must be between 0 and 23"),
        (53, "weeks", "age in weeks must be between 0 and 52"),
        (91, "days", "age in days must be between 0 and 90"),
        (-1, "days", "age in days must be between 0 and 90"),
        (3, "fortnights", "the unit must be one of years, months, weeks, days"),
    ],
)
def test_an_age_beyond_its_unit_is_refused(value: int, unit: str, message: str) -> None:
    with pytest.raises(MalformedError, match=message):
        Age(value, unit)


def test_units_are_ordered_from_years_down_and_only_years_is_always_signed() -> None:
    assert [u.name for u in AGE_UNITS] == ["years", "months", "weeks", "days"]
    assert {k for k, rule in CASE_FORM.fields.items() if k.startswith("age_")} == {
        u.key for u in AGE_UNITS
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"question": ""}, "case.question must be 3-1000 characters"),
        ({"urgency": "asap"}, "case.urgency must be one of routine, urgent"),
        ({"sex": "female"}, "case.sex must be one of F, M, X"),
        ({"age_years": 131}, "case.age_years must be between 0 and 130"),
        ({"age_years": "7"}, "case.age_years must be an integer"),
        ({"age_years": 5, "age_months": 3}, "age_months is only for children under two"),
        ({"age_years": 1, "age_months": None, "age_weeks": 3}, "age_weeks is only for"),
        ({"age_months": 24}, "case.age_months must be between 0 and 23"),
        ({"age_months": None, "age_days": 91}, "case.age_days must be between 0 and 90"),
        ({"age_weeks": 3}, "the age in one unit, not age_months and age_weeks"),
        ({"modality": "XR"}, "case.modality must be one of"),
        ({"answer_language": "de"}, "case.answer_language must be one of fr, en"),
        ({"body_part": ...}, "case lacks field 'body_part'"),
        ({"prior_imaging": ...}, "case lacks field 'prior_imaging'"),
        ({"preliminary_reading": "x" * 4001}, "case.preliminary_reading must be 0-4000"),
        ({"patient_name": "X"}, "case has unknown field 'patient_name'"),
    ],
)
def test_each_wrong_field_is_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedError, match=message):
        check_case_form(form(**changes))
