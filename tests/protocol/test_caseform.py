"""The clinical form: a complete one passes; each wrong field is named."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.caseform import check_case_form
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


def test_a_complete_form_passes_and_months_are_optional() -> None:
    assert check_case_form(form()) == form()
    adult = check_case_form(form(age_years=54, age_months=...))
    assert adult["age_months"] is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"question": ""}, "case.question must be 3-1000 characters"),
        ({"urgency": "asap"}, "case.urgency must be one of routine, urgent"),
        ({"sex": "female"}, "case.sex must be one of F, M, X"),
        ({"age_years": 131}, "case.age_years must be between 0 and 130"),
        ({"age_years": "7"}, "case.age_years must be an integer"),
        ({"age_years": 5, "age_months": 3}, "age_months is only for children under two"),
        ({"modality": "XR"}, "case.modality must be one of"),
        ({"answer_language": "de"}, "case.answer_language must be one of fr, en"),
        ({"body_part": ...}, "case lacks field 'body_part'"),
        ({"patient_name": "X"}, "case has unknown field 'patient_name'"),
    ],
)
def test_each_wrong_field_is_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedError, match=message):
        check_case_form(form(**changes))
