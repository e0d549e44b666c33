"""QIDO-RS queries (PS3.18 8.3.4, 10.6): parse the query, match attributes, choose what
each result returns. Pure functions over DICOM JSON records (PS3.18 F.2)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

T = TypeVar("T")
MAX_RESULTS = 1000
PARAMETERS = ("limit", "offset", "includefield", "fuzzymatching")
NUMERIC_VRS = {"IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"}
DATE_VRS = {"DA", "TM", "DT"}

# Attributes each level returns without includefield (PS3.18 Table 10.6.3-3 to -5).
STUDY = (
    "00080005 00080020 00080030 00080050 00080056 00080061 00080090 00080201 00081030"
    " 00081190 00100010 00100020 00100030 00100040 0020000D 00200010 00201206 00201208"
).split()
SERIES = (
    "00080005 00080060 00080201 0008103E 00081190 00180015 0020000D 0020000E 00200011"
    " 00201209 00400244 00400245"
).split()
INSTANCE = (
    "00080005 00080016 00080018 00080056 00080201 00081190 0020000D 0020000E 00200013"
    " 00280008 00280010 00280011 00280100 00083002"
).split()
DEFAULTS = {"study": STUDY, "series": SERIES, "instance": INSTANCE}


def _tags(keywords: str) -> frozenset[str]:
    return frozenset(f"{tag_for_keyword(k):08X}" for k in keywords.split())


# What is an attribute of the study, and what of the series (PS3.4 C.6.2.1, Study Root:
# the Patient and Study IEs' modules, then the General Series module). The rest of an
# instance's attributes are the instance's. A study's answer is never made of one of
# its instances (its Modality, its SOP Instance UID).
COMMON = _tags("SpecificCharacterSet TimezoneOffsetFromUTC")
STUDY_ATTRIBUTES = COMMON | _tags(
    # Patient module (PS3.3 C.7.1.1)
    "PatientName PatientID IssuerOfPatientID TypeOfPatientID PatientBirthDate PatientBirthTime"
    " PatientSex QualityControlSubject PatientSpeciesDescription PatientBreedDescription"
    " ResponsiblePerson ResponsibleOrganization OtherPatientIDsSequence OtherPatientNames"
    " EthnicGroup PatientComments PatientIdentityRemoved DeidentificationMethod"
    " DeidentificationMethodCodeSequence ReferencedPatientSequence"
    # Patient Study module (C.7.2.2)
    " AdmittingDiagnosesDescription PatientAge PatientSize PatientWeight Occupation"
    " AdditionalPatientHistory PatientSexNeutered MedicalAlerts Allergies SmokingStatus"
    " PregnancyStatus LastMenstrualDate"
    # General Study module (C.7.2.1)
    " StudyInstanceUID StudyDate StudyTime ReferringPhysicianName"
    " ReferringPhysicianIdentificationSequence ConsultingPhysicianName StudyID AccessionNumber"
    " IssuerOfAccessionNumberSequence StudyDescription PhysiciansOfRecord"
    " NameOfPhysiciansReadingStudy RequestingServiceCodeSequence ReferencedStudySequence"
    " ProcedureCodeSequence ReasonForPerformedProcedureCodeSequence"
)
SERIES_ATTRIBUTES = COMMON | _tags(
    # General Series module (PS3.3 C.7.3.1)
    "StudyInstanceUID Modality SeriesInstanceUID SeriesNumber Laterality SeriesDate SeriesTime"
    " PerformingPhysicianName ProtocolName SeriesDescription SeriesDescriptionCodeSequence"
    " OperatorsName ReferencedPerformedProcedureStepSequence RelatedSeriesSequence"
    " BodyPartExamined PatientPosition SmallestPixelValueInSeries LargestPixelValueInSeries"
    " RequestAttributesSequence PerformedProcedureStepID PerformedProcedureStepStartDate"
    " PerformedProcedureStepStartTime PerformedProcedureStepDescription"
    " PerformedProtocolCodeSequence CommentsOnThePerformedProcedureStep"
    " AnatomicalOrientationType"
)
MODALITY, MODALITIES_IN_STUDY = "00080060", "00080061"


class QueryError(ValueError):
    """A query the node cannot answer; the message names the key and what is wrong."""


@dataclass(frozen=True)
class Query:
    matches: dict[str, str] = field(default_factory=dict)  # tag (8 hex digits) -> value
    include: frozenset[str] | None = frozenset()  # None: all
    limit: int = MAX_RESULTS
    offset: int = 0
    fuzzy: bool = False


def tag_of(name: str) -> str:
    """The tag (8 upper-case hex digits) of a keyword or a tag; QueryError if neither."""
    if "." in name:
        raise QueryError(f"{name}: attributes inside sequences cannot be queried here")
    if re.fullmatch(r"[0-9A-Fa-f]{8}", name):
        return name.upper()
    tag = tag_for_keyword(name)
    if tag is None:
        raise QueryError(f"{name}: neither a DICOM keyword nor a tag (such as 00100010)")
    return f"{tag:08X}"


def _count(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise QueryError(f"{name}={value!r}: a whole number") from None
    if not low <= number <= high:
        raise QueryError(f"{name}={number}: between {low} and {high}")
    return number


_DATE = r"\d{8}"
_TIME = r"\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?"
_DATETIME = r"\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?)?)?(?:[+-]\d{4})?"
FORMATS = {
    "DA": (_DATE, "a date YYYYMMDD, or a range such as 20240101-20241231"),
    "TM": (_TIME, "a time HHMMSS (minutes and seconds optional), or a range HHMM-HHMM"),
    "DT": (_DATETIME, "a date and time YYYYMMDDHHMMSS (shorter allowed), or a range"),
}


def _check_value(name: str, tag: str, value: str) -> None:
    """QueryError unless a date, time or date-time key holds one (or a range of them,
    or a list), or universal matching (empty or ``*``)."""
    try:
        vr = dictionary_VR(int(tag, 16))
    except KeyError:
        return  # a private or unknown tag: matched as text
    if vr not in FORMATS or value in ("", "*"):
        return
    pattern, expected = FORMATS[vr]
    one_or_range = rf"{pattern}|(?:{pattern})?-(?:{pattern})?"
    for item in value.split(","):
        if item == "-" or not re.fullmatch(one_or_range, item):
            raise QueryError(f"{name}={value!r}: {expected}")


def parse(items: Iterable[tuple[str, str]]) -> Query:
    """The query of ``items`` (the URL's key=value pairs, repeated keys allowed)."""
    matches: dict[str, str] = {}
    include: set[str] | None = set()
    limit, offset, fuzzy = MAX_RESULTS, 0, False
    for name, value in items:
        if name == "limit":
            limit = _count(name, value, 0, MAX_RESULTS)
        elif name == "offset":
            offset = _count(name, value, 0, 10**9)
        elif name == "fuzzymatching":
            if value not in ("true", "false"):
                raise QueryError(f"fuzzymatching={value!r}: true or false")
            fuzzy = value == "true"
        elif name == "includefield":
            for part in filter(None, value.split(",")):
                if part == "all":
                    include = None
                elif include is not None:
                    include.add(tag_of(part))
        else:
            tag = tag_of(name)
            _check_value(name, tag, value)
            matches[tag] = value
    return Query(matches, None if include is None else frozenset(include), limit, offset, fuzzy)


def _strings(element: Mapping[str, Any]) -> list[str]:
    out = []
    for v in element.get("Value", []):
        if isinstance(v, dict):  # PN: its alphabetic form
            out.append(str(v.get("Alphabetic", "")))
        else:
            out.append(str(v))
    return out


def _wildcard(pattern: str, *, fold: bool) -> re.Pattern[str]:
    text = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(text, re.IGNORECASE | re.DOTALL if fold else re.DOTALL)


def _in_range(value: str, query: str) -> bool:
    low, _, high = query.partition("-")
    width = max(len(value), len(low), len(high))
    value = value.ljust(width, "0")
    return (not low or value >= low.ljust(width, "0")) and (
        not high or value <= high.ljust(width, "0")
    )


def _one(vr: str, value: str, wanted: str) -> bool:
    if vr in DATE_VRS and "-" in wanted:
        return _in_range(value, wanted)
    if vr in NUMERIC_VRS:
        try:
            return float(value) == float(wanted)
        except ValueError:
            return False
    fold = vr == "PN"
    if vr != "UI" and ("*" in wanted or "?" in wanted):
        return _wildcard(wanted, fold=fold).fullmatch(value) is not None
    return value.casefold() == wanted.casefold() if fold else value == wanted


def matches(record: Mapping[str, Any], tag: str, wanted: str) -> bool:
    """Whether ``record`` matches ``tag=wanted``: universal (empty, or ``*`` alone, which
    matches an empty or absent value too: PS3.4 C.2.2.2.4), single value, list of values
    (comma-separated: any), wildcard (* and ?; names ignore case), and range for dates and
    times (``from-to``, either side open) (PS3.4 C.2.2.2)."""
    if wanted in ("", "*"):
        return True
    element = record.get(tag)
    if not element:
        return False
    values = _strings(element)
    vr = str(element.get("vr", ""))
    candidates = wanted.split(",") if vr != "PN" else [wanted]
    return any(_one(vr, v, w) for v in values for w in candidates)


def at_level(query: Query, level: str) -> Query:
    """The query as a study's record answers it: Modality is matched against the
    study's Modalities in Study (PS3.18 10.6.1.2.3: a study holding CT and MR matches
    ``Modality=CT``)."""
    if level != "study" or MODALITY not in query.matches:
        return query
    keys = dict(query.matches)
    wanted = keys.pop(MODALITY)
    keys[MODALITIES_IN_STUDY] = wanted
    return Query(keys, query.include, query.limit, query.offset, query.fuzzy)


def level_record(meta: Mapping[str, Any], level: str, within: str) -> dict[str, Any]:
    """An instance's attributes that describe its ``level`` (study, series or instance),
    with those of the levels above it that the URL does not name already (``within``:
    "" for /series or /instances, "study" for a study's, "series" for a series')
    (PS3.18 10.6.3.3: a search across studies gives each result's study attributes)."""
    if level == "study":
        return {t: e for t, e in meta.items() if t in STUDY_ATTRIBUTES}
    keep_study = within == ""
    if level == "series":
        return {
            t: e
            for t, e in meta.items()
            if t in SERIES_ATTRIBUTES or (keep_study and t in STUDY_ATTRIBUTES)
        }
    drop: set[str] = set()
    if within:
        drop |= STUDY_ATTRIBUTES
    if within == "series":
        drop |= SERIES_ATTRIBUTES
    drop -= _tags("StudyInstanceUID SeriesInstanceUID SpecificCharacterSet")
    return {t: e for t, e in meta.items() if t not in drop}


def select(query: Query, items: Sequence[T], record: Callable[[T], Mapping[str, Any]]) -> list[T]:
    """The items whose record matches every key of ``query``, after ``offset``, at most
    ``limit``."""
    found = [i for i in items if all(matches(record(i), t, w) for t, w in query.matches.items())]
    return found[query.offset : query.offset + query.limit]


def returned(
    record: Mapping[str, Any], level: str, query: Query, within: str = "study"
) -> dict[str, Any]:
    """What a result shows: the level's attributes, and those of the levels above it the
    URL does not name (``within``, as for ``level_record``; PS3.18 Tables 10.6.3-3 to -5),
    the query's keys, and includefield (all: every attribute of the record, without bulk
    data)."""
    if query.include is None:
        tags: Iterable[str] = (
            t for t, e in record.items() if "BulkDataURI" not in e and "InlineBinary" not in e
        )
    else:
        defaults = set(DEFAULTS[level])
        if level != "study" and within == "":
            defaults |= set(STUDY)
        if level == "instance" and within != "series":
            defaults |= set(SERIES)
        tags = {*defaults, *query.matches, *query.include}
    return {t: record[t] for t in sorted(tags) if t in record}


def name_of(tag: str) -> str:
    """The keyword of a tag, for messages."""
    return keyword_for_tag(int(tag, 16)) or tag
