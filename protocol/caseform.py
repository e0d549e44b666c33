"""The clinical form that goes with every study, inside the sealed bundle (its header's
``case``), checked field by field on both sides. This module is the one schema of the
form: ``FIELDS`` says, for each field, its kind, whether it is required, its limits and
the translation keys of its label and help. The form page asks the fields in this
order, the case page and the viewer show them in this order, the JSON API gives them,
and ``CASE_FORM`` (the rule the signed ``case_request`` is checked by) is derived from
it. Nothing else lists the fields.

Free text (history, question, prior imaging, the sender's own reading) is written by the
sender; the web form warns that it must not name the patient, and the form has no field
that would (no name, no birth date: an age).

The age is one field given in the unit people use for it: years, or months, weeks or
days for a small child. In the signed form it is ``age_years`` (whole years, always
there) and at most one of ``age_months`` (0-23), ``age_weeks``, ``age_days``. Forms of
older nodes have only ``age_years`` and ``age_months``; they read the same way (see
``age_of``), and a form in years or months is one an older node accepts too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from protocol.codec import Field, Int, Optional, Schema, Str
from protocol.errors import MalformedError

SEXES = ("F", "M", "X")  # X: other or not stated
URGENCIES = ("routine", "urgent")
LANGUAGES = ("fr", "en")
MODALITIES = ("CR", "DX", "CT", "MR", "US", "MG", "XA", "RF", "NM", "PT", "OT", "XC")


class Kind(Enum):
    """What a field holds, which says how it is asked and shown."""

    CHOICE = "choice"  # one of the field's ``choices``
    LINE = "line"  # one line of text
    TEXT = "text"  # free text, in paragraphs
    AGE = "age"  # a whole number in one of ``AGE_UNITS``


@dataclass(frozen=True)
class AgeUnit:
    """A unit an age may be given in: ``key`` holds it in the signed form, ``max`` is the
    most it counts (an older child is given in a larger unit), ``per_year`` how many of
    it make a year (0: the unit is for children under one)."""

    name: str
    key: str
    max: int
    per_year: int


AGE_UNITS = (
    AgeUnit("years", "age_years", 130, 1),
    AgeUnit("months", "age_months", 23, 12),  # under two years, as older nodes asked
    AgeUnit("weeks", "age_weeks", 52, 0),
    AgeUnit("days", "age_days", 90, 0),  # newborns, up to about three months
)
AGE_UNITS_BY_NAME = {u.name: u for u in AGE_UNITS}


@dataclass(frozen=True)
class Age:
    """An age as the sender gave it: 6 months, 3 weeks, 45 years."""

    value: int
    unit: str  # the name of one of AGE_UNITS

    def __post_init__(self) -> None:
        unit = AGE_UNITS_BY_NAME.get(self.unit)
        if unit is None:
            raise MalformedError(f"age: the unit must be one of {', '.join(AGE_UNITS_BY_NAME)}")
        if type(self.value) is not int or not 0 <= self.value <= unit.max:
            raise MalformedError(f"age in {unit.name} must be between 0 and {unit.max}")

    @property
    def whole_years(self) -> int:
        per_year = AGE_UNITS_BY_NAME[self.unit].per_year
        return self.value // per_year if per_year else 0

    def as_form(self) -> dict[str, int]:
        """The keys of the signed form that hold this age."""
        unit = AGE_UNITS_BY_NAME[self.unit]
        finer = {unit.key: self.value} if unit.per_year != 1 else {}
        return {"age_years": self.whole_years, **finer}


@dataclass(frozen=True, kw_only=True)
class FormField:
    """One field of the clinical form. ``label`` names it where it is asked, ``shown``
    where the reader reads it (the same unless asking and reading differ: "your own
    reading" is "the sender's reading" to the reader), ``help`` says what to write;
    all three are keys of the translations (tsfnode/i18n.py). ``choice_label`` is the
    key of each choice's name, ``{}`` standing for the choice; ``coded`` choices are
    codes people know (DICOM modalities), shown with their name. Text is required when
    it has a minimum length; a choice and the age always are."""

    name: str
    kind: Kind
    label: str
    shown: str = ""
    help: str | None = None
    min: int = 0  # characters
    max: int = 0  # characters
    choices: tuple[str, ...] = ()
    choice_label: str = "{}"
    coded: bool = False
    default: str | None = None
    units: tuple[AgeUnit, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.shown:
            object.__setattr__(self, "shown", self.label)

    @property
    def required(self) -> bool:
        return self.kind in (Kind.CHOICE, Kind.AGE) or self.min > 0

    def choice_key(self, choice: str) -> str:
        return self.choice_label.replace("{}", choice)

    def rules(self) -> dict[str, Field]:
        """The keys this field has in the signed form, each with its rule."""
        if self.kind is Kind.AGE:
            return {
                u.key: Int(0, u.max) if u.per_year == 1 else Optional(Int(0, u.max))
                for u in self.units
            }
        if self.kind is Kind.CHOICE:
            return {self.name: Str(choices=self.choices)}
        return {self.name: Str(min=self.min, max=self.max)}


FIELDS: tuple[FormField, ...] = (
    FormField(
        name="urgency",
        kind=Kind.CHOICE,
        label="urgency",
        choices=URGENCIES,
        default="routine",
    ),
    FormField(name="age", kind=Kind.AGE, label="age", help="age_help", units=AGE_UNITS),
    FormField(name="sex", kind=Kind.CHOICE, label="sex", choices=SEXES, choice_label="sex_{}"),
    FormField(
        name="modality",
        kind=Kind.CHOICE,
        label="modality",
        choices=MODALITIES,
        choice_label="modality_{}",
        coded=True,
    ),
    FormField(name="body_part", kind=Kind.LINE, label="body_part", min=1, max=64),
    FormField(name="question", kind=Kind.TEXT, label="question", min=3, max=1000),
    FormField(name="clinical_history", kind=Kind.TEXT, label="history", max=4000),
    FormField(
        name="prior_imaging",
        kind=Kind.TEXT,
        label="prior_imaging",
        help="prior_imaging_help",
        max=2000,
    ),
    FormField(
        name="preliminary_reading",
        kind=Kind.TEXT,
        label="preliminary_reading",
        shown="senders_reading",
        help="preliminary_reading_help",
        max=4000,
    ),
    FormField(
        name="answer_language",
        kind=Kind.CHOICE,
        label="answer_language",
        choices=LANGUAGES,
        choice_label="language_{}",
    ),
)
FIELDS_BY_NAME = {f.name: f for f in FIELDS}

CASE_FORM = Schema(
    {
        "study_uid": Str(min=1, max=64),  # set by the node: the study the form goes with
        **{key: rule for f in FIELDS for key, rule in f.rules().items()},
    }
)


def check_case_form(value: Any) -> dict[str, Any]:
    """The form, checked (MalformedError names the first field that is wrong), as it is
    signed: the age's unused keys left out, so that a form in years or months is one an
    older node accepts. An age in months is for children under two, whose ``age_years``
    is then 0 or 1; in weeks or days, ``age_years`` is 0."""
    form = CASE_FORM.check(value, "case")
    finer = [u for u in AGE_UNITS[1:] if form[u.key] is not None]
    if len(finer) > 1:
        raise MalformedError(f"case: the age in one unit, not {finer[0].key} and {finer[1].key}")
    if finer and form["age_years"] > (1 if finer[0].name == "months" else 0):
        raise MalformedError(f"case.{finer[0].key} is only for children under two years")
    return {k: v for k, v in form.items() if v is not None}


def age_of(form: dict[str, Any]) -> Age:
    """The age of a checked form, in the unit the sender gave it. Older nodes asked for
    whole years and, under two, months: months at least twelve times the years are the
    whole age (0 and 7, 1 and 18), fewer are months beyond the year (1 and 6: 18 months)."""
    for unit in AGE_UNITS[1:]:
        value = form.get(unit.key)
        if value is not None:
            if unit.name == "months" and value < 12 * form["age_years"]:
                value += 12 * form["age_years"]
            return Age(value, unit.name)
    return Age(form["age_years"], "years")
