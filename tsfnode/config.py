"""The node's configuration file (config.toml): read strictly, written by `init`."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from tsfnode.errors import NodeError

DEFAULT_PORT = 8470


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    name: str
    country: str = ""
    network: str = "demo"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    public_url: str = ""
    log_level: str = "info"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_toml(self) -> str:
        data = {
            "node": {"name": self.name, "country": self.country, "network": self.network},
            "http": {"host": self.host, "port": self.port, "public_url": self.public_url},
            "log": {"level": self.log_level},
        }
        header = (
            "# tsfnode configuration. Edit, then restart the node.\n"
            "# [http] public_url: the address other nodes use to reach this one, when it is\n"
            "# not http://host:port (behind a reverse proxy or NAT); empty means host:port.\n\n"
        )
        return header + tomli_w.dumps(data)


_SECTIONS: dict[str, dict[str, type]] = {
    "node": {"name": str, "country": str, "network": str},
    "http": {"host": str, "port": int, "public_url": str},
    "log": {"level": str},
}
_LEVELS = ("debug", "info", "warning", "error")


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
        if section not in _SECTIONS or not isinstance(content, dict):
            known = ", ".join(_SECTIONS)
            raise NodeError(f"{where}: unknown section [{section}]; known: {known}")
        for key, value in content.items():
            expected = _SECTIONS[section].get(key)
            if expected is None:
                raise NodeError(f"{where}: unknown setting {key!r} in [{section}]")
            if type(value) is not expected:
                what = "an integer" if expected is int else "text"
                raise NodeError(f"{where}: [{section}] {key} must be {what}")
            values[f"{section}.{key}"] = value
    name = values.get("node.name", "").strip()
    if not name:
        raise NodeError(f"{where}: [node] name is missing or empty")
    port = values.get("http.port", DEFAULT_PORT)
    if not 0 <= port <= 65535:
        raise NodeError(f"{where}: [http] port must be between 0 and 65535, not {port}")
    host = values.get("http.host", "127.0.0.1")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise NodeError(f"{where}: [http] host must be an IP address, not {host!r}") from None
    level = values.get("log.level", "info")
    if level not in _LEVELS:
        raise NodeError(f"{where}: [log] level must be one of {', '.join(_LEVELS)}")
    country = values.get("node.country", "")
    if country and (len(country) != 2 or not country.isalpha()):
        raise NodeError(f"{where}: [node] country must be a two-letter code such as BE or BJ")
    return NodeConfig(
        name=name,
        country=country.upper(),
        network=values.get("node.network", "demo"),
        host=host,
        port=port,
        public_url=values.get("http.public_url", ""),
        log_level=level,
    )
