"""From the import to the reader's screen: a 256-slice CT imported at the sender's node,
sent as a case, until its series is listed at the reader's node (the viewer's series,
every frame there), against JPEG-LS encoding the same slices alone on this machine (one
core, read and encode: the codec's own cost); and the same over a 2 Mbit/s link, against
its bytes on the wire divided by the link's rate.

The CT is pydicom-data's real 512x512 slice (693_UNCI) made into 256 slices (134 MB),
each with its own UIDs and its pixels shifted by a row (tests.harness.studies), sent
between two real node processes on loopback (tests.harness.people.PairedNet); the link
is the test suite's userspace proxy in front of the reader's node (quick: 12 slices).
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import JPEGLSLossless

from bench.result import Result
from tests.harness.nodes import get_json, tsfnode
from tests.harness.people import FORM, Browser, PairedNet
from tests.harness.studies import ct_series

LINK = 250_000  # bytes per second: 2 Mbit/s
SLICES = 256
QUICK_SLICES = 12
SUBMIT_TIMEOUT_S = 900
POLL_S = 0.05  # how often the reader's series are asked for
TRANSFER = {"poll_interval_ms": 500, "retry_base_ms": 200}


def jpegls_alone(paths: list[Path]) -> float:
    """Seconds to read and JPEG-LS encode every slice, one after the other (pydicom with
    pyjpegls, as the node's intake/compress.py)."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            ds = pydicom.dcmread(path)
            ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls", generate_instance_uid=False)
    return time.perf_counter() - start


def _frames_listed(reader: Browser, case: str) -> int:
    status, _, page = reader.get(f"/web/cases/{case}/series")
    if status != 200:
        return 0
    return sum(len(s["frames"]) for s in json.loads(page))


def _submit(net: PairedNet, folder: Path) -> str:
    """``PairedNet.submit``, with the time a loaded machine may take to seal 256 slices
    while the request waits (the harness's calls give up after 30 s)."""
    node0 = net.cluster.dirs[0]
    intake = node0 / "intake"
    assert tsfnode("import", folder, "--node", node0, "--quiet").returncode == 0
    (study,) = {p.name for p in intake.iterdir() if p.is_dir()}
    assert tsfnode("review", study, "--node", node0, "--confirm-all").returncode == 0
    body = {"study_uid": study, "form": {**FORM, "body_part": "CHEST"}}
    request = urllib.request.Request(  # noqa: S310 - the node on loopback
        f"{net.cluster.url(0)}/api/v1/cases",
        data=json.dumps({**body, "routing": "pair", "target": net.pair}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {net.koffi.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=SUBMIT_TIMEOUT_S) as response:  # noqa: S310
        return str(json.loads(response.read())["case_id"])


def import_to_listed(net: PairedNet, study: Path, slices: int, timeout_s: float) -> dict[str, Any]:
    """Seconds from the start of the import at the sender's node to the submission's
    answer (import, review, sealing) and to every frame listed at the reader's; the
    bytes the bundle took on the wire."""
    marie = Browser(net.cluster.url(1))
    marie.sign_in("marie")
    start = time.perf_counter()
    case = _submit(net, study)
    submitted = time.perf_counter() - start
    deadline = start + timeout_s
    for _ in range(int(timeout_s / POLL_S) + 1):  # bounded in count and in time
        if _frames_listed(marie, case) >= slices or time.perf_counter() > deadline:
            break
        time.sleep(POLL_S)
    listed = time.perf_counter() - start
    if _frames_listed(marie, case) < slices:
        raise RuntimeError(f"the CT was not listed at the reader within {timeout_s:.0f} s")
    transfers = get_json(f"{net.cluster.url(0)}/api/v1/transfers")
    sent = [t for t in transfers if t["direction"] == "out"]
    return {"submitted": submitted, "listed": listed, "wire": sum(t["size"] for t in sent)}


def _run(quick: bool, link: int) -> tuple[dict[str, Any], float, int]:
    slices = QUICK_SLICES if quick else SLICES
    with tempfile.TemporaryDirectory(prefix="tsf-bench-pipeline-") as tmp:
        base = Path(tmp)
        study = base / "ct"
        study.mkdir()
        paths = ct_series(study, slices)
        alone = min(jpegls_alone(paths) for _ in range(1 if quick else 3))
        (base / "net").mkdir()
        net = PairedNet(base / "net", transfer=TRANSFER)
        try:
            net.cluster.proxies[1].rate = link
            timeout = 60 + (3 * slices * 130_000 / link if link else 10 * slices)
            measured = import_to_listed(net, study, slices, timeout)
        finally:
            net.cluster.close()
    return measured, alone, slices


def _result(
    name: str, quick: bool, link: int, where: str, baseline: str, factor: float, was: str = ""
) -> Result:
    """The CT's import-to-listed time against ``baseline`` (JPEG-LS alone on one core;
    over a link, its wire bytes divided by its rate): at most ``factor`` times it."""
    measured, alone, slices = _run(quick, link)
    base = measured["wire"] / link if link else alone
    return Result(
        name=name,
        value=measured["listed"],
        unit=f"s from the import of a {slices}-slice CT at the sender's node to its series "
        f"listed at the reader's ({where})",
        baseline=baseline,
        baseline_value=base,
        higher_is_better=False,
        target=f"at most {factor}x the baseline{was}",
        extra={
            "import_review_seal_s": measured["submitted"],
            "wire_mb": measured["wire"] / 1e6,
            "met": float(measured["listed"] <= factor * base),
        },
    )


def ct_import_to_listed(*, quick: bool = False) -> Result:
    return _result(
        "pipeline_ct_listed_vs_jpegls_alone", quick, 0, "loopback",
        "JPEG-LS encoding the same slices alone, one core (read + encode)", 1.5,
        " (was about 6x)",
    )  # fmt: skip


def ct_over_slow_link(*, quick: bool = False) -> Result:
    return _result(
        "pipeline_ct_2mbit_vs_wire_time", quick, LINK, "the bundle going up a 2 Mbit/s link",
        "the bundle's bytes on the wire divided by the link's rate", 1.1,
        " (compression hidden behind the link)",
    )  # fmt: skip


BENCHMARKS = {"pipeline_ct_listed": ct_import_to_listed, "pipeline_ct_2mbit": ct_over_slow_link}
