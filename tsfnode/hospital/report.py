"""What a report back into the hospital says (``ReportOut``), and its verification code.

The verification code names one signed report: the first 80 bits of
BLAKE3("tsf/report-code" 0x00 || signer's public key || the document's digest), written
as 16 base32 characters in four groups (``ABCD-EFGH-IJKL-MNOP``) to be read over the
phone. The digest covers the signed bytes, so a changed report has another code; the
sender's node finds the report by its code (``tsfnode verify CODE --node DIR``) and
checks its signature again.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

import blake3

CODE_TAG = b"tsf/report-code\x00"
CODE_PATTERN = re.compile(r"^[A-Z2-7]{4}(-[A-Z2-7]{4}){3}$")


def verification_code(signer: bytes, digest: bytes) -> str:
    """The code of the report signed by ``signer`` (public key) whose digest is ``digest``."""
    raw = blake3.blake3(CODE_TAG + signer + digest).digest()[:10]
    text = base64.b32encode(raw).decode()
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


def normalise_code(text: str) -> str | None:
    """A code as typed (any case, spaces or dashes anywhere) in its written form; None
    if it is not one (a base32 letter can be read wrongly: 0/O and 1/I are mapped)."""
    letters = re.sub(r"[\s-]", "", text.upper()).replace("0", "O").replace("1", "I")
    if len(letters) != 16 or not re.fullmatch(r"[A-Z2-7]{16}", letters):
        return None
    return "-".join(letters[i : i + 4] for i in range(0, 16, 4))


@dataclass(frozen=True)
class OriginalStudy:
    """The study as the hospital knows it: from the pseudonym map, on the sender's node
    only. ``instances``: (series UID, SOP class UID, SOP instance UID), all original."""

    patient_name: str
    patient_id: str
    issuer: str
    birth_date: str
    sex: str
    study_uid: str
    study_date: str
    study_time: str
    accession: str
    study_id: str
    instances: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class ReportOut:
    """One signed report, with what the hospital needs around it. ``language``: the
    sender's; ``verified``: the signature checks and its signer is an attested reader."""

    language: str
    hospital: str
    original: OriginalStudy
    case_id: bytes
    question: str
    modality: str
    findings: str
    impression: str
    recommendations: str
    reader_name: str
    reader_qualification: str
    reader_registration: str
    signer: bytes
    digest: bytes
    signed_ms: int
    verified: bool
    addenda: int = 0  # reports that came after the first (this is the latest)
    # The sender's own reference for the patient (a file number, a name), typed on the
    # new-case form: printed on the paper report at the sender's node, never sent.
    local_reference: str = ""
    # The kinds (catalogue keys) of the reader's images that came with the reports
    # (key images, presentation states, SR): the paper report says they exist.
    reader_images: tuple[str, ...] = ()

    @property
    def code(self) -> str:
        return verification_code(self.signer, self.digest)
