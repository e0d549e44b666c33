"""`tsfnode seal` (a reviewed study into the outbox) and `tsfnode transfers` (what moves,
with progress bars)."""

from __future__ import annotations

import argparse
import asyncio
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from protocol.identity import PublicIdentity
from protocol.transfer import PRIORITY_ROUTINE, PRIORITY_URGENT
from tsfnode.clock import Clock
from tsfnode.errors import NodeError
from tsfnode.intake.review import ReviewBook
from tsfnode.keyfile import read_key
from tsfnode.nodedir import NodeDir, read_run_info
from tsfnode.store import Store
from tsfnode.transfers.progress import Progress, list_progress

if TYPE_CHECKING:
    from protocol.bundle import Manifest

DONE_STATES = ("delivered", "failed", "complete", "expired")


def _now() -> int:
    return Clock().now_ms()


def _recipients(texts: list[str]) -> list[PublicIdentity]:
    out = []
    for text in texts:
        try:
            out.append(PublicIdentity.from_text(text))
        except ValueError as exc:
            raise NodeError(f"--to {text!r} is not a node id: {exc}") from None
    return out


async def _seal(args: argparse.Namespace) -> int:
    from tsfnode.transfers.sealing import seal_in

    node = NodeDir(args.directory)
    if not node.config.exists():
        raise NodeError(f"{args.directory} is not a node directory")
    identity = read_key(node.key)
    study = ReviewBook(node.intake).find(args.study)
    recipients = _recipients(args.to)
    now = _now()
    case: dict[str, Any] = {
        "study_uid": study,
        "urgency": "urgent" if args.urgent else "routine",
    }
    priority = PRIORITY_URGENT if args.urgent else PRIORITY_ROUTINE
    sealed = await asyncio.to_thread(
        seal_in, node.root, identity, recipients, study, case=case, now=now, priority=priority
    )
    await queue_in_outbox(node.database, sealed.manifest, identity.public.key, study, now)
    await asyncio.to_thread(wake_running_node, node)
    m = sealed.manifest
    print(
        f"Sealed / scellé: bundle {m.bundle_id.hex()}  {sealed.files} file(s), "
        f"{m.ciphertext_size / 1e6:.1f} MB to send ({sealed.original_bytes / 1e6:.1f} MB before "
        f"compression), {m.chunk_count} chunk(s), for {len(recipients)} node(s)"
    )
    print("In the outbox: the node sends it while it runs (tsfnode transfers DIR)")
    return 0


async def queue_in_outbox(
    database: Path, manifest: Manifest, sender: bytes, study_uid: str, now: int
) -> None:
    """Put a bundle sealed by this node in the outbox of its database (the node, running
    or not, sends it)."""
    from tsfnode.transfers.outbox import queue_bundle

    async with await Store.open(database) as store:
        await queue_bundle(store.db, manifest, sender=sender, study_uid=study_uid, now=now)


def wake_running_node(node: NodeDir) -> bool:
    """Tell the node running on this directory, if any, to look at its outbox now (a
    local-only route), rather than at its next tick. False if it could not be told (not
    running, an earlier version, TLS with a certificate this machine does not trust):
    the node then finds the bundle at its next tick, within half a second."""
    info = read_run_info(node)
    if info is None or not isinstance(info.get("url"), str):
        return False
    url = f"{info['url']}/api/v1/transfers/outbox"
    if not url.startswith(("http://", "https://")):
        return False
    request = urllib.request.Request(url, method="POST")  # noqa: S310 - checked above
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:  # noqa: S310 - its own URL
            return bool(answer.status == 204)
    except (OSError, ValueError):
        return False


def seal_command(args: argparse.Namespace) -> int:
    return asyncio.run(_seal(args))


async def _read(directory: Path) -> list[Progress]:
    async with await Store.open(NodeDir(directory).database, readonly=True) as store:
        return await list_progress(store.db)


def _line(p: Progress) -> str:
    peer = p.peer[:15]
    arrow = {"out": "→", "in": "←", "relay": "⇄"}[p.direction]
    rate = f"{p.rate * 8 / 1000:.0f} kbit/s" if p.rate else ""
    eta = f"ETA {p.eta_s:.0f}s" if p.eta_s is not None else ""
    extra = "  ".join(x for x in (p.route, rate, eta) if x)
    tries = f"  attempts {p.attempts}" if p.attempts else ""
    error = f"  last error: {p.last_error}" if p.last_error else ""
    return f"{p.bundle_id[:12]} {arrow} {peer}  {p.state}  {extra}{tries}{error}"


def transfers_command(args: argparse.Namespace) -> int:
    listed = asyncio.run(_read(args.directory))
    if not listed:
        print("No transfer / aucun transfert")
        return 0
    if not args.watch:
        for p in listed:
            print(f"{_line(p)}  {p.bytes_done / 1e6:.1f}/{p.size / 1e6:.1f} MB")
        return 0
    bars: dict[str, tqdm[Any]] = {}
    deadline = time.monotonic() + args.timeout
    while True:
        for p in listed:
            key = f"{p.direction}{p.bundle_id}{p.peer}"
            bar = bars.get(key)
            if bar is None:
                bar = bars[key] = tqdm(
                    total=p.size, unit="B", unit_scale=True, position=len(bars), leave=True
                )
            bar.set_description_str(_line(p)[:70])
            bar.update(p.bytes_done - bar.n)
        if all(p.state in DONE_STATES or p.direction == "relay" for p in listed):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(1)
        listed = asyncio.run(_read(args.directory))
    for bar in bars.values():
        bar.close()
    return 0 if all(p.state != "failed" for p in listed) else 1


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("seal", help="seal a reviewed study for nodes and put it in the outbox")
    p.add_argument("directory", type=Path)
    p.add_argument("study", help="Study Instance UID in the intake (or its first characters)")
    p.add_argument("--to", action="append", required=True, help="a recipient node's id")
    p.add_argument("--urgent", action="store_true", help="goes before routine studies")
    p.set_defaults(handler=seal_command)

    p = sub.add_parser("transfers", help="bundles sent, received and relayed, with progress")
    p.add_argument("directory", type=Path)
    p.add_argument("--watch", action="store_true", help="progress bars until all are done")
    p.add_argument("--timeout", type=float, default=3600, help="stop watching after (s)")
    p.set_defaults(handler=transfers_command)
