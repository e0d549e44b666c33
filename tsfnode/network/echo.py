"""Is this node reachable from outside? A peer connects back to it and says what it saw
(SPEC.md 7.3, ``POST /peer/v1/echo``): `tsfnode doctor` asks one or two peers.

The asked node connects only to an address the requesting node publishes in its own
signed directory record, never to one the request names freely: otherwise any admitted
node could make every other node a port scanner of any host. It answers a few echoes per
requester an hour (`EchoLimits`), a few at once in all, each within ECHO_TIMEOUT_S."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import aiohttp

from protocol.identity import PublicIdentity

ECHO_TIMEOUT_S = 5.0
ECHOES_PER_HOUR = 12  # per requesting node
ECHOES_AT_ONCE = 4  # in all
MAX_ECHO_REQUEST = 72 + 255 + 64


@dataclass
class EchoLimits:
    """The echoes answered per requester in the last hour, and those running; time is
    passed in."""

    per_hour: int = ECHOES_PER_HOUR
    at_once: int = ECHOES_AT_ONCE
    recent: dict[bytes, deque[int]] = field(default_factory=dict)
    running: int = 0

    def take(self, node: bytes, now: int) -> bool:
        times = self.recent.setdefault(node, deque())
        while times and now - times[0] >= 3_600_000:
            times.popleft()
        if len(times) >= self.per_hour or self.running >= self.at_once:
            return False
        times.append(now)
        self.running += 1
        if len(self.recent) > 4096:  # admitted nodes only reach here; keep it bounded
            for key in [k for k, v in self.recent.items() if not v]:
                del self.recent[key]
        return True

    def give_back(self) -> None:
        self.running -= 1


async def connect_back(address: str, expected: PublicIdentity, source: str = "") -> str:
    """What connecting to ``address`` shows: ``reachable`` (its /peer/v1/hello names the
    requester), ``other`` (something else answered), ``refused``, ``timeout``."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0) if source else None, limit=1)
    timeout = aiohttp.ClientTimeout(total=ECHO_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.get(f"{address.rstrip('/')}/peer/v1/hello", allow_redirects=False) as answer,
        ):
            if answer.status != 200:
                return "other"
            info = await answer.json(content_type=None)
            named = info.get("id") if isinstance(info, dict) else None
            return "reachable" if named == expected.text else "other"
    except TimeoutError:
        return "timeout"
    except (aiohttp.ClientSSLError, aiohttp.ContentTypeError, ValueError):
        return "other"  # something answered, not a node that can say who it is
    except aiohttp.ClientConnectorError:
        return "refused"
    except (aiohttp.ClientError, OSError):
        return "other"
