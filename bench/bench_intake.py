"""De-identification speed against dicognito and against a plain pydicom read and write
(the floor for any tool that reads and writes DICOM); transport size against gzip."""

from __future__ import annotations

import gzip
import io
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from bench.result import Result
from tsfnode.intake.anonymize import Anonymizer, Patient
from tsfnode.intake.compress import encode_for_transport
from tsfnode.intake.importer import _to_little_endian
from tsfnode.intake.profile import load_profile

SITE = Path(pydicom.__file__).parent.parent


def _files(folder: Path, limit: int | None = None) -> list[bytes]:
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            data = path.read_bytes()
            try:
                ds = pydicom.dcmread(io.BytesIO(data))
            except Exception:  # noqa: S112 - not DICOM: not part of the workload
                continue
            if "SOPInstanceUID" in ds and "PixelData" in ds and getattr(ds, "file_meta", None):
                try:
                    ds.save_as(io.BytesIO(), enforce_file_format=True)
                except Exception:  # noqa: S112 - files pydicom cannot write back
                    continue
                out.append(data)
    return out[:limit]


def _time(files: list[bytes], work: Callable[[Dataset], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for data in files:
                ds = pydicom.dcmread(io.BytesIO(data))
                work(ds)
                ds.save_as(io.BytesIO(), enforce_file_format=True)
        best = min(best, time.perf_counter() - start)
    return best


def _workloads(name: str, files: list[bytes], quick: bool) -> list[Result]:
    from dicognito.anonymizer import Anonymizer as Dicognito

    ours = Anonymizer(
        load_profile(), secret=b"bench", patient_of=lambda ds: Patient("PBENCH", -400)
    )
    theirs = Dicognito(seed="bench")
    t_ours = t_theirs = t_floor = float("inf")
    for _ in range(1 if quick else 5):  # interleaved: the three see the same machine load
        t_ours = min(t_ours, _time(files, ours.anonymize, 1))
        t_theirs = min(t_theirs, _time(files, theirs.anonymize, 1))
        t_floor = min(t_floor, _time(files, lambda ds: None, 1))
    size = sum(map(len, files)) / 1024 / 1024
    return [
        Result(
            name=f"anonymise_{name}_vs_dicognito",
            value=len(files) / t_ours,
            unit=f"files/s ({len(files)} files, {size:.1f} MiB)",
            baseline="dicognito 0.19 on the same files, same read and write",
            baseline_value=len(files) / t_theirs,
            higher_is_better=True,
            target="faster than dicognito (pydicom-data); >= 2x (pydicom's small files)",
        ),
        Result(
            name=f"anonymise_{name}_vs_pydicom_floor",
            value=t_ours,
            unit="s for the set",
            baseline="pydicom read + write of the same files, nothing changed",
            baseline_value=t_floor,
            higher_is_better=False,
            target="<= 1.5x the floor",
        ),
    ]


def anonymise_large(*, quick: bool = False) -> list[Result]:
    return _workloads(
        "pydicom_data", _files(SITE / "data_store" / "data", 8 if quick else None), quick
    )


def anonymise_small(*, quick: bool = False) -> list[Result]:
    folder = SITE / "pydicom" / "data" / "test_files"
    return _workloads("pydicom_small", _files(folder, 10 if quick else None), quick)


def transport_size(*, quick: bool = False) -> list[Result]:
    """JPEG-LS (when it helps) against gzip -6 of the whole file, per modality."""
    ours: dict[str, int] = defaultdict(int)
    gz: dict[str, int] = defaultdict(int)
    folders = [SITE / "data_store" / "data", SITE / "pydicom" / "data" / "test_files"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for folder in folders:
            for data in _files(folder, 10 if quick else None):
                ds = pydicom.dcmread(io.BytesIO(data))
                if ds.file_meta.TransferSyntaxUID.is_compressed:
                    continue  # already compressed at the source: sent as it is
                if not ds.file_meta.TransferSyntaxUID.is_little_endian:
                    _to_little_endian(ds)  # as intake does
                modality = str(ds.get("Modality", "OT")) or "OT"
                ours[modality] += len(encode_for_transport(ds))
                gz[modality] += len(gzip.compress(data, compresslevel=6))
    results = [
        Result(
            name="transport_size_vs_gzip_all",
            value=sum(ours.values()) / 1024,
            unit="KiB (smallest of: as is, Deflated Explicit VR LE, JPEG-LS lossless)",
            baseline="gzip -6 of the same DICOM files",
            baseline_value=sum(gz.values()) / 1024,
            higher_is_better=False,
            target="ratio <= 0.67 (1.5x smaller than gzip) on image data",
            extra={f"ratio_{m}": ours[m] / gz[m] for m in sorted(ours) if gz[m]},
        )
    ]
    return results


BENCHMARKS = {
    "anonymise_large": anonymise_large,
    "anonymise_small": anonymise_small,
    "transport_size": transport_size,
}
