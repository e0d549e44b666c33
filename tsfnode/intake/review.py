"""The review of images that may show the patient's identity in their pixels.

Intake flags every image with a reason to fear burned-in identity (ultrasound,
secondary capture, photos of films, Burned In Annotation = YES; see burnedin.py). Such
an image blocks its study from being sent until the sender has looked at it and either
confirmed that nothing identifying shows, or masked the regions that do (rectangles
blacked out on the node, in the stored file itself).

The book is one small JSON file per study, ``intake/STUDY/review.json``, next to the
images it speaks of; writers (the DICOM listener, uploads, the CLI) take an exclusive
lock on the study while they change it. It holds UIDs, reasons and decisions: no
identifying value.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tsfnode.errors import NodeError
from tsfnode.intake.uids import is_uid

PENDING, CONFIRMED, MASKED = "pending", "confirmed", "masked"


class NotReviewed(NodeError):
    """A study still has flagged images nobody has checked: it may not be sent."""


@dataclass(frozen=True)
class Flag:
    sop_uid: str
    series_uid: str
    reasons: tuple[str, ...]
    state: str = PENDING
    decided_ms: int = 0
    masks: tuple[tuple[int, int, int, int], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "sop_uid": self.sop_uid,
            "series_uid": self.series_uid,
            "reasons": list(self.reasons),
            "state": self.state,
            "decided_ms": self.decided_ms,
            "masks": [list(m) for m in self.masks],
        }


@dataclass(frozen=True)
class StudySummary:
    study_uid: str
    series: int
    instances: int
    pending: int
    confirmed: int
    masked: int

    @property
    def sendable(self) -> bool:
        return self.pending == 0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "sendable": self.sendable}


class ReviewBook:
    """The review state of every study in an intake folder."""

    def __init__(self, intake: Path) -> None:
        self.intake = intake

    # --- reading -----------------------------------------------------------------------

    def study_folder(self, study_uid: str) -> Path:
        if not is_uid(study_uid):
            raise NodeError(f"{study_uid!r} is not a Study Instance UID")
        folder = self.intake / study_uid
        if not folder.is_dir():
            raise NodeError(f"no study {study_uid} in this node's intake")
        return folder

    def find(self, prefix: str) -> str:
        """The one study whose UID starts with ``prefix`` (as people type them)."""
        found = [uid for uid in self.studies() if uid.startswith(prefix)]
        if len(found) != 1:
            what = "no study" if not found else f"{len(found)} studies"
            raise NodeError(f"{what} in the intake start(s) with {prefix!r}")
        return found[0]

    def studies(self) -> list[str]:
        if not self.intake.is_dir():
            return []
        return sorted(p.name for p in self.intake.iterdir() if p.is_dir() and is_uid(p.name))

    def flags(self, study_uid: str) -> list[Flag]:
        data = self._load(self.study_folder(study_uid))
        return [_flag(sop, entry) for sop, entry in sorted(data.items())]

    def summary(self, study_uid: str) -> StudySummary:
        folder = self.study_folder(study_uid)
        series = [p for p in folder.iterdir() if p.is_dir()]
        instances = sum(1 for s in series for f in s.iterdir() if f.suffix == ".dcm")
        states = [entry["state"] for entry in self._load(folder).values()]
        return StudySummary(
            study_uid,
            len(series),
            instances,
            states.count(PENDING),
            states.count(CONFIRMED),
            states.count(MASKED),
        )

    def require_reviewed(self, study_uid: str) -> None:
        """Raise NotReviewed unless every flagged image has been confirmed or masked."""
        pending = self.summary(study_uid).pending
        if pending:
            raise NotReviewed(
                f"study {study_uid}: {pending} image(s) may show the patient's identity and "
                "have not been checked; confirm or mask them before sending "
                f"(tsfnode review {study_uid[:16]} ...)"
            )

    # --- writing -----------------------------------------------------------------------

    def flag(self, study_uid: str, series_uid: str, sop_uid: str, reasons: list[str]) -> None:
        """Record that an image needs a look (a new import of it resets its decision)."""
        folder = self.intake / study_uid
        with self._changing(folder) as data:
            data[sop_uid] = {"series_uid": series_uid, "reasons": reasons, "state": PENDING}

    def confirm(self, study_uid: str, sop_uids: list[str] | None, *, now_ms: int) -> int:
        """Mark ``sop_uids`` (None: every pending image) as checked; returns how many."""
        with self._changing(self.study_folder(study_uid)) as data:
            targets = _targets(data, sop_uids, study_uid)
            for sop in targets:
                if data[sop]["state"] == PENDING:
                    data[sop].update(state=CONFIRMED, decided_ms=now_ms)
            return len(targets)

    def mask(
        self,
        study_uid: str,
        sop_uid: str,
        rectangles: list[tuple[int, int, int, int]],
        *,
        now_ms: int,
    ) -> None:
        """Black out ``rectangles`` (x, y, width, height) in the stored image itself."""
        from pydicom import dcmread

        from tsfnode.intake.burnedin import mask_regions

        if not rectangles:
            raise NodeError("give at least one rectangle to mask (x,y,width,height)")
        folder = self.study_folder(study_uid)
        with self._changing(folder) as data:
            if sop_uid not in data:
                raise NodeError(f"image {sop_uid} is not among the flagged images of the study")
            entry = data[sop_uid]
            path = folder / entry["series_uid"] / f"{sop_uid}.dcm"
            ds = dcmread(path)
            try:
                mask_regions(ds, rectangles)
            except ValueError as exc:
                raise NodeError(f"image {sop_uid}: {exc}") from None
            tmp = path.with_suffix(".tmp")
            ds.save_as(tmp, enforce_file_format=True)
            os.replace(tmp, path)
            masks = [*entry.get("masks", []), *[list(r) for r in rectangles]]
            entry.update(state=MASKED, decided_ms=now_ms, masks=masks)

    # --- the file ----------------------------------------------------------------------

    @staticmethod
    def _load(folder: Path) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((folder / "review.json").read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (ValueError, UnicodeDecodeError):
            raise NodeError(
                f"{folder / 'review.json'} is damaged: the study cannot be sent until it is "
                "imported again"
            ) from None
        return data

    @contextmanager
    def _changing(self, folder: Path) -> Iterator[dict[str, Any]]:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".review.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._load(folder)
            yield data
            tmp = folder / "review.json.tmp"
            tmp.write_text(json.dumps(data, sort_keys=True), "utf-8")
            os.replace(tmp, folder / "review.json")


def _flag(sop: str, entry: dict[str, Any]) -> Flag:
    return Flag(
        sop_uid=sop,
        series_uid=entry["series_uid"],
        reasons=tuple(entry["reasons"]),
        state=entry["state"],
        decided_ms=entry.get("decided_ms", 0),
        masks=tuple((m[0], m[1], m[2], m[3]) for m in entry.get("masks", [])),
    )


def _targets(data: dict[str, Any], sop_uids: list[str] | None, study_uid: str) -> list[str]:
    if sop_uids is None:
        return [sop for sop, entry in data.items() if entry["state"] == PENDING]
    unknown = [sop for sop in sop_uids if sop not in data]
    if unknown:
        raise NodeError(f"image {unknown[0]} is not among the flagged images of study {study_uid}")
    return list(sop_uids)
