"""What the sender reads on the new case page when an uploaded file is not taken by
rule: an encapsulated PDF (its text may name the patient) or an image the intake holds
already. The node in process, the files uploaded as the page sends them."""

from __future__ import annotations

import re
from pathlib import Path

from tests.harness.data import PYDICOM_FILES
from tests.harness.inprocess import LocalNode, WebBrowser
from tests.tsfnode.intake.conftest import encapsulated_pdf

CT = PYDICOM_FILES / "CT_small.dcm"


async def upload(browser: WebBrowser, paths: list[Path], lang: str) -> dict[str, object]:
    """The files sent in one batch, as static/new_case.js does, then imported."""
    csrf = re.findall(r'name="csrf" value="([^"]+)"', browser.page)[-1]
    headers = {"X-CSRF-Token": csrf}
    batch = None
    for path in paths:
        data = path.read_bytes()
        made = await browser.client.post(
            "/web/uploads",
            json={"name": path.name, "size": len(data), "batch": batch},
            headers=headers,
        )
        assert made.status == 201, await made.text()
        created = await made.json()
        batch = created["batch"]
        sent = await browser.client.patch(
            f"/web/uploads/{created['id']}",
            data=data,
            headers={**headers, "Upload-Offset": "0",
                     "Content-Type": "application/offset+octet-stream"},
        )  # fmt: skip
        assert sent.status == 200, await sent.text()
    found = await browser.client.post(f"/web/batches/{batch}/import?lang={lang}", headers=headers)
    assert found.status == 200, await found.text()
    answer: dict[str, object] = await found.json()
    return answer


async def test_the_sender_reads_why_a_pdf_or_a_repeated_image_was_not_taken(
    local_node: LocalNode, tmp_path: Path
) -> None:
    document = await encapsulated_pdf(
        tmp_path, "compte-rendu", "Compte rendu de DUPONT Jean", "+pn", "DUPONT^Jean"
    )
    await local_node.account("koffi", "sender")
    koffi = await local_node.browser("koffi")
    await koffi.get("/web/new")
    first = await upload(koffi, [CT, document], "fr")
    assert len(first["studies"]) == 1  # type: ignore[arg-type]
    (refused,) = first["rejected"]  # type: ignore[misc]
    assert refused["name"] == "compte-rendu.dcm"
    assert "document encapsulé" in refused["reason"]
    assert "peut identifier le patient" in refused["reason"]
    again = await upload(koffi, [CT], "en")
    (repeated,) = again["rejected"]  # type: ignore[misc]
    assert repeated["name"] == "CT_small.dcm"
    assert "already in the study" in repeated["reason"]
    assert "kept" in repeated["reason"]
    # the CT once; no document stored, not even emptied
    assert len(list((local_node.root / "intake").rglob("*.dcm"))) == 1
