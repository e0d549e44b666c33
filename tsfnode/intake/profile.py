"""The de-identification profile: PS3.15 Annex E Table E.1-1 (kept as data, with its
edition) and the options a second opinion needs.

Options applied (PS3.15 E.3):
- Retain Patient Characteristics (E.3.7): age, sex, size, weight and the like are kept;
  a reader needs them.
- Retain Longitudinal Temporal Information with Modified Dates (E.3.6): every date is
  shifted by a whole number of days, one shift per patient, kept on the sender's node;
  intervals between studies are preserved, times of day are kept.
- Clean Descriptors (E.3.5): the study and series descriptions and the protocol name are
  kept, cleaned of the names, ids, places and dates they may carry (``descriptors.py``):
  a reader needs "ABDOMEN PELVIS 5mm", not "CT · 1".
Private attributes are removed (E.3.10 Retain Safe Private is not claimed); an allow-list
of private attributes known to be safe can be given.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

TABLE_EDITION = "2026c"
TABLE_FILE = Path(__file__).parent / "data" / f"ps315_e11_{TABLE_EDITION}.csv"

# (0010,1010) age, (0010,0040) sex, (0010,1020) size, (0010,1030) weight,
# (0010,2160) ethnic group, (0010,21A0) smoking status, (0010,21C0) pregnancy status,
# (0010,2203) patient's sex neutered, (0010,1022) body mass index,
# (0010,1023) and (0010,1024) measured AP and lateral dimensions.
PATIENT_CHARACTERISTICS = frozenset(
    {
        0x00101010,
        0x00100040,
        0x00101020,
        0x00101030,
        0x00102160,
        0x001021A0,
        0x001021C0,
        0x00102203,
        0x00101022,
        0x00101023,
        0x00101024,
    }
)

# Codes for De-identification Method Code Sequence (CID 7050, coding scheme DCM).
CODE_BASIC = ("113100", "Basic Application Confidentiality Profile")
CODE_PATIENT_CHARACTERISTICS = ("113108", "Retain Patient Characteristics Option")
CODE_MODIFIED_DATES = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
CODE_CLEAN_DESCRIPTORS = ("113105", "Clean Descriptors Option")


@dataclass(frozen=True)
class Masked:
    """A repeating-group row of the table, e.g. 60xx,3000 (overlay data)."""

    mask: int
    value: int
    action: str


@dataclass(frozen=True)
class Profile:
    actions: dict[int, str]
    masked: tuple[Masked, ...]
    retain_patient_characteristics: bool = True
    modified_dates: bool = True
    clean_descriptors: bool = True
    safe_private: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    """(private creator, element low byte) pairs kept; empty: all private removed."""

    def action(self, tag: int) -> str | None:
        if self.retain_patient_characteristics and tag in PATIENT_CHARACTERISTICS:
            return "K"
        found = self.actions.get(tag)
        if found is not None:
            return found
        for m in self.masked:
            if tag & m.mask == m.value:
                return m.action
        return None

    @property
    def codes(self) -> list[tuple[str, str]]:
        codes = [CODE_BASIC]
        if self.retain_patient_characteristics:
            codes.append(CODE_PATIENT_CHARACTERISTICS)
        if self.modified_dates:
            codes.append(CODE_MODIFIED_DATES)
        if self.clean_descriptors:
            codes.append(CODE_CLEAN_DESCRIPTORS)
        return codes

    @property
    def description(self) -> str:
        return f"tsfnode: PS3.15 {TABLE_EDITION} " + "; ".join(name for _, name in self.codes)


def parse_safe_private(entries: list[str] | tuple[str, ...]) -> frozenset[tuple[str, int]]:
    """Read ``"PRIVATE CREATOR:ee"`` entries (ee: the element's low byte, in hex), e.g.
    ``"GEMS_ACQU_01:1B"``; ValueError names the first entry that is not one."""
    out = set()
    for entry in entries:
        creator, sep, element = str(entry).rpartition(":")
        try:
            low = int(element, 16)
        except ValueError:
            low = -1
        if not sep or not creator.strip() or not 0 <= low <= 0xFF or len(element) != 2:
            raise ValueError(f"{entry!r} is not PRIVATE CREATOR:ee (ee: two hex digits)")
        out.add((creator.strip(), low))
    return frozenset(out)


def load_profile(
    *,
    retain_patient_characteristics: bool = True,
    modified_dates: bool = True,
    clean_descriptors: bool = True,
    safe_private: list[str] | tuple[str, ...] = (),
) -> Profile:
    actions: dict[int, str] = {}
    masked: list[Masked] = []
    with TABLE_FILE.open(encoding="utf-8") as f:
        rows = csv.reader(line for line in f if not line.startswith("#"))
        next(rows)  # header
        for tag, action, _name in rows:
            if "x" in tag:
                mask = int("".join("0" if c == "x" else "F" for c in tag), 16)
                value = int(tag.replace("x", "0"), 16)
                masked.append(Masked(mask, value, action))
            else:
                actions[int(tag, 16)] = action
    return Profile(
        actions=actions,
        masked=tuple(masked),
        retain_patient_characteristics=retain_patient_characteristics,
        modified_dates=modified_dates,
        clean_descriptors=clean_descriptors,
        safe_private=parse_safe_private(safe_private),
    )
