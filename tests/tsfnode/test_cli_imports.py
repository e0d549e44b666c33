"""Issue 26: `tsfnode` took 0.9-1.0 s to start for any command, 0.73 s of it importing
the web application and the viewer for commands that need neither. A command imports
what it uses: checked on the modules a fresh interpreter holds after the command ran
(a real check, not a timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tsfnode.config import NodeConfig
from tsfnode.node import init_node

ROOT = Path(__file__).resolve().parents[2]
# Modules that `tsfnode studies` has no use for: the server and its client, the web
# application and the viewer, DICOM and image decoding.
HEAVY = ("aiohttp", "tsfnode.app", "tsfnode.web", "tsfnode.images", "pydicom", "numpy", "PIL")


def python(*args: str) -> subprocess.CompletedProcess[str]:
    """A new Python process in the repository with these arguments, which must succeed."""
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


def _modules_after(*argv: str) -> tuple[list[str], str]:
    """Run ``tsfnode ARGV`` in a fresh interpreter: the modules it imported, and what
    it printed."""
    code = (
        "import io, json, sys, contextlib\n"
        "from tsfnode.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    status = main({list(argv)!r})\n"
        "print(json.dumps({'modules': sorted(sys.modules), 'out': out.getvalue(),"
        " 'status': status}))\n"
    )
    result = python("-c", code)
    found = json.loads(result.stdout)
    assert found["status"] == 0
    return found["modules"], found["out"]


@pytest.fixture
def node(tmp_path: Path) -> Path:
    init_node(tmp_path / "node", NodeConfig(name="CHU Cotonou", http_port=0))
    return tmp_path / "node"


def test_studies_imports_neither_the_web_application_nor_aiohttp_nor_pydicom(node: Path) -> None:
    modules, out = _modules_after("studies", "--node", str(node))
    assert "No study in the intake" in out
    loaded = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert loaded == []
    # the other command modules were not imported either
    assert [m for m in modules if m.startswith("tsfnode.cli.")] == [
        "tsfnode.cli.intake",
        "tsfnode.cli.main",
    ]


def test_transfers_reads_the_database_without_the_web_application(node: Path) -> None:
    modules, out = _modules_after("transfers", str(node))
    assert "No transfer" in out
    loaded = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert loaded == []


def test_help_still_lists_every_command() -> None:
    result = python("-m", "tsfnode", "--help")
    for command in ("init", "run", "studies", "import", "seal", "transfers", "account", "doctor"):
        assert command in result.stdout


def test_import_reads_dicom_without_the_server_or_its_client(node: Path) -> None:
    """`tsfnode import` needs pydicom, not aiohttp (tsfnode.i18n imported it for a type
    annotation: a tenth of a second of every import's start)."""
    from pydicom.data import get_testdata_file

    ct = str(get_testdata_file("CT_small.dcm"))
    modules, out = _modules_after("import", ct, "--node", str(node), "--quiet")
    assert "1 file(s) in 1 study(ies)" in out
    server = ("aiohttp", "tsfnode.app", "tsfnode.web")
    loaded = [m for m in modules if any(m == h or m.startswith(h + ".") for h in server)]
    assert loaded == []
