"""An opened bundle is listed once, as it is opened: the viewer's series and DICOMweb's
instances then come from its listing.json, without reading a header again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from tests.harness.data import PYDICOM_FILES
from tests.harness.studies import ct_series
from tsfnode.cases.images import list_series
from tsfnode.dicomweb.index import list_instances
from tsfnode.images import listing

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _bundle(folder: Path) -> Path:
    """A folder as the transfer service opens a bundle into: case.json, files/..."""
    files = folder / "files"
    (files / "ct").mkdir(parents=True)
    ct_series(files / "ct", 5)
    (files / "mr").mkdir()
    shutil.copy(str(get_testdata_file("emri_small.dcm", download=False)), files / "mr" / "a.dcm")
    (files / "sr").mkdir()
    shutil.copy(PYDICOM_FILES / "test-SR.dcm", files / "sr" / "b.dcm")
    (files / "documents.tsfd").write_bytes(b"not DICOM")
    (files / "not-dicom.dcm").write_bytes(b"neither")
    (folder / "case.json").write_text("{}")
    return folder


class HeaderReads:
    """Counts the headers ``images/listing.py`` reads (``read_header``) from now on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        read_header = listing.read_header

        def counted(path: Path) -> object:
            self.count += 1
            return read_header(path)

        monkeypatch.setattr(listing, "read_header", counted)


def test_a_bundle_listed_at_opening_is_listed_again_without_reading_a_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = _bundle(tmp_path / "received" / "b1.tmp")
    listing.index_bundle(opened)  # as the transfer service does, before the rename
    assert (opened / "listing.json").exists()
    folder = opened.rename(tmp_path / "received" / "b1")
    listing.complete_listing(folder)  # DICOMweb's part, once the bundle is in place
    same = _bundle(tmp_path / "unlisted")  # the same files, without a listing
    for path in (same / "files").rglob("*.dcm"):
        shutil.copy(folder / path.relative_to(same), path)
    from_headers = (list_series([same]), list_instances([same]))
    reads = HeaderReads(monkeypatch)
    series, instances = list_series([folder]), list_instances([folder])
    assert reads.count == 0
    assert [s["uid"] for s in series] == [s["uid"] for s in from_headers[0]]
    assert len(series) == 2  # the CT and the MR; the SR is no image
    assert sum(len(s["frames"]) for s in series) == 5 + 10
    for ours, theirs in zip(series, from_headers[0], strict=True):
        assert [Path(f["file"]).relative_to(folder) for f in ours["frames"]] == [
            Path(f["file"]).relative_to(same) for f in theirs["frames"]
        ]
        assert {k: v for k, v in ours.items() if k != "frames"} == {
            k: v for k, v in theirs.items() if k != "frames"
        }
    assert len(instances) == 5 + 1 + 1  # the SR is an instance DICOMweb serves
    assert [i["meta"] for i in instances] == [i["meta"] for i in from_headers[1]]
    assert all(Path(i["path"]).is_relative_to(folder) for i in instances)
    assert reads.count == 0
    listing_of_intake = list_series([same])  # a folder without listing: its headers
    assert reads.count == 5 + 1 + 1 + 1  # every .dcm file, the one that is not DICOM too
    assert listing_of_intake == from_headers[0]


def test_the_viewer_lists_a_bundle_as_soon_as_it_is_opened_and_dicomweb_once_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At opening only the viewer's listing is made (what the reader waits for); until
    ``complete_listing`` adds DICOMweb's, DICOMweb lists that folder from its headers,
    the same instances; afterwards from the listing, without reading a header."""
    opened = _bundle(tmp_path / "received" / "b1.tmp")
    reads = HeaderReads(monkeypatch)
    listing.index_bundle(opened)
    assert reads.count == 5 + 1 + 1 + 1  # each .dcm once
    folder = opened.rename(tmp_path / "received" / "b1")
    reads.count = 0
    assert sum(len(s["frames"]) for s in list_series([folder])) == 5 + 10
    assert reads.count == 0
    from_headers = list_instances([folder])
    assert reads.count == 8  # not listed for DICOMweb yet: its headers
    listing.complete_listing(folder)
    assert reads.count == 16
    reads.count = 0
    listed = list_instances([folder])
    assert reads.count == 0
    assert [i["meta"] for i in listed] == [i["meta"] for i in from_headers]
    assert [i["path"] for i in listed] == [i["path"] for i in from_headers]
    assert sum(len(s["frames"]) for s in list_series([folder])) == 5 + 10
    listing.complete_listing(folder)  # listed whole already: nothing read
    assert reads.count == 0


@pytest.mark.parametrize("most", [listing.HELD_HEADERS_MAX, 0])
def test_a_bundle_listed_as_it_is_opened_parses_each_header_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, most: int
) -> None:
    """``OpeningListing`` (the transfer service's, handed each file's bytes as written)
    makes the listing ``index_bundle`` and ``complete_listing`` make from the files, both
    parts from one parse of each header; past its ``HeaderBudget`` (``most``) the
    headers are not held, and DICOMweb's part is read from the files again."""
    opened = _bundle(tmp_path / "received" / "b1.tmp")
    same = tmp_path / "same"
    shutil.copytree(opened, same)
    opening = listing.HeaderBudget(most).opening()
    reads = HeaderReads(monkeypatch)
    for path in sorted((opened / "files").rglob("*"), reverse=True):  # any order
        if path.is_file():
            opening.add(path.relative_to(opened).as_posix(), path, path.read_bytes())
    opening.write(opened)
    assert reads.count == 0  # parsed from the bytes handed over
    folder = opened.rename(tmp_path / "received" / "b1")
    assert len(list_series([folder])) == 2
    opening.complete(folder)
    assert reads.count == (0 if most else 8)
    listing.index_bundle(same, tuple(listing.MAKERS))
    for name in ("listing.json", "listing-dicomweb.json"):
        assert json.loads((folder / name).read_text()) == json.loads((same / name).read_text())


def test_an_opening_holds_headers_one_at_a_time_within_the_budget(tmp_path: Path) -> None:
    """Headers are taken from the budget as each file is opened: an opening never holds
    more than the budget at any moment (before, it held every header of the bundle
    until the viewer's part was written, and only then asked: a 2,000-slice CT's 90 MB
    of headers in the 256 MiB box, whose reader was OOM-killed), and once past it
    holds none, DICOMweb's part being read from the files again."""
    opened = _bundle(tmp_path / "received" / "b1.tmp")
    budget = listing.HeaderBudget(3)
    opening = budget.opening()
    seen = []
    for path in sorted((opened / "files").rglob("*")):
        if path.is_file():
            opening.add(path.relative_to(opened).as_posix(), path, path.read_bytes())
            seen.append(opening.held)
    assert seen[:3] == [1, 2, 3], seen
    assert set(seen[3:]) == {0}, seen
    other = budget.opening()
    other.add("files/mr/a.dcm", opened / "files" / "mr" / "a.dcm", None)
    assert other.held == 1  # the first opening gave its headers back
