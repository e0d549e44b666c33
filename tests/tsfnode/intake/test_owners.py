"""Who may use a study of the intake (tsfnode/intake/owners.py), on real imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.studies import CT
from tests.tsfnode.intake.conftest import PYDICOM_FILES
from tsfnode.config import NodeConfig
from tsfnode.intake.importer import importer_for
from tsfnode.intake.owners import OWNER_FILE, NoSuchStudy, Owner, StudyOwners
from tsfnode.node import init_node
from tsfnode.nodedir import NodeDir

KOFFI, INES = 1, 2


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    """A node directory, made in process (no listening: only its intake is used)."""
    init_node(tmp_path / "cotonou", NodeConfig(name="CHU Cotonou", country="BJ", http_port=0))
    return tmp_path / "cotonou"


def _studies(node_dir: Path, source: Path, owner: int | None) -> list[str]:
    return sorted(importer_for(node_dir, owner=owner).run([source]).studies)


def test_an_upload_is_its_uploaders_and_the_nodes_own_input_every_senders(
    node_dir: Path,
) -> None:
    owners = StudyOwners(NodeDir(node_dir).intake)
    (koffis,) = _studies(node_dir, CT, KOFFI)
    (nodes,) = _studies(node_dir, PYDICOM_FILES / "MR_small.dcm", None)
    assert owners.owner(koffis) == Owner(KOFFI)
    assert owners.owner(nodes) == Owner(None)
    assert owners.require(koffis, KOFFI) == koffis
    with pytest.raises(NoSuchStudy, match=r"no study .* of yours"):
        owners.require(koffis, INES)
    assert owners.studies_of([koffis, nodes], INES) == [nodes]
    assert owners.studies_of([koffis, nodes], KOFFI) == [koffis, nodes]


def test_the_owner_is_whoever_made_the_study_and_never_changes(node_dir: Path) -> None:
    """The same study brought again by another account becomes a study of its own (its
    UIDs are that account's: issue 21) and adds nothing to who owns the first."""
    owners = StudyOwners(NodeDir(node_dir).intake)
    (first,) = _studies(node_dir, CT, KOFFI)
    (again,) = _studies(node_dir, CT, INES)
    (nodes,) = _studies(node_dir, CT, None)
    assert len({first, again, nodes}) == 3
    assert (owners.owner(first), owners.owner(again)) == (Owner(KOFFI), Owner(INES))
    assert not owners.make(first, INES)
    assert not owners.may_use(first, INES)
    again_his = importer_for(node_dir, owner=KOFFI).run([CT])  # his again: the same study,
    assert [(r.kept, r.study_uid) for r in again_his.repeated] == [("first", first)]  # held


@pytest.mark.parametrize(
    "written",
    [None, "not json", '{"account": true}', '{"account": "1"}', "[1]", '{"other": 1}'],
)
def test_a_study_without_a_readable_owner_is_nobodys(node_dir: Path, written: str | None) -> None:
    owners = StudyOwners(NodeDir(node_dir).intake)
    (study,) = _studies(node_dir, CT, KOFFI)
    path = NodeDir(node_dir).intake / study / OWNER_FILE
    if written is None:
        path.unlink()
    else:
        path.write_text(written)
    assert owners.owner(study) is None
    assert not owners.may_use(study, KOFFI)
    assert owners.owner("../" + study) is None  # never a path out of the intake
