"""Issue 21: property-based fuzzing of what a sender controls at intake.

- The JSON that starts an upload (``parse_new_upload``, what ``/api/v1/uploads`` and the
  web uploader call): any bytes, any JSON value, gives the checked request or an
  ``UploadRefused`` (400) naming the problem; never another exception.
- DICOM headers through the importer: a real pydicom test file with bytes changed,
  inserted or cut gives an instance taken (de-identified, under the node's own UIDs) or a
  refusal with a reason from the catalogue; never an exception, never a file outside the
  intake.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.data import PYDICOM_FILES
from tsfnode.i18n import translator
from tsfnode.intake.importer import Importer, ImportReport, Source
from tsfnode.intake.pseudonyms import PseudonymMap
from tsfnode.intake.uids import is_node_made
from tsfnode.intake.uploads import MAX_UPLOAD, UploadRefused, parse_new_upload

SOURCE = (PYDICOM_FILES / "CT_small.dcm").read_bytes()
HEADER = 1500  # the preamble, the file meta and the first attributes of CT_small.dcm
CATALOGUE_KEYS = frozenset(translator("en"))
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
requests = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["size", "name", "batch", "other"]), json_values, max_size=4
    ).map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b'{"size": 1e309}', b'{"size": NaN}', b'{"size": -0}', b'{"size": 1E3}']),
)


@FUZZ
@given(data=requests, with_name=st.booleans())
def test_upload_requests_give_a_checked_request_or_a_400(data: bytes, with_name: bool) -> None:
    try:
        body = parse_new_upload(data, with_name=with_name)
    except UploadRefused as refused:
        said = (refused.status, refused.key in CATALOGUE_KEYS, refused.say("fr"), str(refused))
    else:
        said = None
    if said is not None:
        assert said[:2] == (400, True)
        assert said[2]
        assert said[3]
        return
    assert type(body["size"]) is int
    assert 0 < body["size"] <= MAX_UPLOAD
    if with_name:
        assert isinstance(body["name"], str)
        assert "\x00" not in body["name"]
        assert "/" not in body["name"]


@pytest.fixture(scope="module")
def importer() -> Iterator[Importer]:
    with tempfile.TemporaryDirectory(prefix="tsf-fuzz-") as folder:
        root = Path(folder)
        yield Importer(root / "intake", PseudonymMap(root / "keys"), owner=7)


mutations = st.lists(
    st.tuples(st.integers(0, HEADER - 1), st.integers(0, 255)), min_size=1, max_size=12
)


@FUZZ
@given(
    changed=mutations,
    inserted=st.one_of(st.none(), st.tuples(st.integers(132, HEADER), st.binary(max_size=16))),
    cut=st.one_of(st.none(), st.integers(0, len(SOURCE))),
)
def test_damaged_dicom_headers_are_taken_or_refused_with_a_reason(
    importer: Importer,
    changed: list[tuple[int, int]],
    inserted: tuple[int, bytes] | None,
    cut: int | None,
) -> None:
    data = bytearray(SOURCE)
    for position, value in changed:
        data[position] = value
    if inserted is not None:
        data[inserted[0] : inserted[0]] = inserted[1]
    if cut is not None:
        del data[cut:]
    mutated = bytes(data)
    report = ImportReport()
    importer.take(Source("fuzzed.dcm", len(mutated), lambda: mutated), report)
    assert len(report.taken) + len(report.rejected) + len(report.repeated) == 1
    for refused in report.rejected:
        assert refused.key in CATALOGUE_KEYS
        assert refused.say("fr")
        assert refused.reason
    for taken in report.taken:
        for uid in (taken.study_uid, taken.series_uid, taken.sop_uid):
            assert is_node_made(uid)
        path = importer.intake / taken.study_uid / taken.series_uid / f"{taken.sop_uid}.dcm"
        assert path.is_file()
    root = importer.intake.parent
    assert {p.name for p in root.iterdir()} <= {"intake", "keys"}
