"""How many connections (or requests, or DICOM associations) each client address holds
at once, and the cap on it: one address (a scanner, a flood from one host) cannot take
every place the node has. A hospital behind NAT shares one address, so caps are
generous (`[http] max_connections_per_address`, `[dicom] max_associations_per_address`).

Used by the HTTP server for its connections (node.py `limit_connections`), by the
application for requests that a trusted reverse proxy forwards (app.py, where every
client shares the proxy's connections), and by the DICOM listener."""

from __future__ import annotations

import ipaddress
import threading
from collections import Counter
from typing import Any

# Said before any request is read (no language to choose from yet): in both languages.
BUSY_TEXT = (
    "503: trop de connexions depuis votre adresse à la fois ({cap} au plus) ; réessayez"
    " · too many connections from your address at once ({cap} at most); try again"
)


class PerAddress:
    """Places held per address, at most ``cap`` each (0: no cap). Thread-safe: the
    DICOM listener takes and gives places from pynetdicom's threads."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.refused = 0

    def take(self, address: str) -> bool:
        """One more place for ``address``; False (and counted) when it holds ``cap``."""
        with self._lock:
            if self.cap and self._held[address] >= self.cap:
                self.refused += 1
                return False
            self._held[address] += 1
            return True

    def give(self, address: str) -> None:
        with self._lock:
            self._held[address] -= 1
            if self._held[address] <= 0:
                del self._held[address]

    def held(self, address: str) -> int:
        with self._lock:
            return self._held[address]


def busy_answer(cap: int) -> bytes:
    """The whole HTTP answer written to a connection over the cap, before closing it."""
    body = BUSY_TEXT.format(cap=cap).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 10\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def is_trusted(address: str, trusted: list[Any]) -> bool:
    """Whether ``address`` is one of the reverse proxies in ``[http] trusted_proxies``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)
