"""The network's teaching library: cases worth teaching, shared for continuing education.

With the sender's consent (``teaching_consent`` in the sender's signed evaluation), the
reader who read a case publishes it: the images are copied once more de-identified (the
pseudonym replaced by the teaching id) into ``DIR/teaching/ID.zip``, kept after the case's
images are purged, and served to anyone in the network at ``/peer/v1/teaching/ID`` as a
zip; a ``teaching_case`` record signed by the reader (the report's text, what the form
says without free text, the digests of the report and of the consenting evaluation)
goes into the directory, so every node lists the library.
"""

from __future__ import annotations

import asyncio
import io
import os
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocol.cases import State
from protocol.directory import make_record
from protocol.identity import Identity, PublicIdentity
from tsfnode.errors import CaseError
from tsfnode.i18n import N_, Key

if TYPE_CHECKING:
    from tsfnode.cases.service import CaseService

TEACHING_TTL_MS = 365 * 86_400_000


def _anonymised_again(source: Path, label: str) -> bytes:
    """The de-identified file once more, its pseudonym replaced by the teaching label."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings may quote values
        ds = pydicom.dcmread(source)
        ds.PatientName = f"TEACHING^{label}"
        ds.PatientID = label
        for keyword in ("OtherPatientIDsSequence", "IssuerOfPatientID", "PatientComments"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.PatientIdentityRemoved = "YES"
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()


def _write_zip(folders: list[Path], target: Path, label: str) -> int:
    """The case's images, anonymised again, into the zip that is served (written aside,
    then renamed); how many."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    count = 0
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for folder in folders:
            for source in sorted((folder / "files").rglob("*.dcm")):
                archive.writestr(f"{count:05d}.dcm", _anonymised_again(source, label))
                count += 1
    os.replace(tmp, target)
    return count


async def publish(
    service: CaseService, case_id: bytes, person: Identity, title: str, now: int
) -> dict[str, Any]:
    if not 1 <= len(title.strip()) <= 200:
        raise CaseError(400, "title: 1 to 200 characters", key=N_("refused_teaching_title"))
    row = await service.seen(case_id, person.public.key, now)
    case = row.case
    if row.role != "copy" or case.reader != person.public.key:
        raise CaseError(
            403,
            "only the reader of the case publishes it, from the reader's node",
            key=N_("refused_teaching_reader"),
        )
    if case.state not in (State.EVALUATED, State.CLOSED):
        state = case.state.value
        raise CaseError(
            409,
            f"the case is {state}: not evaluated, or its images are gone",
            key=N_("refused_teaching_state"),
            values={"state": Key(f"state_{state}")},
        )
    consents = [
        d
        for d in await service.documents(case_id, "evaluation")
        if d.signer.key == case.sender and d.body["teaching_consent"]
    ]
    if not consents:
        raise CaseError(
            409,
            "the sender did not consent to teaching with this case",
            key=N_("refused_teaching_consent"),
        )
    reports = [d for d in await service.documents(case_id, "report") if d.signer == person.public]
    if not reports:
        raise CaseError(
            409, "the case has no report of yours", key=N_("refused_teaching_no_report")
        )
    report = reports[-1]
    form = row.form
    teaching_id = os.urandom(16)
    folders = [service.transfers.received_folder(b) for b in await service.bundles(case_id)]
    target = service.node_dir.root / "teaching" / f"{teaching_id.hex()}.zip"
    files = await asyncio.to_thread(_write_zip, folders, target, teaching_id.hex()[:16])
    record = make_record(
        "teaching_case",
        {
            "teaching_id": teaching_id,
            "title": title.strip(),
            "modality": str(form.get("modality", ""))[:16],
            "body_part": str(form.get("body_part", ""))[:64],
            "age_years": int(form.get("age_years", 0)),
            "sex": str(form.get("sex", ""))[:1],
            "findings": report.body["findings"],
            "impression": report.body["impression"],
            "recommendations": report.body["recommendations"],
            "report": report.digest,
            "consent": consents[-1].digest,
            "node": service.me,
            "files": files,
        },
        signer=person,
        network=service.directory.network.name,
        version=now,
        now=now,
        ttl=TEACHING_TTL_MS,
    )
    outcome = await service.directory.add([record], now)
    if not outcome["added"]:
        await asyncio.to_thread(target.unlink, True)
        raise CaseError(
            409,
            f"the directory did not take the record ({', '.join(outcome)})",
            key=N_("refused_directory"),
            values={"detail": ", ".join(outcome)},
        )
    await service.audit.append(
        actor=person.public.key, case_id=case_id, action="teach", detail=teaching_id.hex(), now=now
    )
    return {"teaching_id": teaching_id.hex(), "files": files}


def library(service: CaseService, now: int) -> list[dict[str, Any]]:
    view = service.directory.view(now)
    out = []
    for teaching_id, record in view.teaching.items():
        body = record.body
        reader = view.members.get(record.signer.key)
        node = view.nodes.get(body["node"])
        address = node.body["addresses"][0].rstrip("/") if node and node.body["addresses"] else ""
        out.append(
            {
                "teaching_id": teaching_id.hex(),
                "title": body["title"],
                "modality": body["modality"],
                "body_part": body["body_part"],
                "age_years": body["age_years"],
                "sex": body["sex"],
                "findings": body["findings"],
                "impression": body["impression"],
                "recommendations": body["recommendations"],
                "reader": reader.body["display_name"] if reader else "",
                "reader_id": PublicIdentity(record.signer.key).text,
                "files": body["files"],
                "published_ms": body["created"],
                "images_url": f"{address}/peer/v1/teaching/{teaching_id.hex()}" if address else "",
            }
        )
    return sorted(out, key=lambda e: -int(e["published_ms"]))
