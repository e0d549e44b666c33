"""Who may use a study of the intake: the one rule that the web application's pages
(web/new_case.py) and the local JSON API (api/studies.py, api/cases.py) ask before they
list a study, show it, review it or open a case on it.

- A study taken in from an **upload** (the web uploader's batches, the light client's
  ``/api/v1/uploads``) is its uploader's: their account alone may use it. On the
  sender's node the intake can re-link a study to the real patient, so another sender of
  the same node must not even learn that it exists.
- A study taken in by the **node's own inputs** (the DICOM listener, the operator's
  ``tsfnode import``) is the node's: every sender account of the node may use it.
- A study with no owner recorded (its folder made by an older version of the node) is
  nobody's: import it again.

The owner is written once, when the study's folder is made (``intake/STUDY/owner.json``:
the account's id, or null for the node) and never changes: files that a later upload adds
to an existing study do not make their uploader an owner. A study that is not there and
a study that is not the caller's are one answer (``NoSuchStudy``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tsfnode.errors import NodeError
from tsfnode.intake.uids import is_uid

OWNER_FILE = "owner.json"


class NoSuchStudy(NodeError):
    """The study is not in the intake, or it is not the caller's to use."""


@dataclass(frozen=True)
class Owner:
    account: int | None  # None: the node's own inputs (listener, operator's import)

    def lets(self, account: int) -> bool:
        return self.account is None or self.account == account


class StudyOwners:
    """The owners of the studies in an intake folder."""

    def __init__(self, intake: Path) -> None:
        self.intake = intake

    def make(self, study_uid: str, account: int | None) -> bool:
        """Make the study's folder, owned by ``account`` (None: the node). False if the
        folder exists already: its owner stays whoever made it."""
        folder = self.intake / study_uid
        self.intake.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir()
        except FileExistsError:
            return False
        tmp = folder / f".{OWNER_FILE}.tmp"
        tmp.write_text(json.dumps({"account": account}), "utf-8")
        os.replace(tmp, folder / OWNER_FILE)
        return True

    def owner(self, study_uid: str) -> Owner | None:
        """Who owns the study; None if it is not there or has no owner recorded."""
        if not is_uid(study_uid):
            return None
        try:
            data = json.loads((self.intake / study_uid / OWNER_FILE).read_text("utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or "account" not in data:
            return None
        account = data["account"]
        if account is None or (isinstance(account, int) and not isinstance(account, bool)):
            return Owner(account)
        return None

    def may_use(self, study_uid: str, account: int) -> bool:
        owner = self.owner(study_uid)
        return owner is not None and owner.lets(account)

    def require(self, study_uid: str, account: int) -> str:
        """``study_uid`` if ``account`` may use it; NoSuchStudy otherwise."""
        if not self.may_use(study_uid, account):
            raise NoSuchStudy(f"no study {study_uid[:64]} of yours in this node's intake")
        return study_uid

    def studies_of(self, studies: list[str], account: int) -> list[str]:
        """The studies of ``studies`` that ``account`` may use, in their order."""
        return [uid for uid in studies if self.may_use(uid, account)]
