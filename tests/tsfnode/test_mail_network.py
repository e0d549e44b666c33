"""E-mail notices across two real nodes on loopback (tests/harness PairedNet: CHU
Cotonou with Dr Koffi, a sender; Erasme with Dr Marie, his pair's reader), each node
sending through a real SMTP server (aiosmtpd) on 127.0.0.1. What only two nodes show:
the case reaching Marie's node tells her, her message and her report coming back to
Koffi's node tell him. No e-mail carries the patient, the clinical text or the report.
"""

from __future__ import annotations

import contextlib
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.harness.data import PYDICOM_FILES, read_dicom
from tests.harness.people import FORM, REPORT, Browser, PairedNet
from tests.harness.smtp import SmtpSink
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.slow

QUICK = {
    "transfer": {"poll_interval_ms": 500, "retry_base_ms": 200},
    "cases": {"scan_interval_ms": 300},
}
MESSAGE = "Pouvez-vous préciser la date de début de la fièvre ?"


def to(sink: SmtpSink, address: str, subject: str) -> list[EmailMessage]:
    return [m for m in sink.received() if m["To"] == address and subject in m["Subject"]]


def test_a_case_a_message_and_a_report_are_told_by_email_on_each_side(
    tmp_path: Path, sink: SmtpSink
) -> None:
    smtp = {
        "host": "127.0.0.1", "port": sink.port, "security": "none", "timeout_s": 5,
        "from_address": "tsf@example.org", "link_url": "https://tsf.example.org",
    }  # fmt: skip
    with contextlib.closing(PairedNet(tmp_path, smtp=smtp, **QUICK)) as net:
        for who, node in (("koffi", 0), ("marie", 1)):
            browser = Browser(net.cluster.url(node))
            browser.sign_in(who)
            browser.get("/web/account")
            fields = {"email": f"{who}@example.org", "mode": "immediately"}
            status, _, page = browser.post("/web/account", fields)
            assert status == 200, page
        folder = tmp_path / "ct"
        folder.mkdir()
        shutil.copy(PYDICOM_FILES / "CT_small.dcm", folder / "CT_small.dcm")
        patient = read_dicom(folder / "CT_small.dcm")
        case = net.submit(folder, {"routing": "pair", "target": net.pair})
        ref = case[:8]

        wait_for("Marie's e-mail", lambda: to(sink, "marie@example.org", "Un cas pour vous"))
        net.marie.ok(f"/cases/{case}/messages", "POST", {"text": MESSAGE})
        wait_for("Koffi's e-mail", lambda: to(sink, "koffi@example.org", "Un message sur"))
        net.marie.ok(f"/cases/{case}/report", "POST", REPORT)
        wait_for("the report's e-mail", lambda: to(sink, "koffi@example.org", "Le compte rendu"))

        for address, subject in (
            ("marie@example.org", "Un cas pour vous"),
            ("koffi@example.org", "Un message sur le cas"),
            ("koffi@example.org", "Le compte rendu est arrivé"),
        ):
            (message,) = to(sink, address, subject)  # one notice, sent once
            assert ref in message["Subject"]
            text = message.as_string() + message.get_content()
            secrets = [str(patient.PatientName), str(patient.PatientID), MESSAGE]
            secrets += [FORM["question"], REPORT["findings"], REPORT["impression"]]
            assert not [s for s in secrets if s and s in text], subject
