"""The pseudonym map: who each pseudonym is, kept on the sender's side only, encrypted at
rest (XSalsa20-Poly1305, PyNaCl SecretBox) with a key file of mode 0600.

It holds, per patient: the pseudonym, the date shift, and the original identifiers (to
re-link a report to its patient here); per study: the original Study Instance UID of
each de-identified one; and the secret that keys UID replacement.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.secret

from bootstrap.keys import KeyFileError
from tsfnode.errors import NodeError
from tsfnode.intake.anonymize import Patient

MIN_SHIFT_DAYS, MAX_SHIFT_DAYS = 365, 10 * 365


def _read_secret_key(path: Path) -> bytes:
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, base64.b64encode(secrets.token_bytes(32)) + b"\n")
        finally:
            os.close(fd)
    mode = path.stat().st_mode & 0o077
    if mode:
        raise NodeError(f"{path} is accessible to other users: run 'chmod 600 {path}'")
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except ValueError:
        raise NodeError(f"{path} is not a pseudonym key: restore it from its backup") from None
    if len(key) != 32:
        raise NodeError(f"{path} is not a pseudonym key: restore it from its backup")
    return key


class PseudonymMap:
    """Load with ``PseudonymMap(directory)``; call ``save()`` after changes."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / "pseudonyms.bin"
        try:
            self._box = nacl.secret.SecretBox(_read_secret_key(directory / "pseudonyms.key"))
        except KeyFileError as exc:  # pragma: no cover - same errors as key files
            raise NodeError(str(exc)) from None
        self._data: dict[str, Any] = {
            "secret": secrets.token_hex(32),
            "patients": {},
            "studies": {},
        }
        if self.path.exists():
            try:
                plain = self._box.decrypt(self.path.read_bytes())
            except nacl.exceptions.CryptoError:
                raise NodeError(
                    f"{self.path} does not open with pseudonyms.key: restore both from backup"
                ) from None
            self._data = json.loads(plain)

    @property
    def secret(self) -> bytes:
        return bytes.fromhex(self._data["secret"])

    @staticmethod
    def _identity(ds: Any) -> tuple[str, dict[str, str]]:
        original = {
            "id": str(ds.get("PatientID", "") or ""),
            "issuer": str(ds.get("IssuerOfPatientID", "") or ""),
            "name": str(ds.get("PatientName", "") or ""),
            "birth_date": str(ds.get("PatientBirthDate", "") or ""),
        }
        if not any(original.values()):
            # No identity at all: keep the study together under one pseudonym.
            original["study"] = str(ds.get("StudyInstanceUID", "") or "")
        key = hashlib.sha256(json.dumps(original, sort_keys=True).encode()).hexdigest()
        return key, original

    def patient_of(self, ds: Any) -> Patient:
        key, original = self._identity(ds)
        entry = self._data["patients"].get(key)
        if entry is None:
            pseudonym = "P" + base64.b32encode(secrets.token_bytes(5)).decode()
            shift = -(MIN_SHIFT_DAYS + secrets.randbelow(MAX_SHIFT_DAYS - MIN_SHIFT_DAYS))
            entry = {"pseudonym": pseudonym, "shift_days": shift, "original": original}
            self._data["patients"][key] = entry
        return Patient(entry["pseudonym"], entry["shift_days"])

    def new_patient(self, label: str) -> Patient:
        """A patient known only by what the sender says (photos of films)."""
        fake = {"PatientID": f"photos:{label}:{secrets.token_hex(8)}"}
        return self.patient_of(fake)

    def record_study(
        self,
        study_uid: str,
        original_uid: str,
        patient: Patient,
        original: dict[str, str] | None = None,
    ) -> None:
        """A de-identified study and its original UID; ``original``: one of its
        instances as the hospital knows it (``anonymize.Result.original``: its series,
        SOP instance and class, the study's date, time, accession number and ID, the
        patient's sex), kept so that a report can go back into the hospital's PACS
        referencing them (``study_originals``)."""
        study = self._data["studies"].get(study_uid)
        if study is None or study.get("original") != original_uid:
            study = {"original": original_uid, "patient": patient.pseudonym}
            self._data["studies"][study_uid] = study
        if original and original.get("sop"):
            instances = study.setdefault("instances", {})
            instances[original["sop"]] = [original.get("series", ""), original.get("sop_class", "")]
            details = study.setdefault("details", {})
            for key in ("study_date", "study_time", "accession", "study_id", "sex"):
                if original.get(key) and not details.get(key):
                    details[key] = original[key]

    def original_of(self, pseudonym: str) -> dict[str, str] | None:
        """The original identifiers of a pseudonym (to re-link a report)."""
        for entry in self._data["patients"].values():
            if entry["pseudonym"] == pseudonym:
                return dict(entry["original"])
        return None

    def patient_of_study(self, study_uid: str) -> dict[str, str] | None:
        """The original identifiers of a de-identified study's patient, and the study's
        original UID (to show a report with its patient, on the sender's node only)."""
        study = self._data["studies"].get(study_uid)
        if study is None:
            return None
        original = self.original_of(study["patient"]) or {}
        return {**original, "pseudonym": study["patient"], "study_uid": study["original"]}

    def study_originals(self, study_uid: str) -> dict[str, Any] | None:
        """Everything the hospital knows of a de-identified study, on the sender's node
        only: the patient's original identifiers, the original Study Instance UID,
        ``details`` (date, time, accession number, study ID, sex) and ``instances``
        (original SOP Instance UID -> [original Series Instance UID, SOP Class UID])."""
        study = self._data["studies"].get(study_uid)
        if study is None:
            return None
        return {
            "patient": self.original_of(study["patient"]) or {},
            "pseudonym": study["patient"],
            "study_uid": study["original"],
            "details": dict(study.get("details", {})),
            "instances": {k: list(v) for k, v in study.get("instances", {}).items()},
        }

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        data = self._box.encrypt(json.dumps(self._data).encode())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
