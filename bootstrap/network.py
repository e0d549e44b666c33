"""Network files: a network's name, trust anchors and seed peers (TOML).

name = "demo"
description = "..."
anchors = ["RUR5U3N-I53CF3N-..."]   # ids (public keys) of the trust anchors
seeds = ["https://tsf.example.org"] # nodes to contact first
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from protocol.directory import Network
from protocol.errors import MalformedError
from protocol.identity import Identity, PublicIdentity

NETWORKS_DIR = Path(__file__).parent / "networks"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

# The demo network's anchor is derived from a public phrase: anyone can admit nodes to
# it. It exists for `make demo` and tests on 127.0.0.1; never use it for real patients.
DEMO_ANCHOR_PHRASE = b"tsf demo network anchor - public, never for real patients"


def demo_anchor() -> Identity:
    return Identity(hashlib.sha256(DEMO_ANCHOR_PHRASE).digest())


class NetworkFileError(Exception):
    """A network file is missing or not valid; the message says which and why."""


@dataclass(frozen=True)
class NetworkFile:
    name: str
    anchors: tuple[PublicIdentity, ...]
    seeds: tuple[str, ...] = ()
    description: str = ""

    @property
    def network(self) -> Network:
        return Network(self.name, frozenset(a.key for a in self.anchors))

    def to_toml(self) -> str:
        return tomli_w.dumps(
            {
                "name": self.name,
                "description": self.description,
                "anchors": [a.text for a in self.anchors],
                "seeds": list(self.seeds),
            }
        )


def parse_network(text: str, where: str) -> NetworkFile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NetworkFileError(f"{where} is not valid TOML ({exc})") from None
    unknown = set(data) - {"name", "description", "anchors", "seeds"}
    if unknown:
        raise NetworkFileError(f"{where}: unknown setting {sorted(unknown)[0]!r}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise NetworkFileError(f"{where}: name must be lower-case letters, digits and '-'")
    anchors = data.get("anchors")
    if not isinstance(anchors, list) or not anchors:
        raise NetworkFileError(f"{where}: anchors must list at least one anchor id")
    try:
        parsed = tuple(PublicIdentity.from_text(str(a)) for a in anchors)
    except MalformedError as exc:
        raise NetworkFileError(f"{where}: an anchor id is wrong: {exc}") from None
    seeds = data.get("seeds", [])
    if not isinstance(seeds, list) or not all(
        isinstance(s, str) and s.startswith(("http://", "https://")) for s in seeds
    ):
        raise NetworkFileError(f"{where}: seeds must be a list of http(s) URLs")
    description = data.get("description", "")
    return NetworkFile(name, parsed, tuple(seeds), str(description))


def load_network(name_or_path: str, *, base: Path | None = None) -> NetworkFile:
    """A network by name (bootstrap/networks/NAME.toml) or by file path (relative
    paths from ``base``)."""
    if _NAME.match(name_or_path):
        path = NETWORKS_DIR / f"{name_or_path}.toml"
    else:
        path = Path(name_or_path)
        if base is not None and not path.is_absolute():
            path = base / path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in NETWORKS_DIR.glob("*.toml")))
        raise NetworkFileError(
            f"network {name_or_path!r} not found ({path}); known networks: {known}"
        ) from None
    return parse_network(text, str(path))
