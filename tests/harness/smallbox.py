"""A small box for one process tree: a cgroup this harness makes with a memory limit and
one CPU, for the small-box test and benchmark (issue 24: a node with one case in flight
runs within 256 MB and one core).

cgroup v1 (memory and cpu controllers mounted apart): a child of this process's own
memory cgroup (so the box stays inside whatever holds this run) with
``memory.limit_in_bytes`` (and ``memsw``, so that swap does not hide it), and a child of
its cpu cgroup with ``cfs_quota_us = cfs_period_us``. cgroup v2 (one hierarchy): a child
with ``memory.max``, ``memory.swap.max`` and ``cpu.max``. Neither writable: `unavailable`
says why, and the callers skip with it. ``limit_bytes=None`` makes the same box with no
limit (the baseline: the same run, unconstrained, measured the same way)."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
MiB = 1024 * 1024
SMALL_BOX = 256 * MiB
QUICK_TRANSFER = {"poll_interval_ms": 500, "retry_base_ms": 200}


def _own(controller: str) -> str:
    """This process's path in the hierarchy of ``controller`` (v1) or the unified one."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(",") or (controller == "" and names == ""):
            return path.lstrip("/")
    return ""


def unavailable() -> str:
    """Why no box can be made here ("" if one can)."""
    try:
        with SmallBox(limit_bytes=64 * MiB):
            return ""
    except OSError as exc:
        return f"no writable cgroup (v1 memory and cpu, or v2) here: {exc}"


class SmallBox:
    def __init__(self, *, limit_bytes: int | None, cpus: float = 1.0) -> None:
        self.limit_bytes = limit_bytes
        self.name = f"tsf-smallbox-{secrets.token_hex(4)}"
        self.v1 = (ROOT / "memory" / "memory.limit_in_bytes").exists()
        self.dirs: list[Path] = []
        if self.v1:
            self.memory = ROOT / "memory" / _own("memory") / self.name
            cpu = ROOT / "cpu" / _own("cpu") / self.name
            self._make(self.memory)
            if limit_bytes is not None:
                (self.memory / "memory.limit_in_bytes").write_text(str(limit_bytes))
                with contextlib.suppress(OSError):  # no swap accounting: nothing to hide
                    (self.memory / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
            self._make(cpu)
            period = 100_000
            (cpu / "cpu.cfs_period_us").write_text(str(period))
            (cpu / "cpu.cfs_quota_us").write_text(str(int(period * cpus)))
        else:
            self.memory = ROOT / _own("") / self.name
            self._make(self.memory)
            if limit_bytes is not None:
                (self.memory / "memory.max").write_text(str(limit_bytes))
                with contextlib.suppress(OSError):
                    (self.memory / "memory.swap.max").write_text("0")
            (self.memory / "cpu.max").write_text(f"{int(100_000 * cpus)} 100000")

    def _make(self, path: Path) -> None:
        path.mkdir()
        self.dirs.append(path)

    def __enter__(self) -> SmallBox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """This process in the box for a moment: what it starts meanwhile is born there,
        every page it touches counted there (moving a running process would leave behind
        what it holds already). It leaves the box after."""
        pid = str(os.getpid())
        for folder in self.dirs:
            (folder / "cgroup.procs").write_text(pid)
        try:
            yield
        finally:
            for folder in self.dirs:
                (folder.parent / "cgroup.procs").write_text(pid)

    def anon_bytes(self) -> int:
        """The box's anonymous memory now (heaps, stacks: what cannot be dropped and read
        again from a file, unlike the page cache the box is also charged for)."""
        stat = (self.memory / "memory.stat").read_text().split()
        table = dict(zip(stat[::2], stat[1::2], strict=True))
        return int(table.get("rss" if self.v1 else "anon", "0"))

    @contextlib.contextmanager
    def sampling_anon(self, every_s: float = 0.1) -> Iterator[list[int]]:
        """The peak of `anon_bytes` while inside, sampled every ``every_s`` in a thread
        (the kernel keeps no peak of it): ``[peak]``."""
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                with contextlib.suppress(OSError, ValueError):
                    peak[0] = max(peak[0], self.anon_bytes())
                done.wait(every_s)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield peak
        finally:
            done.set()
            thread.join()

    def peak_bytes(self) -> int:
        name = "memory.max_usage_in_bytes" if self.v1 else "memory.peak"
        return int((self.memory / name).read_text())

    def times_at_limit(self) -> int:
        """How often the box's memory hit its limit (the kernel reclaimed, or killed)."""
        if self.v1:
            return int((self.memory / "memory.failcnt").read_text())
        events = (self.memory / "memory.events").read_text().split()
        return int(dict(zip(events[::2], events[1::2], strict=True)).get("max", "0"))

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.v1 else "memory.events"
        words = (self.memory / name).read_text().split()
        table = dict(zip(words[::2], words[1::2], strict=True))
        return int(table.get("oom_kill", "0"))

    def close(self) -> None:
        """Remove the box (its processes ended; one left over is moved out first)."""
        for folder in reversed(self.dirs):
            with contextlib.suppress(OSError):
                for pid in (folder / "cgroup.procs").read_text().split():
                    (folder.parent / "cgroup.procs").write_text(pid)
            for _ in range(100):  # bounded (10 s): an emptied group is freed shortly
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def peak_rss(pid: int) -> int:
    """A process's peak resident set (VmHWM), 0 once it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass(frozen=True)
class BoxRun:
    study_bytes: int  # the study as the sender imported it (DICOM files)
    peak_bytes: int  # the box's peak charge: the reader's node, its workers, page cache
    peak_anon_bytes: int  # the box's peak anonymous memory (sampled): what must fit
    peak_rss_bytes: int  # the node process's peak resident set (VmHWM; shared pages too)
    times_at_limit: int
    oom_kills: int
    alive: bool  # the reader's node still runs at the end
    arrived: bool  # the case reached the reader's node, its images listed
    frames_rendered: int  # frames the viewer served as JPEG
    seconds: float


def receive_and_view(
    base: Path, *, slices: int, frames: int, limit_bytes: int | None, timeout_s: float
) -> BoxRun:
    """Two real nodes (tests.harness.people.PairedNet): the reader's node, Erasme, in a
    box with ``limit_bytes`` and one CPU, receives a CT of ``slices`` real slices from
    Cotonou, then its viewer renders ``frames`` of them at full size, one request each,
    as the page asks for them. What the box saw."""
    from tests.harness.people import Browser, PairedNet
    from tests.harness.studies import ct_series
    from tests.harness.waiting import wait_for

    study = base / "ct"
    study.mkdir()
    study_bytes = sum(p.stat().st_size for p in ct_series(study, slices))
    (base / "net").mkdir()
    rendered, arrived = 0, False
    start = time.perf_counter()
    with SmallBox(limit_bytes=limit_bytes) as box:
        net = PairedNet(base / "net", transfer=QUICK_TRANSFER)
        with contextlib.closing(net):  # the nodes stop before the box goes
            net.cluster.stop_node(1)  # started again in the box
            with box.entered():
                net.cluster.start_node(1)
            reader = net.cluster.nodes[1]
            assert reader is not None
            with box.sampling_anon() as anon:
                case = net.submit(study, {"routing": "pair", "target": net.pair}, timeout=timeout_s)
                with contextlib.suppress(AssertionError):
                    wait_for(
                        "the CT at the reader's node",
                        lambda: (
                            reader.process.poll() is not None or net.marie.state(case) == "assigned"
                        ),
                        timeout=timeout_s,
                    )
                arrived = reader.process.poll() is None and net.marie.state(case) == "assigned"
                if arrived:
                    marie = Browser(net.cluster.url(1))
                    marie.sign_in("marie")
                    for f in range(frames):  # bounded: one request per frame
                        if reader.process.poll() is not None:
                            break
                        url = f"{marie.base}/web/cases/{case}/frames/0/{f}.jpg?size=4096&q=88"
                        with contextlib.suppress(OSError):
                            with marie.opener.open(url, timeout=120) as answer:
                                rendered += answer.read(2) == b"\xff\xd8"
            return BoxRun(
                study_bytes=study_bytes,
                peak_bytes=box.peak_bytes(),
                peak_anon_bytes=anon[0],
                peak_rss_bytes=peak_rss(reader.process.pid),
                times_at_limit=box.times_at_limit(),
                oom_kills=box.oom_kills(),
                alive=reader.process.poll() is None,
                arrived=arrived,
                frames_rendered=rendered,
                seconds=time.perf_counter() - start,
            )
