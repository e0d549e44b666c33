"""`tsfnode verify FILE`: say who signed a document, what and when, or why it fails.

`tsfnode verify CODE --node DIR` (or a printed report's PDF, whose code is in its
metadata): whether the node holds the report that verification code names, intact (its
signature checked again), who signed it and when. Never the clinical text.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

from protocol.bundle import Manifest
from protocol.documents import decode_document
from protocol.errors import ProtocolError
from tsfnode.errors import NodeError
from tsfnode.hospital.report import normalise_code

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


PDF_CODE = re.compile(rb"tsfnode verification code ([A-Z2-7]{4}(?:-[A-Z2-7]{4}){3})")


def verify(argument: str, node: Path | None) -> int:
    """A file (a signed document, or a printed report's PDF) or a verification code."""
    path = Path(argument)
    if path.is_file():
        head = path.read_bytes()[:5]
        if head != b"%PDF-":
            return verify_file(path)
        found = PDF_CODE.search(path.read_bytes())
        if found is None:
            print(f"{path}: no tsfnode verification code in this PDF", file=sys.stderr)
            return 1
        code = found.group(1).decode()
    else:
        normal = normalise_code(argument)
        if normal is None:
            raise NodeError(
                f"cannot read {argument}: no such file, nor a verification code (16 letters "
                "and digits in four groups, as ABCD-EFGH-IJKL-MNOP)"
            )
        code = normal
    if node is None:
        raise NodeError("a verification code is checked against a node: add --node DIR")
    return asyncio.run(_verify_code(code, node))


async def _verify_code(code: str, directory: Path) -> int:
    from tsfnode.cases.report_out import find_by_code
    from tsfnode.nodedir import NodeDir
    from tsfnode.store import Store
    from tsfnode.store.cases import CaseStore

    node_dir = NodeDir(directory)
    if not node_dir.exists():
        raise NodeError(f"{directory} is not a node directory (tsfnode init)")
    async with await Store.open(node_dir.database, readonly=True) as store:
        found = await find_by_code(CaseStore(store.db), code)
    if found is None:
        print(f"{code}: NO report of this node has this code: it is not a report "
              "from here, or it was changed", file=sys.stderr)  # fmt: skip
        return 1
    if found.document is None:
        print(f"{code}: the report of case {found.case_id.hex()} does NOT verify: "
              f"{found.problem}", file=sys.stderr)  # fmt: skip
        return 1
    doc = found.document
    print(f"{code}: valid report signed by {doc.signer.text}")
    print(f"  signed on   {_when(doc.created)}")
    print(f"  case_id     {found.case_id.hex()}")
    print(f"  digest      {doc.digest.hex()}")
    return 0
