"""The clinical form that goes with every study, inside the sealed bundle (its header's
``case``), checked field by field on both sides.

Free text (history, question, prior imaging, the sender's own reading) is written by the
sender; the web form warns that it must not name the patient, and the form has no field
that would (no name, no birth date: an age, in years, or in months under two years).
"""

from __future__ import annotations

from typing import Any

from protocol.codec import Int, Optional, Schema, Str
from protocol.errors import MalformedError

SEXES = ("F", "M", "X")  # X: other or not stated
URGENCIES = ("routine", "urgent")
LANGUAGES = ("fr", "en")
MODALITIES = ("CR", "DX", "CT", "MR", "US", "MG", "XA", "RF", "NM", "PT", "OT", "XC")

CASE_FORM = Schema(
    {
        "study_uid": Str(min=1, max=64),
        "urgency": Str(choices=URGENCIES),
        "age_years": Int(0, 130),
        "age_months": Optional(Int(0, 23)),  # under two years
        "sex": Str(choices=SEXES),
        "clinical_history": Str(max=4000),
        "question": Str(min=3, max=1000),
        "modality": Str(choices=MODALITIES),
        "body_part": Str(min=1, max=64),
        "prior_imaging": Str(max=2000),
        "preliminary_reading": Str(max=4000),
        "answer_language": Str(choices=LANGUAGES),
    }
)


def check_case_form(value: Any) -> dict[str, Any]:
    """The form, checked (MalformedError names the first field that is wrong). An age in
    months is for children under two, whose ``age_years`` is then 0 or 1."""
    form = CASE_FORM.check(value, "case")
    if form["age_months"] is not None and form["age_years"] > 1:
        raise MalformedError("case.age_months is only for children under two years")
    return form
