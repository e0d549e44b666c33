"""`tsfnode verify FILE`: who signed what and when, or why it does not verify."""

from __future__ import annotations

from pathlib import Path

from protocol.bundle import BundleSealer
from protocol.documents import encode_document
from tests.harness.nodes import tsfnode
from tests.protocol.helpers import NOW, FixedRng, identity

READER = identity("reader")
REPORT = {
    "case_id": bytes(range(16)),
    "bundle_id": bytes(16),
    "created": NOW,
    "language": "en",
    "findings": "Right lower lobe consolidation.",
    "impression": "Pneumonia.",
    "recommendations": "Follow-up film in 6 weeks.",
    "image_quality": "inadequate",
    "quality_reason": "underexposed",
    "supersedes": None,
}


def test_a_valid_report_names_its_signer_and_date(tmp_path: Path) -> None:
    path = tmp_path / "report.tsfd"
    path.write_bytes(encode_document("report", REPORT, READER))
    result = tsfnode("verify", path)
    assert result.returncode == 0, result.stderr
    assert f"valid report signed by {READER.public.text}" in result.stdout
    assert "signed on   2026-11-18" in result.stdout
    assert "image_quality inadequate" in result.stdout
    assert "consolidation" not in result.stdout  # clinical text is not printed


def test_a_manifest_lists_its_recipients(tmp_path: Path) -> None:
    sealer = BundleSealer(
        sender=identity("node"),
        recipients=[READER.public],
        chunk_size=65536,
        rng=FixedRng("m"),
    )
    sealer.push(b"x" * 100)
    _, manifest = sealer.finish(now=NOW, ttl=1000)
    path = tmp_path / "manifest.tsfd"
    path.write_bytes(manifest)
    result = tsfnode("verify", path)
    assert result.returncode == 0, result.stderr
    assert f"recipient   {READER.public.text}" in result.stdout


def test_a_tampered_document_says_why(tmp_path: Path) -> None:
    data = bytearray(encode_document("report", REPORT, READER))
    data[60] ^= 1
    path = tmp_path / "report.tsfd"
    path.write_bytes(bytes(data))
    result = tsfnode("verify", path)
    assert result.returncode == 1
    assert "does NOT verify" in result.stderr
    assert "BadSignatureError" in result.stderr


def test_not_a_document(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
    result = tsfnode("verify", path)
    assert result.returncode == 1
    assert "not a signed document" in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = tsfnode("verify", tmp_path / "nope")
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_a_case_event_and_a_directory_record_verify_too(tmp_path: Path) -> None:
    from protocol.directory import make_record

    event = tmp_path / "claim.tsfd"
    body = {"case_id": bytes(16), "created": NOW, "event": "claim", "reader": None, "note": ""}
    event.write_bytes(encode_document("case_event", body, READER))
    result = tsfnode("verify", event)
    assert result.returncode == 0, result.stderr
    assert "event       claim" in result.stdout
    record = tmp_path / "node-cert.tsfd"
    record.write_bytes(
        make_record(
            "node_cert",
            {"node": bytes(32)},
            signer=identity("anchor"),
            network="demo",
            version=7,
            now=NOW,
            ttl=86_400_000,
        )
    )
    result = tsfnode("verify", record)
    assert result.returncode == 0, result.stderr
    assert "version     7" in result.stdout
    assert "expires     2026-11-19" in result.stdout
