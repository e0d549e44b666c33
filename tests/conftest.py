from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.keys import write_key
from bootstrap.network import demo_anchor
from tests.nodes import tsfnode


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    """A freshly initialised node that listens on a free port of 127.0.0.1."""
    directory = tmp_path / "erasme"
    result = tsfnode(
        "init", directory, "--name", "Hôpital Erasme", "--country", "BE", "--port", "0"
    )
    assert result.returncode == 0, result.stderr
    return directory


@pytest.fixture
def anchor_key(tmp_path: Path) -> Path:
    """The demo network's anchor key (derived from a public phrase), as a file."""
    path = tmp_path / "demo-anchor.key"
    write_key(path, demo_anchor())
    return path
