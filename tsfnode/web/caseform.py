"""The clinical form in the web application, asked and shown from its one schema
(``protocol.caseform.FIELDS``): the form page's answers made into the form that is
signed, and a case's form as the reader reads it, in French or English.

The templates iterate over the schema: ``new_case.html`` over ``FIELDS`` (the age with
its field's units), ``case.html`` and ``viewer.html`` over ``shown_form`` (through
``_clinical.html``). No template lists the fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.caseform import AGE_UNITS_BY_NAME, FIELDS, Age, AgeUnit, FormField, Kind, age_of
from protocol.errors import MalformedError
from tsfnode.i18n import texts


class AgeRefused(Exception):
    """The age typed on the form page is not a whole number within its unit."""

    def __init__(self, unit: AgeUnit) -> None:
        super().__init__(f"age in {unit.name}: a whole number from 0 to {unit.max}")
        self.unit = unit

    def message(self, lang: str) -> str:
        _ = texts(lang)
        unit = "unit_" + self.unit.name  # the schema's keys (tsfnode.i18n.extract)
        return _("age_invalid", unit=_(unit), max=self.unit.max)


@dataclass(frozen=True)
class ShownField:
    """One field of a case's form as a person reads it: its label and its value in the
    page's language (``""`` when the sender left it empty)."""

    name: str
    kind: str
    label: str
    text: str


def age_text(age: Age, lang: str) -> str:
    """An age as people write it: 6 mois, 3 weeks, 45 ans, 1 day."""
    key = "count_" + age.unit  # the schema's keys (tsfnode.i18n.extract)
    return texts(lang).plural(key, age.value)


def _shown_value(field: FormField, form: Mapping[str, Any], lang: str) -> str:
    if field.kind is Kind.AGE:
        return age_text(age_of(dict(form)), lang)
    value = str(form.get(field.name) or "")
    if field.kind is Kind.CHOICE and value:
        key = field.choice_key(value)
        name = texts(lang)(key)
        name = value if name == key else name  # a code the catalogue does not name
        return f"{value} · {name}" if field.coded else name
    return value


def shown_form(form: Mapping[str, Any], lang: str) -> list[ShownField]:
    """Every field the sender filled in, in the schema's order, as the reader reads it."""
    return [
        ShownField(f.name, f.kind.value, texts(lang)(f.shown), _shown_value(f, form, lang))
        for f in FIELDS
    ]


def answered_form(posted: Mapping[str, Any]) -> dict[str, Any]:
    """The clinical form from the form page's answers (text trimmed; the age from its
    number and unit), to be checked by ``check_case_form``; ``AgeRefused`` if the age
    is not a whole number within its unit."""
    form: dict[str, Any] = {}
    for field in FIELDS:
        if field.kind is Kind.AGE:
            form.update(_answered_age(posted))
        else:
            form[field.name] = str(posted.get(field.name, "")).strip()
    return form


def _answered_age(posted: Mapping[str, Any]) -> dict[str, int]:
    unit = AGE_UNITS_BY_NAME.get(str(posted.get("age_unit", "years")))
    if unit is None:
        unit = AGE_UNITS_BY_NAME["years"]
    try:
        return Age(int(str(posted.get("age", "")).strip()), unit.name).as_form()
    except (ValueError, MalformedError):
        raise AgeRefused(unit) from None
