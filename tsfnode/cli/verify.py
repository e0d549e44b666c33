"""`tsfnode verify FILE`: say who signed a document, what and when, or why it fails."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from protocol.bundle import Manifest
from protocol.documents import decode_document
from protocol.errors import ProtocolError
from tsfnode.errors import NodeError

# The fields shown per kind: identifiers and ratings, never clinical text.
_SHOWN = {
    "manifest": ("bundle_id", "chunk_count", "chunk_size", "plaintext_size", "priority"),
    "report": ("case_id", "bundle_id", "language", "image_quality", "supersedes"),
    "evaluation": ("case_id", "report", "relevant", "useful", "changed_management"),
    "case_request": ("case_id", "routing", "target", "reading_delay_hours", "over_quota"),
    "case_event": ("case_id", "event", "reader"),
    "case_message": ("case_id", "message_id", "in_reply_to"),
    "receipt": ("bundle_id", "manifest", "received"),
}


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def verify_file(path: Path) -> int:
    """0 when the file verifies; 1 when it does not (and why); NodeError if unreadable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NodeError(f"cannot read {path}: {exc.strerror}") from None
    try:
        doc = decode_document(data)
        if doc.kind == "manifest":
            Manifest.decode(data)
    except ProtocolError as exc:
        print(f"{path}: does NOT verify: {exc} ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(f"{path}: valid {doc.kind} signed by {doc.signer.text}")
    print(f"  signed on   {_when(doc.created)}")
    print(f"  digest      {doc.digest.hex()}")
    for field in _SHOWN.get(doc.kind, ("version", "expires")):  # directory records
        value = doc.body[field]
        if isinstance(value, bytes):
            value = value.hex()
        elif field in ("received", "expires"):
            value = _when(value)
        print(f"  {field:<11} {value}")
    if doc.kind == "manifest":
        for node in Manifest(doc).recipients:
            print(f"  recipient   {node.text}")
    return 0
