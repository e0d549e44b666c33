"""The viewer: rendering a 512x512 CT frame on the node, against plain pydicom
``pixel_array`` + a Pillow JPEG of the same frame; time to the first image at the reader
over a 2 Mbit/s link, against fetching the first stored slice over the same link; bytes
sent to show a whole CT at full resolution, against the stored DICOM.

The CT is pydicom-data's real 512x512 slice (693_UNCI), repeated along the slice normal
with each copy shifted by a row, to make a 500-slice study (quick: 20). It goes the
whole way: imported and sent by the sender's node, received and opened by the reader's,
viewed there through the test suite's userspace proxy limiting what comes down.
"""

from __future__ import annotations

import io
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
from aiohttp import web
from PIL import Image

from bench.result import Result
from tests.harness.people import Browser, PairedNet
from tests.harness.proxy import LoopThread, Proxy
from tests.harness.studies import CT, ct_series
from tests.harness.waiting import wait_for
from tsfnode.images.render import PRESETS, Renderer, Window

LINK = 250_000  # bytes per second: 2 Mbit/s


def _read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def render_frame(*, quick: bool = False) -> Result:
    """A window change on a frame already decoded (what scrolling and windowing cost),
    against what a plain server would do for the same frame."""
    repeats = 5 if quick else 30
    renderer = Renderer()
    windows = [Window(*w) for w in PRESETS.values()]
    start = time.perf_counter()
    renderer.render(CT, 0, window=windows[0])
    cold = time.perf_counter() - start
    ours = base = float("inf")
    for i in range(repeats):
        start = time.perf_counter()
        renderer.render(CT, 0, window=windows[i % len(windows)], quality=88)
        ours = min(ours, time.perf_counter() - start)
        start = time.perf_counter()
        ds = _read(CT)
        arr = ds.pixel_array.astype(np.float32)
        pixels = ((arr - arr.min()) * (255.0 / max(float(np.ptp(arr)), 1.0))).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels, mode="L").save(out, format="JPEG", quality=88)
        base = min(base, time.perf_counter() - start)
    return Result(
        name="viewer_render_frame_vs_pydicom_pillow",
        value=ours * 1000,
        unit="ms to window and encode a 512x512 CT frame (decoded frame cached)",
        baseline="dcmread + pixel_array + Pillow JPEG of the same frame",
        baseline_value=base * 1000,
        higher_is_better=False,
        target="under 20 ms",
        extra={"first_render_ms": cold * 1000},
    )


def _first_image(browser: Browser, case: str) -> float:
    """Seconds from opening the viewer to the first image: the page, its script, the
    series, the first frame (small), as the page asks for them."""
    start = time.perf_counter()
    browser.get(f"/web/cases/{case}/viewer")
    browser.get("/web/static/viewer.js")
    status, _, _ = browser.get(f"/web/cases/{case}/series")
    first = browser.opener.open(
        f"{browser.base}/web/cases/{case}/frames/0/0.jpg?size=256&q=60", timeout=60
    ).read()
    took = time.perf_counter() - start
    if status != 200 or first[:2] != b"\xff\xd8":
        raise RuntimeError(f"the viewer did not answer ({status})")
    return took


def _static_server(folder: Path, loop: LoopThread) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_static("/files", folder)
    runner = web.AppRunner(app, access_log=None)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    return runner, loop.run(start())


def viewer_over_link(*, quick: bool = False) -> list[Result]:
    slices = 20 if quick else 500  # quick: checks that it runs; its figures are not read
    with tempfile.TemporaryDirectory(prefix="tsf-bench-viewer-") as tmp:
        base = Path(tmp)
        study = base / "ct"
        study.mkdir()
        ct_series(study, slices)
        (base / "net").mkdir()
        net = PairedNet(base / "net", transfer={"poll_interval_ms": 500, "retry_base_ms": 200})
        loop = LoopThread()
        try:
            case = net.submit(study, {"routing": "pair", "target": net.pair})
            wait_for(
                "the CT at the reader's node",
                lambda: net.marie.state(case) == "assigned",
                timeout=900,
            )
            received = sorted((net.cluster.dirs[1] / "received").rglob("*.dcm"))
            reader_proxy = net.cluster.proxies[1]
            reader_proxy.down_rate = LINK
            marie = Browser(reader_proxy.url)
            marie.sign_in("marie")
            first_image = _first_image(marie, case)  # straight to the viewer: nothing listed
            marie.get("/web/cases")  # the reader's way: the worklist lists its cases' series
            time.sleep(1)  # the reader reads the worklist
            shown_worklist = _first_image(marie, case)
            # The baseline: the first stored slice, as a DICOM file, over the same link.
            runner, port = _static_server(received[0].parent, loop)
            link = Proxy("127.0.0.1", ("127.0.0.1", port))
            loop.run(link.start())
            link.down_rate = LINK
            start = time.perf_counter()
            Browser(link.url).opener.open(f"{link.url}/files/{received[0].name}", timeout=60).read()
            first_slice = time.perf_counter() - start
            loop.run(link.stop())
            loop.run(runner.cleanup())
            # Every frame at full resolution, straight from the node (bytes only).
            reader_proxy.down_rate = 0
            direct = Browser(net.cluster.url(1))
            direct.sign_in("marie")
            sent = 0
            for f in range(slices):
                sent += len(
                    direct.opener.open(
                        f"{direct.base}/web/cases/{case}/frames/0/{f}.jpg?size=4096&q=88",
                        timeout=60,
                    ).read()
                )
            stored_bytes = sum(p.stat().st_size for p in received)
        finally:
            loop.close()
            net.cluster.close()
    return [
        Result(
            name="viewer_first_image_vs_first_stored_slice",
            value=first_image,
            unit=f"s to the first image of a {slices}-slice CT at 2 Mbit/s (page, script, "
            "series, first frame)",
            baseline="the first stored DICOM slice over the same link",
            baseline_value=first_slice,
            higher_is_better=False,
            target="under 2 s",
            extra={"after_the_worklist_s": shown_worklist},
        ),
        Result(
            name="viewer_bytes_whole_ct_vs_stored_dicom",
            value=sent / 1e6,
            unit=f"MB sent to show all {slices} slices at full resolution",
            baseline="the study as stored at the reader's node (DICOM, MB)",
            baseline_value=stored_bytes / 1e6,
            higher_is_better=False,
        ),
    ]


BENCHMARKS = {"viewer_render_frame": render_frame, "viewer_first_image": viewer_over_link}
