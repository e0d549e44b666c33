"""QIDO-RS matching and WADO-RS media negotiation, on the DICOM JSON that pydicom makes
of real files (pydicom's own test files)."""

from __future__ import annotations

import pytest
from pydicom import dcmread, uid
from pydicom.data import get_testdata_file

from tsfnode.dicomweb import media
from tsfnode.dicomweb.query import (
    QueryError,
    at_level,
    level_record,
    matches,
    parse,
    returned,
    select,
)


@pytest.fixture(scope="module")
def ct() -> dict[str, object]:
    ds = dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    return ds.to_json_dict()


def test_single_value_wildcard_list_and_range_matching(ct: dict[str, object]) -> None:
    name = "CompressedSamples^CT1"  # CT_small's patient name
    assert matches(ct, "00100010", name)
    assert matches(ct, "00100010", name.lower())  # names ignore case
    assert matches(ct, "00100010", "compressed*")
    assert matches(ct, "00100010", "Compressed?amples^CT1")
    assert not matches(ct, "00100010", "Compressed")  # a prefix is not a match
    assert matches(ct, "00080060", "CT")
    assert not matches(ct, "00080060", "ct")  # code strings are case-sensitive
    assert matches(ct, "00080060", "MR,CT")  # a list: any
    study_date = "20040119"
    assert matches(ct, "00080020", study_date)
    assert matches(ct, "00080020", "20040101-20041231")
    assert matches(ct, "00080020", "-20040119")
    assert matches(ct, "00080020", "20040119-")
    assert not matches(ct, "00080020", "20040120-")
    assert matches(ct, "00200013", "1")  # numbers compare as numbers
    assert matches(ct, "00200013", "1.0")
    assert matches(ct, "00100010", "")  # universal
    assert not matches(ct, "00081030", "anything")  # absent: no match


def test_the_query_is_parsed_or_refused_with_the_key_named() -> None:
    keys = [("PatientName", "x*"), ("00080060", "CT"), ("limit", "5"), ("offset", "2")]
    query = parse([*keys, ("includefield", "SliceThickness,00280030")])
    assert query.matches == {"00100010": "x*", "00080060": "CT"}
    assert (query.limit, query.offset) == (5, 2)
    assert query.include == frozenset({"00180050", "00280030"})
    assert parse([("includefield", "all")]).include is None
    for bad, named in (
        (("PatientNme", "x"), "PatientNme"),
        (("limit", "-1"), "limit"),
        (("limit", "ten"), "limit"),
        (("fuzzymatching", "maybe"), "fuzzymatching"),
        (("00081110.00081150", "1.2"), "sequences"),
    ):
        with pytest.raises(QueryError, match=named):
            parse([bad])


def test_results_hold_the_level_attributes_and_what_was_asked(ct: dict[str, object]) -> None:
    query = parse([("PatientID", ""), ("includefield", "SliceThickness")])
    shown = returned(ct, "instance", query)
    assert {"00080018", "00100020", "00180050"} <= set(shown)
    assert "00100010" not in shown  # not an instance-level attribute, not asked for
    everything = returned(ct, "instance", parse([("includefield", "all")]))
    assert "00100010" in everything
    records = [{"00200013": {"vr": "IS", "Value": [n]}} for n in range(10)]
    page = select(parse([("limit", "3"), ("offset", "4")]), records, lambda r: r)
    assert [r["00200013"]["Value"][0] for r in page] == [4, 5, 6]


def test_instances_come_as_stored_only_when_asked() -> None:
    stored = uid.JPEGLSLossless
    any_syntax = media.parse_accept(
        'multipart/related; type="application/dicom"; transfer-syntax=*'
    )
    assert media.choose_instance_syntax(any_syntax, stored) == stored
    default = media.parse_accept('multipart/related; type="application/dicom"')
    assert media.choose_instance_syntax(default, stored) == uid.ExplicitVRLittleEndian
    assert (
        media.choose_instance_syntax(media.parse_accept(None), stored) == uid.ExplicitVRLittleEndian
    )
    jp2 = media.parse_accept(
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90'
    )
    with pytest.raises(media.NotAcceptable, match=stored):
        media.choose_instance_syntax(jp2, stored)


def test_frames_in_their_stored_form_or_uncompressed() -> None:
    stored = uid.JPEGLSLossless
    assert media.choose_frame_syntax(media.parse_accept("*/*"), stored) == (
        "application/octet-stream",
        uid.ExplicitVRLittleEndian,
    )
    jls = media.parse_accept(f'multipart/related; type="image/x-jls"; transfer-syntax={stored}')
    assert media.choose_frame_syntax(jls, stored) == ("image/jls", stored)
    ohif = media.parse_accept("multipart/related; type=application/octet-stream; transfer-syntax=*")
    assert media.choose_frame_syntax(ohif, stored) == ("image/jls", stored)
    preferred = media.parse_accept(
        'multipart/related; type="image/jp2"; q=0.9, '
        'multipart/related; type="application/octet-stream"; q=0.5'
    )
    assert media.choose_frame_syntax(preferred, stored)[0] == "application/octet-stream"
    with pytest.raises(media.NotAcceptable, match="image/jls"):
        media.choose_frame_syntax(media.parse_accept('multipart/related; type="image/jp2"'), stored)
    # a node that can produce JPEG 2000 from this image sends it when asked (transcode.py)
    assert media.choose_frame_syntax(preferred, stored, {uid.JPEG2000Lossless}) == (
        "image/jp2",
        uid.JPEG2000Lossless,
    )
    assert media.choose_rendered(media.parse_accept("image/png, image/jpeg;q=0.5")) == "image/png"
    assert media.choose_rendered(media.parse_accept(None)) == "image/jpeg"
    with pytest.raises(media.NotAcceptable):
        media.choose_rendered(media.parse_accept("image/gif"))


def test_transcoding_is_chosen_by_q_and_lossy_only_when_named() -> None:
    stored = uid.JPEGLSLossless
    can = {
        uid.ExplicitVRLittleEndian,
        uid.JPEG2000Lossless,
        uid.JPEG2000,
        uid.RLELossless,
        uid.JPEGBaseline8Bit,
    }
    dicom = 'multipart/related; type="application/dicom"; transfer-syntax='
    # the best (highest q) the node can produce: not RLE's q=0.4 when JPEG 2000 is 0.8
    accept = f"{dicom}1.2.840.10008.1.2.4.201; q=1, {dicom}{uid.JPEG2000Lossless}; q=0.8, " + (
        f"{dicom}{uid.RLELossless}; q=0.4"
    )
    assert (
        media.choose_instance_syntax(media.parse_accept(accept), stored, can)
        == uid.JPEG2000Lossless
    )
    # an instance with no encoder for what is asked: 406, naming what it can send
    with pytest.raises(media.NotAcceptable, match=f"{uid.JPEG2000Lossless}.*{uid.RLELossless}"):
        media.choose_instance_syntax(media.parse_accept(f"{dicom}1.2.840.10008.1.2.2"), stored, can)
    # frames: image/jp2 without a syntax is JPEG 2000 lossless (PS3.18 Table 8.7.3-5),
    # never the lossy one, which comes only when named by its UID
    jp2 = media.parse_accept('multipart/related; type="image/jp2"')
    assert media.choose_frames(jp2, stored, can).syntax == uid.JPEG2000Lossless
    with pytest.raises(media.NotAcceptable):
        media.choose_frames(jp2, stored, {uid.JPEG2000})
    named = media.parse_accept(
        f'multipart/related; type="image/jp2"; transfer-syntax={uid.JPEG2000}'
    )
    assert media.choose_frames(named, stored, {uid.JPEG2000}).syntax == uid.JPEG2000
    jpeg = media.parse_accept("image/jpeg")  # the default of image/jpeg is lossless SV1: none here
    with pytest.raises(media.NotAcceptable, match=uid.JPEGBaseline8Bit):
        media.choose_frames(jpeg, uid.ExplicitVRLittleEndian, can)
    baseline = media.parse_accept(f"image/jpeg; transfer-syntax={uid.JPEGBaseline8Bit}")
    one = media.choose_frames(baseline, uid.ExplicitVRLittleEndian, can, count=1)
    assert (one.media, one.syntax, one.multipart) == ("image/jpeg", uid.JPEGBaseline8Bit, False)
    with pytest.raises(media.NotAcceptable, match="single-part"):  # a single part holds one frame
        media.choose_frames(baseline, uid.ExplicitVRLittleEndian, can, count=2)
    octets = media.choose_frames(
        media.parse_accept("application/octet-stream"), stored, can, count=1
    )
    assert (octets.syntax, octets.multipart) == (uid.ExplicitVRLittleEndian, False)
    # a rendered study: a part per image, or one image alone
    assert media.choose_rendered_parts(media.parse_accept(None), 6) == ("image/jpeg", True)
    assert media.choose_rendered_parts(media.parse_accept("image/png"), 1) == ("image/png", False)
    with pytest.raises(media.NotAcceptable, match="multipart"):
        media.choose_rendered_parts(media.parse_accept("image/png"), 6)


def test_a_lone_star_matches_everything_even_an_empty_value(ct: dict[str, object]) -> None:
    empty = {**ct, "00080090": {"vr": "PN"}}  # Referring Physician's Name, emptied
    assert matches(empty, "00080090", "*")
    assert matches({}, "00080090", "*")  # absent too (PS3.4 C.2.2.2.4)
    assert not matches(empty, "00080090", "A*")


def test_dates_and_times_are_checked_before_searching() -> None:
    for good in ("20240101", "20240101-", "-20241231", "20240101-20241231", "*", ""):
        parse([("StudyDate", good)])
    for bad in ("notadate", "2024", "-", "2024-01-01"):
        with pytest.raises(QueryError, match=r"StudyDate.*YYYYMMDD"):
            parse([("StudyDate", bad)])
    parse([("StudyTime", "1030-1130")])
    with pytest.raises(QueryError, match="StudyTime"):
        parse([("StudyTime", "10h30")])


def test_each_level_answers_with_its_own_attributes(ct: dict[str, object]) -> None:
    study = level_record(ct, "study", "")
    assert "00100010" in study  # Patient's Name
    assert "00080060" not in study  # Modality: the series'
    assert "00080018" not in study  # SOP Instance UID: the instance's
    across = level_record(ct, "series", "")
    assert {"00100010", "00080020", "00080060", "0020000E"} <= set(across)
    assert "00080018" not in across
    within = level_record(ct, "series", "study")
    assert "00100010" not in within
    assert "0020000D" in within
    instance = level_record(ct, "instance", "series")
    assert "00100010" not in instance
    assert "00080060" not in instance
    assert {"0020000D", "0020000E", "00080018"} <= set(instance)
    defaults = returned(level_record(ct, "instance", ""), "instance", parse([]), "")
    assert {"00100010", "00080020", "00080060", "00080018"} <= set(defaults)


def test_modality_at_study_level_is_matched_against_modalities_in_study() -> None:
    query = at_level(parse([("Modality", "CT")]), "study")
    assert query.matches == {"00080061": "CT"}
    record = {"00080061": {"vr": "CS", "Value": ["CT", "MR"]}}
    assert select(query, [record], lambda r: r) == [record]
    assert at_level(parse([("Modality", "CT")]), "series").matches == {"00080060": "CT"}


def test_searches_are_answered_in_json_or_refused() -> None:
    assert media.choose_search_media(media.parse_accept(None)) == "application/dicom+json"
    assert (
        media.choose_search_media(media.parse_accept("text/html, */*;q=0.8"))
        == "application/dicom+json"
    )
    assert media.choose_search_media(media.parse_accept("application/json")) == "application/json"
    for refused in (
        "application/xml",
        "text/html",
        'multipart/related; type="application/dicom+xml"',
    ):
        with pytest.raises(media.NotAcceptable):
            media.choose_search_media(media.parse_accept(refused))
