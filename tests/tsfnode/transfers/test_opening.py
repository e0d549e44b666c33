"""Issue 26, the reader's side: a bundle is listed as it is opened, once. Each DICOM
file's header is parsed once, from the bytes the opener decrypted (not read back from
disk), and serves both the viewer's part of ``listing.json`` (written before the folder
appears) and DICOMweb's (added once the receipt is given).

Two nodes in this process, as in ``test_outbox_events.py``; the bundle holds real DICOM
files (a CT series made from pydicom-data's slice, pydicom's MR, an SR)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydicom.data import get_testdata_file
from pytest_aiohttp import AiohttpClient

from protocol.bundle import BundleSealer, Manifest, choose_chunk_size, encode_plaintext_header
from tests.harness.data import PYDICOM_FILES
from tests.harness.studies import ct_series
from tests.tsfnode.transfers.test_outbox_events import (
    BOUND_S,
    DAY_MS,
    _delivered,
    _queue,
    _two_nodes,
)
from tsfnode.appkeys import TRANSFERS
from tsfnode.cases.images import list_series
from tsfnode.dicomweb.index import list_instances
from tsfnode.images import listing, render
from tsfnode.store.blobs import BlobStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _study(folder: Path) -> list[tuple[str, bytes]]:
    """Real DICOM files (and one that is not) as a sender's bundle names them."""
    ct = folder / "ct"
    ct.mkdir(parents=True)
    files = [(f"ct/{p.name}", p.read_bytes()) for p in ct_series(ct, 4)]
    files.append(("mr/a.dcm", Path(str(get_testdata_file("emri_small.dcm"))).read_bytes()))
    files.append(("sr/b.dcm", (PYDICOM_FILES / "test-SR.dcm").read_bytes()))
    files.append(("not-dicom.dcm", b"neither"))
    files.append(("documents.tsfd", b"not DICOM"))
    return files


def _seal_files(sender: Any, reader: Any, files: list[tuple[str, bytes]]) -> Manifest:
    now = sender.clock.now_ms()
    size = sum(len(data) for _, data in files)
    sealer = BundleSealer(
        sender=sender.identity,
        recipients=[reader.identity.public],
        chunk_size=choose_chunk_size(size),
        rng=os.urandom,
    )
    chunks = sealer.push(encode_plaintext_header({}, [(n, len(d)) for n, d in files]))
    for _, data in files:
        chunks += sealer.push(data)
    rest, raw = sealer.finish(now=now, ttl=DAY_MS, priority=0)
    blobs = BlobStore(sender.node_dir.blobs)
    for chunk in chunks + rest:
        blobs.put(chunk, sync=False)
    return Manifest.decode(raw, now=now)


class HeaderParses:
    """Counts pydicom's reads of a header by the node (``render.dcmread``), by source."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.from_disk = 0
        self.from_memory = 0
        dcmread = render.dcmread

        def counted(source: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(source, str | os.PathLike):
                self.from_disk += 1
            else:
                self.from_memory += 1
            return dcmread(source, *args, **kwargs)

        monkeypatch.setattr(render, "dcmread", counted)


async def test_an_opened_bundle_is_listed_from_one_parse_of_each_header(
    tmp_path: Path, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender, reader = await _two_nodes(tmp_path, aiohttp_client)
    files = _study(tmp_path / "study")
    manifest = _seal_files(sender, reader, files)
    parses = HeaderParses(monkeypatch)
    await _queue(sender, manifest)
    sender.app[TRANSFERS].wake()
    states = await _delivered(sender, [manifest.bundle_id])
    assert states == {manifest.bundle_id.hex(): "delivered"}
    folder = reader.node_dir.root / "received" / manifest.bundle_id.hex()
    for _ in range(BOUND_S * 20):  # DICOMweb's part follows the receipt
        if (folder / "listing-dicomweb.json").exists():
            break
        await asyncio.sleep(0.05)
    names = ("listing.json", "listing-dicomweb.json")
    held = [json.loads((folder / name).read_text()) for name in names]
    dcm = [name for name, _ in files if name.endswith(".dcm")]
    assert (parses.from_disk, parses.from_memory) == (0, len(dcm))  # once each, in memory

    # The same listing as the headers read from disk give (``index_bundle``, both parts).
    same = tmp_path / "same"
    shutil.copytree(folder, same)
    for name in names:
        (same / name).unlink()
    listing.index_bundle(same, tuple(listing.MAKERS))
    assert held == [json.loads((same / name).read_text()) for name in names]
    assert len(held[1]["instances"]) == 4 + 1 + 1  # DICOMweb's: the SR too, not "neither"
    assert len(held[0]["instances"]) == 4 + 1  # the viewer's: the images
    parses.from_disk = 0
    series, instances = list_series([folder]), list_instances([folder])
    assert parses.from_disk == parses.from_memory - len(dcm) == 0  # from the listing
    assert sum(len(s["frames"]) for s in series) == 4 + 10  # the CT's and the MR's frames
    assert len(instances) == 4 + 1 + 1  # the SR is an instance DICOMweb serves
