from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.documents import (
    DIRECTORY_KINDS,
    DOCUMENT_KINDS,
    HEADER_SIZE,
    decode_document,
    encode_document,
)
from protocol.errors import (
    BadSignatureError,
    ExpiredError,
    LocalProtocolError,
    MalformedError,
    TooLargeError,
    UnsupportedVersionError,
)
from tests.protocol.helpers import NOW, identity

READER, SENDER, NODE = identity("reader"), identity("sender"), identity("node")
CASE = bytes(range(16))

REPORT: dict[str, Any] = {
    "case_id": CASE,
    "bundle_id": bytes(16),
    "created": NOW,
    "language": "fr",
    "findings": "Opacité alvéolaire du lobe inférieur droit.",
    "impression": "Pneumopathie probable.",
    "recommendations": "Contrôle radiographique à 6 semaines.",
    "image_quality": "adequate",
    "quality_reason": "",
    "supersedes": None,
}
SAMPLES: dict[str, tuple[Any, dict[str, Any]]] = {
    "report": (  # with the instances the reader made at the workstation (SPEC.md §5)
        READER,
        {**REPORT, "attachments": [["2.25.7", "1.2.840.10008.5.1.4.1.1.88.59", bytes(32), 912]]},
    ),
    "evaluation": (
        SENDER,
        {
            "case_id": CASE,
            "report": bytes(32),
            "created": NOW,
            "relevant": True,
            "useful": True,
            "changed_management": True,
            "teaching_consent": False,
            "comment": "Merci, très utile.",
        },
    ),
    "case_message": (
        SENDER,
        {
            "case_id": CASE,
            "message_id": bytes(16),
            "created": NOW,
            "text": "Pouvez-vous envoyer un profil ?",
            "in_reply_to": None,
            "extra": None,
        },
    ),
    "case_request": (
        SENDER,
        {
            "case_id": CASE,
            "created": NOW,
            "sender_node": bytes(32),
            "routing": "community",
            "target": bytes(range(32)),
            "pair_id": None,
            "reading_delay_hours": 48,
            "over_quota": False,
            "part": 0,
            "form": {"question": "Pneumopathie ?", "age_years": 4, "age_months": None},
        },
    ),
    "case_event": (
        READER,
        {
            "case_id": CASE,
            "created": NOW,
            "event": "claim",
            "reader": None,
            "note": "",
            "seq": None,
        },
    ),
    "receipt": (
        NODE,
        {"bundle_id": bytes(16), "manifest": bytes(32), "received": NOW, "created": NOW},
    ),
}


@pytest.mark.parametrize("kind", SAMPLES)
def test_each_kind_round_trips_and_names_its_signer(kind: str) -> None:
    signer, body = SAMPLES[kind]
    data = encode_document(kind, body, signer)
    doc = decode_document(data, expect=kind, now=NOW)
    assert doc.signer == signer.public
    assert doc.body == body
    assert doc.raw == data


def test_every_kind_has_a_sample_or_a_bundle_test() -> None:
    directory = {k.name for k in DIRECTORY_KINDS}  # tests/protocol/test_directory.py
    assert {k.name for k in DOCUMENT_KINDS} == set(SAMPLES) | {"manifest"} | directory


@settings(max_examples=100)
@given(
    findings=st.text(max_size=2000),
    quality=st.sampled_from(["adequate", "inadequate"]),
    created=st.integers(0, NOW),
)
def test_report_round_trips(findings: str, quality: str, created: int) -> None:
    body = {**REPORT, "findings": findings, "image_quality": quality, "created": created}
    decoded = decode_document(encode_document("report", body, READER)).body
    assert decoded == {"attachments": None, **body}


@pytest.mark.parametrize("kind", SAMPLES)
def test_a_flip_anywhere_is_rejected(kind: str) -> None:
    signer, body = SAMPLES[kind]
    data = encode_document(kind, body, signer)
    for offset in range(len(data)):
        corrupted = bytearray(data)
        corrupted[offset] ^= 0x04
        with pytest.raises(
            (BadSignatureError, MalformedError, TooLargeError, UnsupportedVersionError)
        ):
            decode_document(bytes(corrupted))


def test_a_truncated_document_is_rejected() -> None:
    data = encode_document("report", REPORT, READER)
    for cut in range(1, len(data), 7):
        with pytest.raises(MalformedError):
            decode_document(data[:-cut])


def test_a_document_cannot_pass_for_another_kind() -> None:
    data = encode_document("evaluation", SAMPLES["evaluation"][1], SENDER)
    with pytest.raises(MalformedError, match="expected a report"):
        decode_document(data, expect="report")
    # Changing the kind byte breaks the signature: the tag names the kind.
    forged = bytearray(data)
    forged[5] = 2
    with pytest.raises((BadSignatureError, MalformedError)):
        decode_document(bytes(forged))


def test_report_re_signed_by_someone_else_names_them() -> None:
    """Identity comes from the key: a report signed by another key is theirs, not the
    reader's, whatever its body says."""
    forged = encode_document("report", REPORT, identity("impostor"))
    assert decode_document(forged).signer != READER.public


def test_document_from_the_future_is_refused() -> None:
    data = encode_document("report", {**REPORT, "created": NOW + 3_600_000}, READER)
    with pytest.raises(ExpiredError):
        decode_document(data, now=NOW)


def test_invalid_body_is_a_local_error_on_encode() -> None:
    with pytest.raises(LocalProtocolError, match="image_quality"):
        encode_document("report", {**REPORT, "image_quality": "so-so"}, READER)
    with pytest.raises(LocalProtocolError, match="unknown document kind"):
        encode_document("memo", {}, READER)


def test_header_size_is_as_specified() -> None:
    assert HEADER_SIZE == 44


def test_a_report_without_attachments_is_signed_without_the_key() -> None:
    """A report with no instance of the reader's leaves ``attachments`` out, so a node of
    an earlier version still takes it; decoded, the key reads as None."""
    data = encode_document("report", REPORT, READER)
    assert b"attachments" not in data
    assert decode_document(data, expect="report", now=NOW).body["attachments"] is None
