"""Issue 26, the delivery side: from a bundle queued to its receipt, beside Orthanc's
peer store and Syncthing (when installed: `bench/baselines.py`) and a raw aiohttp
stream of the same bytes (always); and how long a `tsfnode` command takes to start.

* ``delivery_small_studies``: pydicom-data's files (68, 21 studies once imported),
  each study sealed for the reader's node (not timed: sealing is another benchmark's),
  then all queued at once and the running node told (``tsfnode seal`` does the same),
  until the last receipt, by the sending node's own record. Orthanc: the same files
  uploaded to the sender (not timed), then one synchronous peer store of the 21 studies;
  Syncthing: the same files moved into the sender's folder and a scan asked for, until
  the sender sees the receiver hold them all; raw: one aiohttp PUT of the 21 bundles'
  stored chunks to another process. Medians of the rounds, each baseline with fresh
  processes in each round, side by side.
* ``delivery_one_bundle``: one small study (pydicom's CT_small) queued, until its
  receipt, beside a raw PUT of its stored chunks: what the node adds to moving the bytes.
* ``cli_start``: `python -m tsfnode studies --node DIR`, the whole process, beside
  `python -c pass`.
* ``ct_to_reader``: a CT series imported and sealed by the CLI (`tsfnode import`,
  `tsfnode seal`) on the sender, until the reader's node has opened it (the receipt),
  beside Orthanc's upload (`POST /instances`) of the same files and peer store of the
  study, until the receiver lists the series.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.baselines import ORTHANC, SYNCTHING, missing, orthanc_pair, syncthing_pair
from bench.bench_transfer import _cluster, _raw_put
from bench.result import Result
from protocol.bundle import Manifest
from protocol.identity import PublicIdentity
from tests.harness.cluster import Cluster
from tests.harness.data import PYDICOM_FILES, pydicom_data_folder
from tests.harness.nodes import get_json, tsfnode
from tests.harness.studies import ct_series
from tsfnode.cli.transfers import wake_running_node
from tsfnode.intake.review import ReviewBook
from tsfnode.keyfile import read_key
from tsfnode.nodedir import NodeDir
from tsfnode.store import Store
from tsfnode.store.blobs import BlobStore
from tsfnode.transfers.outbox import queue_bundle
from tsfnode.transfers.sealing import seal_in

TIMEOUT_S = 600


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


def _seal_studies(sender: Path, recipient: str, studies: list[str]) -> list[Manifest]:
    """Each study of the sender's intake sealed for ``recipient``, not queued."""
    book = ReviewBook(sender / "intake")
    identity = read_key(sender / "node.key")
    manifests = []
    for study in studies:
        book.confirm(study, None, now_ms=1)  # the sender looked at every image
        to = [PublicIdentity.from_text(recipient)]
        sealed = seal_in(sender, identity, to, study, now=int(time.time() * 1000))
        manifests.append(sealed.manifest)
    return manifests


def _queue_all(sender: Path, manifests: list[Manifest]) -> float:
    """Queue every bundle in one commit and tell the running node, as `tsfnode seal`
    does; the wall time (s since the epoch) just before."""
    identity = read_key(sender / "node.key")
    os.sync()  # what sealing wrote must not slow the delivery
    start = time.time()

    async def queue() -> None:
        store = await Store.open(sender / "node.db")
        try:
            for manifest in manifests:
                await queue_bundle(
                    store.db,
                    manifest,
                    sender=identity.public.key,
                    study_uid="",
                    now=int(time.time() * 1000),
                    commit=False,
                )
            await store.db.commit()
        finally:
            await store.close()

    asyncio.run(queue())
    wake_running_node(NodeDir(sender))
    return start


def _receipts_after(c: Cluster, manifests: list[Manifest], start: float) -> float:
    """Seconds from ``start`` to the last receipt, by the sending node's record (the
    bench's polling of the API does not count)."""
    wanted = {m.bundle_id.hex() for m in manifests}
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        out = [
            t
            for t in get_json(f"{c.url(0)}/api/v1/transfers")
            if t["direction"] == "out" and t["bundle_id"] in wanted
        ]
        if len(out) == len(wanted) and all(t["state"] == "delivered" for t in out):
            return max(int(t["done_ms"]) for t in out) / 1000 - start
        time.sleep(0.2)  # the figure is the node's record: polling often only loads it
    raise RuntimeError(f"{len(wanted)} bundles not delivered within {TIMEOUT_S} s")


def _stored(sender: Path, manifests: list[Manifest]) -> Callable[[], Iterator[bytes]]:
    blobs = BlobStore(sender / "blobs")

    def pieces() -> Iterator[bytes]:
        for manifest in manifests:
            for i in range(manifest.chunk_count):
                yield blobs.get(manifest.chunk_hash(i))

    return pieces


def _imported(c: Cluster, source: Path) -> list[str]:
    result = tsfnode("import", source, "--node", c.dirs[0], "--quiet", timeout=TIMEOUT_S)
    if result.returncode not in (0, 1):
        raise RuntimeError(result.stdout + result.stderr)
    return ReviewBook(c.dirs[0] / "intake").studies()


def _orthanc_store(files: list[Path]) -> float:
    """Seconds of one synchronous peer store of every study uploaded from ``files``."""
    with orthanc_pair() as pair:
        for path in files:
            with contextlib.suppress(RuntimeError):  # a file Orthanc cannot parse
                pair.sender.upload(path)
        studies = pair.sender.studies()
        begin = time.perf_counter()
        pair.peer_store(studies)
        return time.perf_counter() - begin


def _syncthing_sync(files: list[Path]) -> float:
    """Seconds from moving ``files`` into the sender's folder and asking for a scan to
    the sender knowing the receiver holds them all."""
    with syncthing_pair() as pair:
        stage = pair.sender.root / "stage"  # on the same file system: a move is a rename
        stage.mkdir()
        for path in files:
            shutil.copyfile(path, stage / path.name)
        os.sync()
        begin = time.perf_counter()
        for path in files:
            (stage / path.name).rename(pair.sender.folder / path.name)
        pair.scan()
        pair.wait_synced({path.name: path.stat().st_size for path in files})
        return time.perf_counter() - begin


QUICK_FILES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")  # pydicom's, three studies


def small_studies(*, quick: bool = False) -> Result:
    rounds = 1 if quick else 3
    files = _files(pydicom_data_folder())
    times: dict[str, list[float]] = {"node": [], "raw": [], "orthanc": [], "syncthing": []}
    skipped = {"orthanc": missing(ORTHANC), "syncthing": missing(SYNCTHING)}
    studies = 0
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as folder:
        source = pydicom_data_folder()
        if quick:
            source = Path(folder) / "quick"
            source.mkdir()
            for name in QUICK_FILES:
                shutil.copyfile(PYDICOM_FILES / name, source / name)
            files = _files(source)
        c = _cluster(Path(folder), direct=True)
        try:
            found = _imported(c, source)
            studies = len(found)
            for _ in range(rounds):
                manifests = _seal_studies(c.dirs[0], c.ids[1], found)
                start = _queue_all(c.dirs[0], manifests)
                times["node"].append(_receipts_after(c, manifests, start))
                times["raw"].append(_raw_put(Path(folder), _stored(c.dirs[0], manifests)))
                if not skipped["orthanc"]:
                    times["orthanc"].append(_orthanc_store(files))
                if not skipped["syncthing"]:
                    times["syncthing"].append(_syncthing_sync(files))
        finally:
            c.close()
    median = {k: statistics.median(v) for k, v in times.items() if v}
    for name, why in skipped.items():
        if why:
            print(f"delivery_small_studies: {name} not measured: {why}", file=sys.stderr)
    baseline = "orthanc" if "orthanc" in median else "raw"
    return Result(
        name="delivery_small_studies",
        value=median["node"],
        unit=f"s, median of {rounds}, {studies} studies ({len(files)} files) queued at once"
        " until the last receipt, two node processes on loopback",
        baseline="Orthanc 1.10 peer store (HTTP, synchronous) of the same studies"
        if baseline == "orthanc"
        else "raw aiohttp PUT of the bundles' chunks (Orthanc not installed)",
        baseline_value=median[baseline],
        higher_is_better=False,
        target="ratio < 1 (faster than Orthanc's peer store)",
        extra={f"{k}_s": v for k, v in median.items() if k != "node"}
        | {f"ratio_to_{k}": median["node"] / v for k, v in median.items() if k != "node"},
    )


def one_bundle(*, quick: bool = False) -> Result:
    rounds = 1 if quick else 9
    node, raw = [], []
    with tempfile.TemporaryDirectory(prefix="bench-one-bundle-") as folder:
        c = _cluster(Path(folder), direct=True)
        try:
            study = _imported(c, PYDICOM_FILES / "CT_small.dcm")
            manifests = _seal_studies(c.dirs[0], c.ids[1], study * rounds)
            for manifest in manifests:
                start = _queue_all(c.dirs[0], [manifest])
                node.append(_receipts_after(c, [manifest], start))
                raw.append(_raw_put(Path(folder), _stored(c.dirs[0], [manifest])))
        finally:
            c.close()
    value, base = statistics.median(node), statistics.median(raw)
    return Result(
        name="delivery_one_bundle",
        value=value,
        unit=f"s, median of {rounds}, a small study ({manifests[0].ciphertext_size} bytes"
        " sealed) queued until its receipt",
        baseline="raw aiohttp PUT of its stored chunks to another process",
        baseline_value=base,
        higher_is_better=False,
        target="over_raw_ms < 50",
        extra={"over_raw_ms": (value - base) * 1000},
    )


def _process_time(argv: list[str]) -> float:
    begin = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - begin


def cli_start(*, quick: bool = False) -> Result:
    rounds = 3 if quick else 11
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as folder:
        node = Path(folder) / "node"
        tsfnode("init", node, "--name", "CHU Cotonou", "--port", "0")
        command = [sys.executable, "-m", "tsfnode", "studies", "--node", str(node)]
        empty = [sys.executable, "-c", "pass"]
        times: dict[str, list[float]] = {"cli": [], "python": []}
        for _ in range(rounds):  # interleaved: both see the same load
            times["cli"].append(_process_time(command))
            times["python"].append(_process_time(empty))
    cli, python = statistics.median(times["cli"]), statistics.median(times["python"])
    return Result(
        name="cli_start",
        value=cli,
        unit=f"s, median of {rounds}, `python -m tsfnode studies --node DIR`, whole process",
        baseline="python -c pass",
        baseline_value=python,
        higher_is_better=False,
        target="value < 0.3 s",
        extra={"over_python_s": cli - python},
    )


def _orthanc_ct(files: list[Path]) -> float:
    """Seconds to upload ``files`` to an Orthanc and peer-store their study, until the
    receiving Orthanc lists its series."""
    with orthanc_pair() as pair:
        begin = time.perf_counter()
        uploaded = [pair.sender.upload(path) for path in files]
        study = uploaded[0]["ParentStudy"]
        pair.peer_store([study])
        listed = pair.receiver.series_of(study)
        took = time.perf_counter() - begin
        if len(listed) != 1 or pair.receiver.instance_count() != len(files):
            raise RuntimeError(f"Orthanc's receiver holds {listed}, not the series")
        return took


def ct_to_reader(*, quick: bool = False) -> Result:
    slices, rounds = (5, 1) if quick else (120, 3)
    node: list[float] = []
    orthanc: list[float] = []
    raw: list[float] = []
    why = missing(ORTHANC)
    with tempfile.TemporaryDirectory(prefix="bench-ct-") as folder:
        tmp = Path(folder)
        c = _cluster(tmp, direct=True)
        try:
            for n in range(rounds):
                source = tmp / f"ct{n}"
                source.mkdir()
                files = ct_series(source, slices)
                os.sync()
                begin = time.time()
                before = set(ReviewBook(c.dirs[0] / "intake").studies())
                study = [s for s in _imported(c, source) if s not in before]
                sealed = tsfnode("seal", c.dirs[0], study[0], "--to", c.ids[1], timeout=TIMEOUT_S)
                bundle = sealed.stdout.split("bundle ")[1].split()[0]
                manifest = _manifest_of(c.dirs[0], bundle)
                node.append(_receipts_after(c, [manifest], begin))
                raw.append(_raw_put(tmp, _stored(c.dirs[0], [manifest])))
                if not why:
                    orthanc.append(_orthanc_ct(files))
        finally:
            c.close()
    if why:
        print(f"ct_to_reader: Orthanc not measured: {why}", file=sys.stderr)
    value = statistics.median(node)
    return Result(
        name="ct_to_reader",
        value=value,
        unit=f"s, median of {rounds}, a {slices}-slice CT imported and sealed by the CLI"
        " until the reader's node opened it (its receipt)",
        baseline="Orthanc 1.10: upload of the same files and peer store, until the"
        " receiver lists the series"
        if orthanc
        else "raw aiohttp PUT of the sealed bundle's chunks (Orthanc not installed)",
        baseline_value=statistics.median(orthanc or raw),
        higher_is_better=False,
        target="ratio < 1 (beside Orthanc)",
        extra={"raw_put_of_the_chunks_s": statistics.median(raw)},
    )


def _manifest_of(sender: Path, bundle: str) -> Manifest:
    async def read() -> Manifest:
        store = await Store.open(sender / "node.db", readonly=True)
        try:
            from tsfnode.store.transfers import TransferStore

            row = await TransferStore(store.db).bundle(bytes.fromhex(bundle))
            assert row is not None
            return Manifest.decode(row.manifest)
        finally:
            await store.close()

    return asyncio.run(read())


BENCHMARKS = {
    "delivery_small_studies": small_studies,
    "delivery_one_bundle": one_bundle,
    "cli_start": cli_start,
    "ct_to_reader": ct_to_reader,
}
