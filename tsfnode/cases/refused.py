"""A case refusal of the protocol's table (``CaseRefused``, with its code) as the node
says it to a person: a catalogue key, and its particulars (a state, a role, a pair's
status) as keys too, so that the whole sentence is in the person's language."""

from __future__ import annotations

from protocol.errors import CaseRefused
from tsfnode.errors import CaseError
from tsfnode.i18n import N_, Key

# Each code of protocol/cases.py and protocol/coordinator.py, and its text.
REFUSALS = {
    "case_taken": N_("refused_case_taken"),
    "case_state": N_("refused_case_state"),
    "case_role": N_("refused_case_role"),
    "case_passed_over": N_("refused_case_passed_over"),
    "case_not_beyond_quota": N_("refused_case_not_beyond_quota"),
    "case_not_overdue": N_("refused_case_not_overdue"),
    "pair_not_active": N_("refused_pair_not_active"),
    "pair_over_quota": N_("refused_pair_over_quota"),
    "pair_no_reader": N_("refused_pair_no_reader"),
    "group_no_reader": N_("refused_group_no_reader"),
    "assign_no_reader": N_("refused_assign_no_reader"),
}
# A value that is a code, and the family of keys that says it.
FAMILY_OF = {"state": "state_", "status": "pair_", "roles": "role_"}


def case_refused(exc: CaseRefused, status: int = 409) -> CaseError:
    """``exc`` as a CaseError with its catalogue key (an unknown code: the English
    reason, after the lead-in that says so)."""
    values: dict[str, object] = {}
    for name, value in exc.values.items():
        prefix = FAMILY_OF.get(name)
        if prefix is None:
            values[name] = value
        elif isinstance(value, tuple):
            values[name] = tuple(Key(prefix + str(v)) for v in value)
        else:
            values[name] = Key(prefix + str(value))
    return CaseError(status, str(exc), key=REFUSALS.get(exc.code), values=values)
