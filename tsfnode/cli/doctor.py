"""`tsfnode doctor DIR`: what most often breaks at a hospital's node, checked, each with
what to do, in the operator's language (French or English).

Checked: the key files' permissions, free disk space, the TLS certificate's expiry, the
age of the last scheduled backup, the mail server of [smtp] (connect, EHLO, TLS, sign in;
nothing sent), whether the node runs and answers, its peers and
relays as the node sees them, the clock against its peers' (signed records and
tokens expire: a clock minutes off makes a node refuse and be refused), whether the
node's published address is reachable from outside (one or two peers connect back to it:
``POST /peer/v1/echo``, SPEC.md 7.3), and the studies a restore left to fetch again
(``refetch.json``) that are not back yet.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import os
import shutil
import ssl
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tsfnode.config import NodeConfig, load_config
from tsfnode.errors import NodeError
from tsfnode.i18n import DEFAULT, LANGUAGES, N_, texts
from tsfnode.nodedir import NodeDir

OK, WARN, PROBLEM = "ok", "warn", "problem"
MARKS = {OK: "✔", WARN: "!", PROBLEM: "✘"}
LOW_DISK_BYTES = 2 * 1024**3
VERY_LOW_DISK_BYTES = 500 * 1024**2
CERT_WARN_DAYS = 14
SKEW_MAX_S = 60
PEERS_ASKED = 5
ECHO_PEERS = 2  # peers asked to connect back
UNREACHABLE = {
    "refused": N_("doctor_unreachable_refused"),
    "timeout": N_("doctor_unreachable_timeout"),
    "other": N_("doctor_unreachable_other"),
}


@dataclass(frozen=True)
class Finding:
    level: str
    key: str
    values: dict[str, object]


def _private_files(node: NodeDir) -> Finding:
    loose = []
    for path in [node.key, node.database, *_under(node.people), *_under(node.pseudonyms)]:
        if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            loose.append(path.name)
    if stat.S_IMODE(node.root.stat().st_mode) & 0o077:
        loose.append(node.root.name + "/")
    if loose:
        return Finding(
            PROBLEM, N_("doctor_files_open"), {"files": ", ".join(loose), "dir": node.root}
        )
    return Finding(OK, N_("doctor_files_private"), {})


def _under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def _disk(node: NodeDir) -> Finding:
    usage = shutil.disk_usage(node.root)
    values = {"free_gb": round(usage.free / 1024**3, 1), "dir": node.root}
    if usage.free < VERY_LOW_DISK_BYTES:
        return Finding(PROBLEM, N_("doctor_disk_full"), values)
    if usage.free < LOW_DISK_BYTES or usage.free < usage.total / 10:
        return Finding(WARN, N_("doctor_disk_low"), values)
    return Finding(OK, N_("doctor_disk_ok"), values)


def _certificate(node: NodeDir, config: NodeConfig, now: float) -> Finding | None:
    if not config.http_tls_cert:
        return None
    path = Path(config.http_tls_cert)
    path = path if path.is_absolute() else node.root / path
    try:
        decoded = ssl._ssl._test_decode_cert(str(path))  # type: ignore[attr-defined]
        expires = ssl.cert_time_to_seconds(decoded["notAfter"])
    except (OSError, ssl.SSLError, KeyError, ValueError):
        return Finding(PROBLEM, N_("doctor_cert_unreadable"), {"file": path})
    days = int((expires - now) // 86_400)
    if days < 0:
        return Finding(PROBLEM, N_("doctor_cert_expired"), {"file": path})
    if days < CERT_WARN_DAYS:
        return Finding(WARN, N_("doctor_cert_soon"), {"days": days, "file": path})
    return Finding(OK, N_("doctor_cert_ok"), {"days": days})


def _backup(node: NodeDir, config: NodeConfig, now: float) -> Finding:
    if not config.backup_folder or not config.backup_to_key:
        return Finding(WARN, N_("doctor_backup_none"), {"config": node.config})
    folder = Path(config.backup_folder)
    folder = folder if folder.is_absolute() else node.root / folder
    archives = sorted(folder.glob("tsfnode-*.tsfbackup")) if folder.is_dir() else []
    if not archives:
        return Finding(PROBLEM, N_("doctor_backup_missing"), {"folder": folder})
    hours = int((now - archives[-1].stat().st_mtime) // 3600)
    if hours > 2 * config.backup_every_hours:
        return Finding(PROBLEM, N_("doctor_backup_old"), {"hours": hours, "folder": folder})
    return Finding(OK, N_("doctor_backup_ok"), {"hours": hours, "count": len(archives)})


def _get(url: str) -> tuple[Any, str]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http(s) only
        return json.loads(response.read()), response.headers.get("Date", "")


def _running(node: NodeDir) -> tuple[Finding, str | None]:
    try:
        url = str(json.loads(node.run_info.read_text())["url"])
        _get(url + "/healthz")
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return Finding(WARN, N_("doctor_not_running"), {"dir": node.root}), None
    return Finding(OK, N_("doctor_running"), {"url": url}), url


def _network(url: str, config: NodeConfig, now: float) -> list[Finding]:
    try:
        listed, _ = _get(url + "/api/v1/peers")
    except (OSError, ValueError, urllib.error.URLError):
        return [Finding(WARN, N_("doctor_peers_unknown"), {})]
    peers = listed.get("peers", [])
    alive = [p for p in peers if p.get("status") == "alive"]
    found = [
        Finding(
            OK if alive or not peers else PROBLEM,
            N_("doctor_peers"),
            {"alive": len(alive), "known": len(peers)},
        )
    ]
    by_id = {p["id"]: p for p in peers}
    for relay in config.transfer_relays:
        state = by_id.get(relay, {}).get("status", "unknown")
        level = OK if state == "alive" else PROBLEM
        found.append(Finding(level, N_("doctor_relay"), {"relay": relay[:15], "status": state}))
    skews = []
    for peer in alive[:PEERS_ASKED]:
        try:
            _, date = _get(str(peer["address"]).rstrip("/") + "/healthz")
            skews.append(email.utils.parsedate_to_datetime(date).timestamp() - now)
        except (OSError, ValueError, TypeError, urllib.error.URLError):
            continue
    if skews:
        skew = sorted(skews)[len(skews) // 2]
        level = PROBLEM if abs(skew) > SKEW_MAX_S else OK
        found.append(Finding(level, N_("doctor_clock"), {"seconds": round(-skew)}))
    return found


def _post(url: str, data: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, method="POST")  # noqa: S310 - http(s)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return response.status, response.read(4096).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4096).decode("utf-8", "replace")


def _reachable(node: NodeDir, url: str, now: float) -> list[Finding]:
    """One or two alive peers connect back to each address this node publishes, and say
    what they saw (reachable, refused, timed out, something else answering)."""
    from protocol.echo import encode_echo_request
    from protocol.identity import PublicIdentity
    from tsfnode.keyfile import read_key

    try:
        me = _get(url + "/api/v1/node")[0]["id"]
        nodes, _ = _get(url + "/api/v1/directory?kind=node")
        peers = _get(url + "/api/v1/peers")[0].get("peers", [])
        identity = read_key(node.key)
    except (OSError, ValueError, KeyError, NodeError, urllib.error.URLError):
        return [Finding(WARN, N_("doctor_echo_unknown"), {"peer": "-", "reason": "API"})]
    mine = next((e for e in nodes if e.get("id") == me), None)
    addresses = [str(a) for a in (mine or {}).get("details", {}).get("addresses", [])]
    if not addresses:
        return [Finding(WARN, N_("doctor_no_address"), {"config": node.config})]
    alive = [p for p in peers if p.get("status") == "alive" and p.get("address")]
    if not alive:
        return []  # said already: no peer reachable
    found = []
    for address in addresses:
        for peer in alive[:ECHO_PEERS]:
            name = str(peer.get("name") or peer["id"][:15])
            try:
                request = encode_echo_request(
                    identity, PublicIdentity.from_text(peer["id"]).key, address, int(now * 1000)
                )
                status, body = _post(str(peer["address"]).rstrip("/") + "/peer/v1/echo", request)
                seen = json.loads(body)["result"] if status == 200 else ""
            except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError) as exc:
                status, body, seen = 0, type(exc).__name__, ""
            values: dict[str, object] = {"address": address, "peer": name}
            if seen == "reachable":
                found.append(Finding(OK, N_("doctor_reachable"), values))
                break
            if seen in UNREACHABLE:
                port = urllib.parse.urlsplit(address).port or 443
                found.append(Finding(PROBLEM, UNREACHABLE[seen], {**values, "port": port}))
                break
            reason = body.strip()[:120] or f"HTTP {status}"
            found.append(Finding(WARN, N_("doctor_echo_unknown"), {"peer": name, "reason": reason}))
    return found


def _refetch(node: NodeDir) -> Finding | None:
    """The studies a restore left out of its archive that are not back yet."""
    from tsfnode.transfers.refetch import read_listed

    listed = [e for e in read_listed(node.root) if not (node.root / "received" / e.bundle).is_dir()]
    if not listed:
        return None
    return Finding(
        WARN,
        N_("doctor_refetch_pending"),
        {"count": len(listed), "bundles": ", ".join(e.bundle[:8] for e in listed[:10])},
    )


def _mail_server(node: NodeDir, config: NodeConfig) -> Finding | None:
    """The [smtp] server: connected, greeted (EHLO), secured and signed in; nothing sent."""
    if not config.smtp_host:
        return None
    from tsfnode.mail import smtp

    where = f"{config.smtp_host}:{config.smtp_port}"
    try:
        settings = smtp.SmtpSettings.from_config(config, node.root)
        if settings is None:
            return None
        smtp.check(settings)
    except (smtp.SendError, NodeError) as exc:
        return Finding(PROBLEM, N_("doctor_mail_problem"), {"server": where, "reason": str(exc)})
    return Finding(OK, N_("doctor_mail_ok"), {"server": where})


def diagnose(directory: Path, now: float | None = None) -> list[Finding]:
    node = NodeDir(directory)
    if not node.exists():
        raise NodeError(f"{directory} is not a node directory (tsfnode init)")
    config = load_config(node.config)
    now = time.time() if now is None else now
    findings = [_private_files(node), _disk(node)]
    cert = _certificate(node, config, now)
    if cert is not None:
        findings.append(cert)
    findings.append(_backup(node, config, now))
    refetch = _refetch(node)
    if refetch is not None:
        findings.append(refetch)
    mail = _mail_server(node, config)
    if mail is not None:
        findings.append(mail)
    running, url = _running(node)
    findings.append(running)
    if url is not None:
        findings.extend(_network(url, config, now))
        findings.extend(_reachable(node, url, now))
    return findings


def _language(asked: str | None) -> str:
    if asked in LANGUAGES:
        return asked
    env = os.environ.get("LC_ALL") or os.environ.get("LANG") or ""
    return env[:2] if env[:2] in LANGUAGES else DEFAULT


def doctor(args: argparse.Namespace) -> int:
    _ = texts(_language(args.lang))
    findings = diagnose(args.directory)
    for finding in findings:
        print(f"{MARKS[finding.level]} {_(finding.key, **finding.values)}")
    problems = sum(f.level == PROBLEM for f in findings)
    print(_.plural("doctor_summary", problems) if problems else _("doctor_all_good"))
    return 1 if problems else 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="check what most often breaks, and say what to do")
    p.add_argument("directory", type=Path)
    p.add_argument("--lang", choices=LANGUAGES, help="fr or en (default: from LANG)")
    p.set_defaults(handler=doctor)
