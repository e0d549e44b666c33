"""Intake tests: every real DICOM file of pydicom, pydicom-data and deid-data imported
once per session (tests.harness.data says where they are)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pickle
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness.data import DEID_FILES, PYDICOM_FILES, pydicom_data_folder
from tests.harness.inprocess import LocalNode, start_local_node
from tests.harness.pacs import free_port
from tsfnode.intake.importer import Importer, ImportReport, _read_dicom
from tsfnode.intake.pseudonyms import PseudonymMap

SOURCES = [PYDICOM_FILES, pydicom_data_folder(), DEID_FILES]


@dataclass
class Pair:
    name: str
    original: bytes
    output: Path


@dataclass
class Imported:
    root: Path
    importer: Importer
    report: ImportReport
    pairs: list[Pair]


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: .ci/run installs it")
        pytest.skip(f"{name} is not installed here (CI installs it)")
    return path


@pytest.fixture(scope="session")
def imported(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Imported:
    """Every real file imported once for the run. Under pytest-xdist the workers share
    it: the first to come imports, the others wait for it and read it (pytest-xdist's
    recipe for a session fixture made once)."""
    if worker_id == "master":  # no workers
        return _import_every_file(tmp_path_factory.mktemp("intake"))
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, the workers'
    root = shared / "intake-of-every-real-file"
    lock = os.open(shared / "intake-of-every-real-file.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # bounded by the per-test timeout
        saved = root / "report.pickle"
        if saved.exists():
            report = pickle.loads(saved.read_bytes())  # noqa: S301 - written by this run
            return _pairs_of(root, _importer(root), report)
        root.mkdir()
        made = _import_every_file(root)
        saved.write_bytes(pickle.dumps(made.report))
        return made
    finally:
        os.close(lock)  # closing the file releases the lock


def _importer(root: Path) -> Importer:
    return Importer(root / "intake", PseudonymMap(root / "keys"))


def _import_every_file(root: Path) -> Imported:
    importer = _importer(root)
    return _pairs_of(root, importer, importer.run(SOURCES))


def _pairs_of(root: Path, importer: Importer, report: ImportReport) -> Imported:
    """Each source file beside what the import made of it."""
    outputs = {p.stem: p for p in (root / "intake").rglob("*.dcm")}
    # Some files hold the same instance (one image in several transfer syntaxes): the
    # first one imported is the one on disk, as for an instance sent twice, unless a
    # later lossless copy replaced a lossy one (ImportReport.repeated says which).
    pairs: dict[str, Pair] = {}
    scratch = ImportReport()
    refused = {r.name for r in report.rejected}
    refused |= {r.name for r in report.repeated if r.kept == "first"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for source in importer.sources(SOURCES, scratch):
            if source.name in refused:
                continue
            data = source.read()
            try:
                ds = _read_dicom(data)
            except Exception:  # noqa: S112 - not DICOM: the importer said why
                continue
            uid = str(ds.get("SOPInstanceUID", ""))
            new = importer.anonymizer.new_uid(uid) if uid else ""
            if new in outputs:
                pairs[new] = Pair(source.name, data, outputs[new])
    return Imported(root, importer, report, list(pairs.values()))


async def dcmtk(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """A dcmtk client, run off the loop (the node's HTTP side stays served)."""
    return await asyncio.to_thread(
        subprocess.run,
        [require_tool(str(args[0])), *map(str, args[1:])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (written by hand: no PDF library needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


async def encapsulated_pdf(folder: Path, stem: str, text: str, *options: str) -> Path:
    """A DICOM Encapsulated PDF made by dcmtk's pdf2dcm (with its ``options``) from a PDF
    showing ``text``: FOLDER/STEM.dcm."""
    pdf = folder / f"{stem}.pdf"
    pdf.write_bytes(minimal_pdf(text))
    document = folder / f"{stem}.dcm"
    made = await dcmtk("pdf2dcm", *options, pdf, document)
    assert made.returncode == 0, made.stderr
    return document


async def listening_node(
    tmp_path: Path, aiohttp_client: Any, **settings: Any
) -> tuple[LocalNode, int]:
    """A node in this process whose DICOM listener (pynetdicom, in its own thread) takes
    C-STORE as TSF_ERASME on a free port of 127.0.0.1 (``settings``: more of its config)."""
    port = free_port()
    node = await start_local_node(
        tmp_path / "erasme", aiohttp_client, dicom_ae_title="TSF_ERASME", dicom_port=port,
        **settings,
    )  # fmt: skip
    return node, port
