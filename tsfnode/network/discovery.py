"""Finding nodes on the LAN: DNS-SD over mDNS (python-zeroconf), service ``_tsf._tcp``.

Each node announces itself (id, network, URL) and browses for others of the same
network; a node found is met through an introduction (peering.py), after which the
directory and gossip take over. A node that listens only on loopback announces itself
only on loopback: nothing of it reaches the LAN.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from tsfnode.logs import log

if TYPE_CHECKING:
    from tsfnode.network.peering import Peering

SERVICE = "_tsf._tcp.local."
RESOLVE_TIMEOUT_MS = 3000


class Discovery:
    def __init__(self, peering: Peering, *, interface: str = "") -> None:
        self.peering = peering
        host = peering.config.http_host
        loopback = (
            host in ("localhost",)
            or ipaddress.ip_address(host if host != "localhost" else "127.0.0.1").is_loopback
        )
        self.interface = interface or ("127.0.0.1" if loopback else "")
        self.found: dict[str, str] = {}  # node id text -> URL met
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        url = self.peering.addresses[0]
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        me = self.peering.identity.public
        self._zc = AsyncZeroconf(
            interfaces=[self.interface] if self.interface else InterfaceChoice.All,
            ip_version=IPVersion.V4Only,
        )
        addresses = [socket.inet_aton(host)] if _is_ipv4(host) and host != "0.0.0.0" else []  # noqa: S104
        self._info = AsyncServiceInfo(
            SERVICE,
            f"tsf-{me.text[:15]}.{SERVICE}",
            addresses=addresses or None,
            port=parts.port or 80,
            properties={
                "id": me.text,
                "network": self.peering.directory.network.name,
                "url": url,
            },
            server=f"tsf-{me.text[:7].lower()}.local.",
        )
        await self._zc.async_register_service(self._info)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE, handlers=[self._changed])
        log("mdns announced", interface=self.interface or "all")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._zc is not None:
            if self._info is not None:
                await self._zc.async_unregister_service(self._info)
            await self._zc.async_close()

    def _changed(
        self,
        zeroconf: Any,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            task = asyncio.get_running_loop().create_task(self._resolve(service_type, name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        if self._zc is None:
            return
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._zc.zeroconf, RESOLVE_TIMEOUT_MS):
            return
        props = {
            k.decode(errors="replace"): (v or b"").decode(errors="replace")
            for k, v in info.properties.items()
        }
        me = self.peering.identity.public.text
        if props.get("id") in (None, me) or props.get("network") != (
            self.peering.directory.network.name
        ):
            return
        url = props.get("url", "")
        host = urlsplit(url).hostname
        if not url or host in (None, "0.0.0.0"):  # noqa: S104
            addresses = info.parsed_addresses()
            if not addresses or info.port is None:
                return
            url = f"http://{addresses[0]}:{info.port}"
        if self.found.get(props["id"]) == url:
            return
        if await self.peering.introduce(url):
            self.found[props["id"]] = url
            log("mdns found node", node=props["id"][:7])


def _is_ipv4(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address)
    except ValueError:
        return False


async def browse(seconds: float, *, interface: str = "", network: str | None = None) -> list[str]:
    """The URLs of the nodes announced on the LAN within ``seconds`` (for a sender's
    workstation looking for its hospital's node)."""
    zc = AsyncZeroconf(
        interfaces=[interface] if interface else InterfaceChoice.All,
        ip_version=IPVersion.V4Only,
    )
    names: set[str] = set()

    def changed(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            names.add(name)

    browser = AsyncServiceBrowser(zc.zeroconf, SERVICE, handlers=[changed])
    try:
        await asyncio.sleep(seconds)
        urls = []
        for name in sorted(names):
            info = AsyncServiceInfo(SERVICE, name)
            if not await info.async_request(zc.zeroconf, RESOLVE_TIMEOUT_MS):
                continue
            props = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
            if network is not None and props.get("network") != network:
                continue
            url = props.get("url", "")
            if not url or urlsplit(url).hostname in (None, "0.0.0.0"):  # noqa: S104
                addresses = info.parsed_addresses()
                if not addresses or info.port is None:
                    continue
                url = f"http://{addresses[0]}:{info.port}"
            urls.append(url)
        return urls
    finally:
        await browser.async_cancel()
        await zc.async_close()
