"""The node admin's page in the web application: the node's status, its peers and their
liveness, the directory, transfers with their progress and rates, what it relays, its
storage, the network-wide figures, and the audit log (verified on every visit)."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from protocol.cases import State
from protocol.errors import IntegrityError
from protocol.identity import PublicIdentity
from tsfnode import __version__
from tsfnode.appkeys import CASES, CONFIG, DIRECTORY, IDENTITY, NODE_DIR, PEERING, STARTED_MS, STORE
from tsfnode.auth.sessions import require
from tsfnode.cases.audit_log import read_entries, verify_log
from tsfnode.cases.metrics import network_figures
from tsfnode.clock import request_now
from tsfnode.i18n import N_, Texts, texts
from tsfnode.store.mail import MailStore
from tsfnode.transfers.progress import list_progress
from tsfnode.web.common import language_of, names_of, render_page, when, zone_of

SHOWN = 200  # rows of a list shown at most (the page stays light)
AUDIT_SHOWN = 50
FOLDERS = ("blobs", "chunks", "intake", "received", "teaching", "uploads")
ROUTED = {
    "pair": N_("pair_word"),
    "group": N_("kind_subspeciality"),
    "community": N_("kind_community"),
}
STATES = {s.value for s in State}


def action_code(action: str) -> str:
    """An audit entry's action as the key of its name (``audit_<code>``): "view images"
    is ``view_images``; the page shows the action as written when no key has it."""
    return re.sub(r"[^a-z]+", "_", action.lower()).strip("_")


def audit_detail(detail: str, words: Texts) -> str:
    """An audit entry's detail in the page's language where it is a known shape (a
    case's state, the nodes a case was sealed for, the bundles purged); ids, counts and
    other details as written."""
    if detail in STATES:
        return words(f"state_{detail}")
    if found := re.fullmatch(r"(?:(pair|group|community) to )?(\d+) node\(s\)", detail):
        nodes = words.plural("count_nodes", int(found.group(2)))
        routed = found.group(1)
        return f"{words(ROUTED[routed])} · {nodes}" if routed else nodes
    if found := re.fullmatch(r"(\d+) bundle\(s\)", detail):
        return words.plural("count_bundles", int(found.group(1)))
    return detail


def _size(folder: Path) -> int:
    if not folder.exists():
        return 0
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def storage(root: Path, database: Path) -> dict[str, Any]:
    """Bytes used per folder of the node directory, the database, and the disk's free."""
    used = {name: _size(root / name) for name in FOLDERS}
    used["database"] = sum(
        p.stat().st_size for p in database.parent.glob(database.name + "*") if p.is_file()
    )
    disk = shutil.disk_usage(root)
    return {"used": used, "total_used": sum(used.values()), "free": disk.free, "disk": disk.total}


async def admin_page(request: web.Request) -> web.Response:
    session = await require(request, "admin")
    lang = language_of(request, session)
    zone = zone_of(request, session)
    config = request.config_dict[CONFIG]
    node_dir = request.config_dict[NODE_DIR]
    identity = request.config_dict[IDENTITY]
    now = request_now(request)
    view = request.config_dict[DIRECTORY].view(now)
    store = request.config_dict[STORE]
    peers = request.config_dict[PEERING].peers(now)
    for peer in peers:
        peer["last_heard"] = when(peer["last_heard_ms"], lang, zone)
    transfers = [p.as_dict() for p in await list_progress(store.db)][:SHOWN]
    names = {PublicIdentity(k).text: r.body["name"] for k, r in view.nodes.items()}
    for t in transfers:
        t["peer_name"] = names.get(t["peer"], t["peer"][:8])
        t["percent"] = int(100 * t["bytes_done"] / t["size"]) if t["size"] else 100
        t["created"] = when(t["created_ms"], lang, zone)
    relayed = [t for t in transfers if t["direction"] == "relay"]
    nodes = [
        {
            "name": r.body["name"],
            "country": r.body["country"],
            "id": PublicIdentity(k).text,
            "relays": len(r.body.get("relays", ())),
            "admitted": k in view.admitted,
        }
        for k, r in sorted(view.nodes.items(), key=lambda kv: kv[1].body["name"])
    ][:SHOWN]
    people = names_of(request)
    words = texts(lang)
    try:
        audit_count = await verify_log(store)
        audit_error = None
    except IntegrityError as exc:
        audit_count, audit_error = 0, str(exc)
    entries = (await read_entries(store))[-AUDIT_SHOWN:]
    audit = [
        {
            "seq": e.seq,
            "when": when(e.at_ms, lang, zone),
            "actor": people.get(e.actor.hex(), e.actor.hex()[:8] if e.actor else words("node")),
            "case": e.case_id.hex()[:8],
            "action": e.action,
            "code": action_code(e.action),
            "detail": audit_detail(e.detail, words),
        }
        for e in reversed(entries)
    ]
    return render_page(
        request,
        "admin.html",
        session=session,
        node={
            "name": config.name,
            "id": identity.public.text,
            "version": __version__,
            "started": when(request.config_dict[STARTED_MS], lang, zone),
            "admitted": view.is_admitted(identity.public.key),
            "relay_quota_mb": config.transfer_relay_quota_mb,
            "upload_kbit_s": config.transfer_upload_kbit_s,
        },
        peers=peers,
        transfers=transfers,
        relayed=relayed,
        directory={
            "nodes": len(view.nodes),
            "groups": len(view.groups),
            "members": len(view.members),
            "pairs": len(view.pairs),
            "teaching": len(view.teaching),
        },
        nodes=nodes,
        storage=await asyncio.to_thread(storage, node_dir.root, node_dir.database),
        network=network_figures(request.config_dict[CASES], now),
        audit=audit,
        audit_count=audit_count,
        audit_error=audit_error,
        mail=await _mail(request, lang, zone),
    )


async def _mail(request: web.Request, lang: str, zone: ZoneInfo) -> dict[str, Any]:
    """The e-mail queue for the operator: counts, and the e-mails that failed for good
    with the server's answer and the address (the operator may see people's addresses)."""
    queue = MailStore(request.config_dict[STORE].db)
    config = request.config_dict[CONFIG]
    failed = [
        {
            "kind": row.kind,
            "to": address,
            "case": row.case_id.hex()[:8] if row.case_id else "",
            "error": row.last_error,
            "attempts": row.attempts,
            "when": when(row.created_ms, lang, zone),
        }
        for row, address in await queue.in_state("failed")
    ]
    return {
        "server": f"{config.smtp_host}:{config.smtp_port}" if config.smtp_host else "",
        "counts": await queue.counts(),
        "failed": failed,
    }


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin", admin_page)
