"""The node's configuration file (config.toml): read strictly, written by `init`.

Every setting is declared once in ``SETTINGS`` (section, key, type, default, check);
``NodeConfig`` has one attribute per setting, named ``section_key`` except for the
[node] section whose keys are used as they are.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from tsfnode.errors import NodeError
from tsfnode.intake.profile import parse_safe_private

DEFAULT_PORT = 8470


def _ip_or_empty(value: str) -> str | None:
    if value in ("", "localhost"):
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "must be an IP address"
    return None


def _range(lo: int, hi: int) -> Callable[[int], str | None]:
    return lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}"


def _country(value: str) -> str | None:
    ok = not value or (len(value) == 2 and value.isalpha() and value.isascii())
    return None if ok else "must be a two-letter code such as BE or BJ"


def _zone(value: str) -> str | None:
    from tsfnode.i18n import known_zone  # zoneinfo: the system's time zone database

    ok = not value or known_zone(value)
    return None if ok else "must be a time zone such as Africa/Porto-Novo or Europe/Brussels"


def _ae_title(value: str) -> str | None:
    ok = 0 < len(value.strip()) <= 16 and value.isascii() and "\\" not in value
    return None if ok else "must be 1 to 16 ASCII characters, without backslash"


def _private_list(value: list[str]) -> str | None:
    if not all(isinstance(v, str) for v in value):
        return 'must be a list of texts such as ["GEMS_ACQU_01:1B"]'
    try:
        parse_safe_private(value)
    except ValueError as exc:
        return f"has {exc}"
    return None


def _node_ids(value: list[str]) -> str | None:
    from protocol.identity import PublicIdentity

    for v in value:
        try:
            PublicIdentity.from_text(str(v))
        except ValueError as exc:
            return f"has {v!r}, not a node id ({exc})"
    return None


def _origins(value: list[str]) -> str | None:
    from urllib.parse import urlsplit

    for v in value:
        parts = urlsplit(str(v))
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            return f'has {v!r}: an origin is "https://host[:port]", without a path'
    return None


def _networks(value: list[str]) -> str | None:
    for v in value:
        try:
            ipaddress.ip_network(str(v), strict=False)
        except ValueError:
            return f'has {v!r}, not a network such as "192.168.0.0/16"'
    return None


def _backup_key(value: str) -> str | None:
    if not value:
        return None
    try:
        ok = len(base64.b64decode(value, validate=True)) == 32
    except ValueError:
        ok = False
    return None if ok else "must be the public key `tsfnode backup-key` wrote (base64)"


def _calling_aes(value: list[str]) -> str | None:
    for v in value:
        title, at, host = str(v).partition("@")
        if not title.strip() or len(title) > 16 or not title.isascii() or "\\" in title:
            return f'has {v!r}: "AE_TITLE" or "AE_TITLE@address" (1 to 16 ASCII characters)'
        if at and (not host or _ip_or_empty(host) is not None):
            return f'has {v!r}: after @, an IP address such as "192.168.1.20"'
    return None


def _hours(value: str) -> str | None:
    try:
        start, end = (int(h) for h in value.split("-"))
    except ValueError:
        return 'must be two hours such as "08-18"'
    return None if 0 <= start < end <= 24 else 'must be two hours such as "08-18"'


def _security(value: str) -> str | None:
    ok = value in ("starttls", "tls", "none")
    return None if ok else 'must be "starttls", "tls" or "none" (a server on this machine)'


EMAIL = r"[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s.]{1,63}"


def _address_or_empty(value: str) -> str | None:
    import re

    if not value or re.fullmatch(EMAIL, value):
        return None
    return 'must be an e-mail address such as "tsf@hospital.example"'


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    type: type
    default: Any
    check: Callable[[Any], str | None] | None = None
    comment: str = ""

    @property
    def attr(self) -> str:
        return self.key if self.section == "node" else f"{self.section}_{self.key}"


SETTINGS: tuple[Setting, ...] = (
    Setting("node", "name", str, "", lambda v: None if v.strip() else "is missing or empty"),
    Setting("node", "institution", str, ""),
    Setting("node", "country", str, "", _country),
    Setting("node", "network", str, "demo", comment="a name in bootstrap/networks, or a file"),
    Setting(
        "node",
        "timezone",
        str,
        "",
        _zone,
        "times shown in (IANA, e.g. Africa/Porto-Novo); '': the system's",
    ),
    Setting("http", "host", str, "127.0.0.1", _ip_or_empty),
    Setting("http", "port", int, DEFAULT_PORT, _range(0, 65535)),
    Setting("http", "public_url", str, "", comment="how other nodes reach this one"),
    Setting("http", "source_address", str, "", _ip_or_empty, "local address for outgoing"),
    Setting("http", "tls_cert", str, "", comment="certificate chain (PEM): serve HTTPS"),
    Setting("http", "tls_key", str, "", comment="its private key (PEM); reloaded on SIGHUP"),
    Setting("http", "trusted_proxies", list, [], _networks, "reverse proxies' addresses"),
    Setting(
        "http",
        "max_connections_per_address",
        int,
        64,
        _range(0, 100_000),
        "at once from one client address (a hospital's NAT is one); 0: no cap",
    ),
    Setting(
        "http",
        "client_timeout_s",
        int,
        30,
        _range(2, 3600),
        "idle connections, unfinished request heads, bodies under 512 bytes/s: closed after",
    ),
    Setting("gossip", "interval_ms", int, 30_000, _range(100, 3_600_000)),
    Setting("gossip", "fanout", int, 2, _range(1, 16)),
    Setting("gossip", "budget_kib", int, 64, _range(4, 4096)),
    Setting("liveness", "probe_interval_ms", int, 10_000, _range(100, 3_600_000)),
    Setting("liveness", "probe_timeout_ms", int, 3_000, _range(50, 600_000)),
    Setting("discovery", "mdns", bool, True, comment="find nodes on the LAN (DNS-SD)"),
    Setting("discovery", "mdns_interface", str, "", _ip_or_empty, "empty: every interface"),
    Setting("dicom", "ae_title", str, "TSFNODE", _ae_title),
    Setting("dicom", "port", int, 0, _range(0, 65535), "C-STORE listener; 0: off"),
    Setting("dicom", "send_networks", list, [], _networks, "where readers may send; empty: any"),
    Setting("dicom", "calling_ae_titles", list, [], _calling_aes, "who may send; empty: any"),
    Setting("dicom", "max_associations", int, 32, _range(1, 1000)),
    Setting(
        "dicom",
        "max_associations_per_address",
        int,
        16,
        _range(0, 1000),
        "at once from one address; 0: no cap",
    ),
    Setting("dicom", "artim_timeout_s", int, 10, _range(1, 3600), "association setup, release"),
    Setting("dicom", "dimse_timeout_s", int, 60, _range(1, 3600)),
    Setting("dicom", "network_timeout_s", int, 60, _range(1, 3600), "idle connection closed"),
    Setting("dicomweb", "cors_origins", list, [], _origins, "viewers served elsewhere"),
    Setting(
        "intake",
        "keep_private",
        list,
        [],
        _private_list,
        "private attributes known to be safe (PS3.15 E.3.10), kept: CREATOR:ee",
    ),
    Setting(
        "intake",
        "max_files",
        int,
        5000,
        _range(1, 1_000_000),
        "files in one upload (a CT CD holds 1,500-3,000); the operator's import: any",
    ),
    Setting("transfer", "relays", list, [], _node_ids, "nodes that hold mail for this one"),
    Setting("transfer", "relay_quota_mb", int, 2048, _range(0, 10_000_000), "0: not a relay"),
    Setting("relay", "enabled", bool, False, comment="hold mail for other nodes (consent)"),
    Setting("relay", "nodes", list, [], _node_ids, "the nodes it holds mail for; empty: any"),
    Setting("transfer", "upload_kbit_s", int, 0, _range(0, 10_000_000), "uplink cap; 0: none"),
    Setting("transfer", "day_upload_kbit_s", int, 0, _range(0, 10_000_000), "cap by day"),
    Setting("transfer", "day_hours", str, "08-18", _hours, "when the day cap applies"),
    Setting("transfer", "window", int, 4, _range(1, 64), "chunk requests in flight"),
    Setting("transfer", "poll_interval_ms", int, 60_000, _range(100, 3_600_000)),
    Setting("transfer", "retry_base_ms", int, 5_000, _range(10, 3_600_000)),
    Setting(
        "transfer",
        "retry_cap_ms",
        int,
        3_600_000,
        _range(10, 86_400_000),
        "longest wait between a delivery's attempts (doubling from retry_base_ms)",
    ),
    Setting("cases", "retention_days", int, 30, _range(0, 3650), "images kept after closing"),
    Setting(
        "viewer",
        "mpr_max_mb",
        int,
        512,
        _range(0, 100_000),
        "a volume reformatted (MPR) at most, on disk; 0: no reformats",
    ),
    Setting("cases", "reading_delay_hours", int, 72, _range(1, 1440), "groups' default delay"),
    Setting("cases", "scan_interval_ms", int, 10_000, _range(100, 3_600_000), "deadlines"),
    Setting("cases", "stats_interval_ms", int, 3_600_000, _range(1000, 86_400_000)),
    Setting("smtp", "host", str, "", comment="the operator's mail server; empty: no e-mail"),
    Setting("smtp", "port", int, 587, _range(1, 65535)),
    Setting("smtp", "security", str, "starttls", _security, "starttls, tls, none (loopback)"),
    Setting("smtp", "username", str, ""),
    Setting("smtp", "password", str, "", comment="or password_file (mode 0600)"),
    Setting("smtp", "password_file", str, ""),
    Setting("smtp", "from_address", str, "", _address_or_empty, "the sender of notices"),
    Setting("smtp", "link_url", str, "", comment="the node's web address in e-mails"),
    Setting("smtp", "timeout_s", int, 30, _range(1, 600)),
    Setting("notices", "digest_hour", int, 7, _range(0, 23), "daily digests, UTC hour"),
    Setting("notices", "due_soon_hours", int, 24, _range(1, 720)),
    Setting("notices", "retry_base_s", int, 60, _range(1, 86_400)),
    Setting("notices", "retry_cap_s", int, 21_600, _range(1, 604_800)),
    Setting("notices", "max_attempts", int, 20, _range(1, 1000), "then failed for good"),
    Setting("notices", "silent_weeks", int, 4, _range(1, 104), "a pair with no case yet"),
    Setting("notices", "quota_unused_weeks", int, 3, _range(1, 104)),
    Setting("notices", "escalated", int, 3, _range(1, 100), "a reader's cases escalated..."),
    Setting("notices", "escalated_of", int, 5, _range(1, 100), "...of their last cases"),
    Setting("backup", "folder", str, "", comment="scheduled backups go here; empty: none"),
    Setting("backup", "to_key", str, "", _backup_key, "operator's public key (backup-key)"),
    Setting("backup", "every_hours", int, 24, _range(1, 24 * 30)),
    Setting("backup", "keep", int, 7, _range(1, 1000), "backups kept in the folder"),
    Setting(
        "log",
        "level",
        str,
        "info",
        lambda v: (
            None
            if v in ("debug", "info", "warning", "error")
            else "must be one of debug, info, warning, error"
        ),
    ),
)
_BY_SECTION: dict[str, dict[str, Setting]] = {}
for _s in SETTINGS:
    _BY_SECTION.setdefault(_s.section, {})[_s.key] = _s


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    name: str
    institution: str = ""
    country: str = ""
    network: str = "demo"
    timezone: str = ""  # the zone of the node's people by default ('': the system's)
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_PORT
    http_public_url: str = ""
    http_source_address: str = ""
    http_tls_cert: str = ""
    http_tls_key: str = ""
    http_trusted_proxies: tuple[str, ...] = ()
    http_max_connections_per_address: int = 64
    http_client_timeout_s: int = 30
    gossip_interval_ms: int = 30_000
    gossip_fanout: int = 2
    gossip_budget_kib: int = 64
    liveness_probe_interval_ms: int = 10_000
    liveness_probe_timeout_ms: int = 3_000
    discovery_mdns: bool = True
    discovery_mdns_interface: str = ""
    dicom_ae_title: str = "TSFNODE"
    dicom_port: int = 0
    dicom_send_networks: tuple[str, ...] = ()
    dicom_calling_ae_titles: tuple[str, ...] = ()
    dicom_max_associations: int = 32
    dicom_max_associations_per_address: int = 16
    dicom_artim_timeout_s: int = 10
    dicom_dimse_timeout_s: int = 60
    dicom_network_timeout_s: int = 60
    dicomweb_cors_origins: tuple[str, ...] = ()
    intake_keep_private: tuple[str, ...] = ()
    intake_max_files: int = 5000
    transfer_relays: tuple[str, ...] = ()
    transfer_relay_quota_mb: int = 2048
    relay_enabled: bool = False
    relay_nodes: tuple[str, ...] = ()
    transfer_upload_kbit_s: int = 0
    transfer_day_upload_kbit_s: int = 0
    transfer_day_hours: str = "08-18"
    transfer_window: int = 4
    transfer_poll_interval_ms: int = 60_000
    transfer_retry_base_ms: int = 5_000
    transfer_retry_cap_ms: int = 3_600_000
    cases_retention_days: int = 30
    viewer_mpr_max_mb: int = 512
    cases_reading_delay_hours: int = 72
    cases_scan_interval_ms: int = 10_000
    cases_stats_interval_ms: int = 3_600_000
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_password_file: str = ""
    smtp_from_address: str = ""
    smtp_link_url: str = ""
    smtp_timeout_s: int = 30
    notices_digest_hour: int = 7
    notices_due_soon_hours: int = 24
    notices_retry_base_s: int = 60
    notices_retry_cap_s: int = 21_600
    notices_max_attempts: int = 20
    notices_silent_weeks: int = 4
    notices_quota_unused_weeks: int = 3
    notices_escalated: int = 3
    notices_escalated_of: int = 5
    backup_folder: str = ""
    backup_to_key: str = ""
    backup_every_hours: int = 24
    backup_keep: int = 7
    log_level: str = "info"

    def replace(self, **changes: Any) -> NodeConfig:
        return dataclasses.replace(self, **changes)

    def to_toml(self) -> str:
        data: dict[str, dict[str, Any]] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.attr)
            if isinstance(value, tuple):
                value = list(value)
            data.setdefault(setting.section, {})[setting.key] = value
        header = (
            "# tsfnode configuration. Edit, then restart the node.\n"
            "# [http] public_url: the address other nodes use to reach this one, when it is\n"
            "# not http://host:port (behind a reverse proxy or NAT); empty means host:port.\n"
            "# [gossip] and [liveness]: defaults suit 256 kbit/s uplinks and 300 ms RTT.\n"
            "# [intake] keep_private: private attributes kept after de-identification, as\n"
            '# "PRIVATE CREATOR:ee" (ee: low byte of the element, hex); empty removes all.\n'
            "# [transfer] relays: ids of nodes that hold mail for this one (when it sits\n"
            "# behind NAT); upload_kbit_s caps the uplink (day_upload_kbit_s during\n"
            "# day_hours, local time); relay_quota_mb: room for others' mail, 0: none.\n"
            "# [relay] enabled: this node holds mail for other nodes (it says so in its\n"
            "# directory record; off, offers made to it as a relay are refused); nodes:\n"
            "# the only nodes it holds mail for, empty: any node of the network.\n"
            "# [dicom] send_networks: where readers may send studies by C-STORE, as\n"
            '# networks such as "192.168.0.0/16"; empty: anywhere. calling_ae_titles: the\n'
            '# modalities and PACS that may send to the listener, "AE" or "AE@address";\n'
            "# empty: any. The timeouts close connections that say nothing or no DICOM.\n"
            "# [dicomweb] cors_origins: viewers served from another origin that may call\n"
            "# this node's DICOMweb, such as https://viewer.example.org.\n"
            "# [smtp] the mail server that sends people's notices (host empty: none);\n"
            '# security "starttls" (port 587), "tls" (465) or "none" (only on this machine);\n'
            "# link_url: the node's web address as people reach it, put in every e-mail.\n"
            "# [notices] digest_hour: when daily digests go (UTC); silent_weeks,\n"
            "# quota_unused_weeks, escalated of escalated_of: when coordinators are told.\n\n"
        )
        return header + tomli_w.dumps(data)


def load_config(path: Path) -> NodeConfig:
    """Read and check config.toml; NodeError (one line) for anything wrong."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NodeError(
            f"{where} is missing: is this a node directory? Create one with "
            "'tsfnode init DIR --name NAME'"
        ) from None
    except UnicodeDecodeError:
        raise NodeError(
            f"{where} is not UTF-8 text: restore it or run 'tsfnode init --force'"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NodeError(f"{where} is not valid TOML ({exc}): fix the file") from None
    values: dict[str, Any] = {}
    for section, content in data.items():
        known = _BY_SECTION.get(section)
        if known is None or not isinstance(content, dict):
            names = ", ".join(_BY_SECTION)
            raise NodeError(f"{where}: unknown section [{section}]; known: {names}")
        for key, value in content.items():
            setting = known.get(key)
            if setting is None:
                raise NodeError(f"{where}: unknown setting {key!r} in [{section}]")
            if type(value) is not setting.type:
                what = {
                    int: "an integer",
                    bool: "true or false",
                    str: "text",
                    list: "a list",
                }[setting.type]
                raise NodeError(f"{where}: [{section}] {key} must be {what}")
            values[setting.attr] = value
    for setting in SETTINGS:
        value = values.get(setting.attr, setting.default)
        problem = setting.check(value) if setting.check else None
        if problem:
            raise NodeError(f"{where}: [{setting.section}] {setting.key} {problem}")
    if "country" in values:
        values["country"] = values["country"].upper()
    if "name" not in values:
        raise NodeError(f"{where}: [node] name is missing or empty")
    values["name"] = values["name"].strip()
    if bool(values.get("http_tls_cert")) != bool(values.get("http_tls_key")):
        raise NodeError(f"{where}: [http] tls_cert and tls_key go together: give both or neither")
    if values.get("smtp_security") == "none" and not _is_loopback(values.get("smtp_host", "")):
        raise NodeError(
            f'{where}: [smtp] security = "none" only for a server on this machine'
            " (127.0.0.1, ::1, localhost): use starttls or tls"
        )
    if values.get("smtp_host") and not values.get("smtp_from_address"):
        raise NodeError(f"{where}: [smtp] from_address is missing (the notices' sender)")
    for key in (
        "intake_keep_private",
        "transfer_relays",
        "relay_nodes",
        "dicom_send_networks",
        "dicom_calling_ae_titles",
        "dicomweb_cors_origins",
        "http_trusted_proxies",
    ):
        if key in values:
            values[key] = tuple(values[key])
    return NodeConfig(**values)
