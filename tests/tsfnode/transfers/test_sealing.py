"""Sealing refuses a study whose flagged images nobody checked (no node process: the
CLI in this process on a node directory)."""

from __future__ import annotations

import secrets
from pathlib import Path

from protocol.identity import Identity
from tests.harness.data import PYDICOM_FILES
from tests.harness.nodes import tsfnode
from tests.tsfnode.transfers.conftest import import_study


def test_a_study_with_an_unchecked_image_is_not_sealed(node_dir: Path) -> None:
    study = import_study(node_dir, PYDICOM_FILES / "examples_rgb_color.dcm")
    reader = Identity.generate(secrets.token_bytes).public.text
    result = tsfnode("seal", node_dir, study, "--to", reader)
    assert result.returncode == 2
    assert "may show the patient's identity" in result.stderr
    assert not (node_dir / "blobs").exists() or not any((node_dir / "blobs").rglob("*"))
