"""Images that may show identity block their study until the sender confirms or masks
them; masks black out the pixels in the stored file; the node's API and CLI do both."""

from __future__ import annotations

from pathlib import Path

import numpy
import pydicom
import pytest

from tests.harness.data import PYDICOM_FILES
from tests.harness.inprocess import LocalNode
from tests.harness.nodes import tsfnode
from tsfnode.errors import NodeError
from tsfnode.intake.importer import importer_for
from tsfnode.intake.review import CONFIRMED, MASKED, PENDING, NotReviewed, ReviewBook

US_RGB = PYDICOM_FILES / "examples_rgb_color.dcm"  # ultrasound, 240 x 320, RGB
CT = PYDICOM_FILES / "CT_small.dcm"


def _import(node_dir: Path, *paths: Path) -> tuple[ReviewBook, dict[str, str]]:
    """Import into the node; returns the book and {study uid: modality}."""
    report = importer_for(node_dir).run(list(paths))
    assert not report.rejected, report.rejected
    found = {}
    for r in report.taken:
        ds = pydicom.dcmread(node_dir / "intake" / r.study_uid / r.series_uid / f"{r.sop_uid}.dcm")
        found[r.study_uid] = str(ds.Modality)
    return ReviewBook(node_dir / "intake"), found


def _study_of(found: dict[str, str], modality: str) -> str:
    (uid,) = [u for u, m in found.items() if m == modality]
    return uid


def test_ultrasound_blocks_its_study_until_confirmed(node_dir: Path) -> None:
    book, found = _import(node_dir, US_RGB, CT)
    us, ct = _study_of(found, "US"), _study_of(found, "CT")
    book.require_reviewed(ct)  # nothing flagged: a CT may go as it is
    (flag,) = book.flags(us)
    assert flag.state == PENDING
    assert any("US" in reason for reason in flag.reasons)
    with pytest.raises(NotReviewed, match="1 image\\(s\\) may show the patient's identity"):
        book.require_reviewed(us)
    assert book.confirm(us, None, now_ms=1000) == 1
    (flag,) = book.flags(us)
    assert (flag.state, flag.decided_ms) == (CONFIRMED, 1000)
    book.require_reviewed(us)
    assert book.summary(us).as_dict()["sendable"] is True


def test_mask_blacks_out_the_rectangle_and_nothing_else(node_dir: Path) -> None:
    book, found = _import(node_dir, US_RGB)
    us = _study_of(found, "US")
    (flag,) = book.flags(us)
    path = node_dir / "intake" / us / flag.series_uid / f"{flag.sop_uid}.dcm"
    before = pydicom.dcmread(path).pixel_array.copy()
    book.mask(us, flag.sop_uid, [(10, 5, 100, 20)], now_ms=2000)
    after_ds = pydicom.dcmread(path)
    after = after_ds.pixel_array
    assert not after[5:25, 10:110].any()
    outside = numpy.ones(before.shape[:2], dtype=bool)
    outside[5:25, 10:110] = False
    assert before[5:25, 10:110].any()  # there was something to hide
    numpy.testing.assert_array_equal(after[outside], before[outside])
    assert after_ds.BurnedInAnnotation == "NO"
    assert after_ds.PatientIdentityRemoved == "YES"
    (flag,) = book.flags(us)
    assert (flag.state, flag.masks) == (MASKED, ((10, 5, 100, 20),))
    book.require_reviewed(us)


def test_a_mask_outside_the_image_is_refused_and_changes_nothing(node_dir: Path) -> None:
    book, found = _import(node_dir, US_RGB)
    us = _study_of(found, "US")
    (flag,) = book.flags(us)
    path = node_dir / "intake" / us / flag.series_uid / f"{flag.sop_uid}.dcm"
    original = path.read_bytes()
    with pytest.raises(NodeError, match="lies outside the image"):
        book.mask(us, flag.sop_uid, [(400, 0, 10, 10)], now_ms=1)
    with pytest.raises(NodeError, match="not among the flagged images"):
        book.mask(us, "1.2.3", [(0, 0, 10, 10)], now_ms=1)
    with pytest.raises(NodeError, match="no study"):
        book.summary("1.2.3.4")
    assert path.read_bytes() == original
    assert book.flags(us)[0].state == PENDING


def test_cli_lists_studies_and_reviews_them(node_dir: Path) -> None:
    _, found = _import(node_dir, US_RGB, CT)
    us = _study_of(found, "US")
    listed = tsfnode("studies", "--node", node_dir)
    assert listed.returncode == 0, listed.stderr
    assert "1 image(s) to check" in listed.stdout
    assert "ready to send" in listed.stdout
    shown = tsfnode("review", us[:20], "--node", node_dir)
    assert shown.returncode == 1
    assert "still to check" in shown.stdout
    wrong = tsfnode("review", us[:20], "--node", node_dir, "--mask", "1,2,3")
    assert wrong.returncode == 2
    assert "x,y,width,height" in wrong.stderr
    no_image = tsfnode("review", us[:20], "--node", node_dir, "--mask", "1,2,3,4")
    assert no_image.returncode == 2
    assert "--mask needs --image" in no_image.stderr
    done = tsfnode("review", us[:20], "--node", node_dir, "--confirm-all")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "may be sent" in done.stdout


async def test_local_api_reviews_with_a_sender_token(local_node: LocalNode) -> None:
    koffi = await local_node.account("koffi", "sender")
    _, found = _import(local_node.root, US_RGB)
    us = _study_of(found, "US")
    status, _ = await local_node.call("/api/v1/studies", "tsf_not_a_token")
    assert status == 401
    status, listed = await koffi.api("/studies")
    assert status == 200
    assert listed == [
        {
            "study_uid": us,
            "series": 1,
            "instances": 1,
            "pending": 1,
            "confirmed": 0,
            "masked": 0,
            "sendable": False,
        }
    ]
    study = await koffi.ok(f"/studies/{us}")
    sop = study["flags"][0]["sop_uid"]
    status, text = await koffi.api(f"/studies/{us}/review", "POST", {"mask": [[0, 0]]})
    assert status == 400
    assert "[x, y, width, height]" in str(text)
    status, study = await koffi.api(
        f"/studies/{us}/review", "POST", {"image": sop, "mask": [[0, 0, 50, 8]]}
    )
    assert status == 200, study
    assert study["summary"]["sendable"] is True
    assert study["flags"][0]["state"] == MASKED


def test_configured_safe_private_attributes_are_kept_and_no_others(node_dir: Path) -> None:
    config = node_dir / "config.toml"
    config.write_text(
        config.read_text().replace("keep_private = []", 'keep_private = ["GEMS_ACQU_01:23"]'),
        "utf-8",
    )
    importer_for(node_dir).run([CT])
    (out,) = (node_dir / "intake").rglob("*.dcm")
    ds = pydicom.dcmread(out)
    original = pydicom.dcmread(CT)
    assert ds[0x00191023].value == original[0x00191023].value  # Table Speed, kept
    assert ds[0x00190010].value == "GEMS_ACQU_01"
    kept = [e.tag for e in ds if e.tag.is_private]
    assert kept == [0x00190010, 0x00191023]  # its creator, and no other creator


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('["GEMS_ACQU_01"]', "is not PRIVATE CREATOR:ee"),
        ('["GEMS_ACQU_01:1023"]', "is not PRIVATE CREATOR:ee"),
        ('[":23"]', "is not PRIVATE CREATOR:ee"),
        ("[1]", "must be a list of texts"),
        ('"GEMS_ACQU_01:23"', "must be a list"),
    ],
)
def test_a_bad_safe_private_list_is_named(node_dir: Path, value: str, message: str) -> None:
    config = node_dir / "config.toml"
    text = config.read_text()
    assert "keep_private = []" in text  # init writes the setting, empty
    config.write_text(text.replace("keep_private = []", f"keep_private = {value}"), "utf-8")
    result = tsfnode("import", CT, "--node", node_dir, "--quiet")
    assert result.returncode == 2
    assert "[intake] keep_private" in result.stderr
    assert message in result.stderr
    assert not (node_dir / "intake").exists()
