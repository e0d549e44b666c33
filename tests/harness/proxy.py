"""A userspace TCP proxy for fault tests: it forwards to a node and can refuse (and cut)
connections coming from chosen source addresses, to partition nodes on loopback; limit
the rate of what goes up, add latency, and cut every connection at intervals (the
netem qdisc is not available on these machines)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any


class Proxy:
    def __init__(self, listen_host: str, target: tuple[str, int]) -> None:
        self.listen_host = listen_host
        self.target = target
        self.blocked: set[str] = set()
        self.cut_after: int | None = None
        """Close every connection once this many bytes went up through the proxy."""
        self.rate: int = 0
        """Bytes per second going up (0: unlimited), shared by all connections."""
        self.down_rate: int = 0
        """Bytes per second coming down from the node (0: unlimited), shared likewise."""
        self.latency_s: float = 0.0
        """Added to every piece forwarded, in both directions."""
        self.cut_every_s: float = 0.0
        """Close every open connection this often (0: never)."""
        self.cuts = 0
        self._next_up = 0.0
        self._next_down = 0.0
        self._cutter: asyncio.Task[None] | None = None
        self._sent_up = 0
        self.port = 0
        self._conns: dict[str, set[asyncio.StreamWriter]] = {}
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._cutter = asyncio.create_task(self._cut_periodically())

    async def _cut_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.cut_every_s or 0.5)
            if self.cut_every_s and any(self._conns.values()):
                self.cuts += 1
                for conns in self._conns.values():
                    for w in list(conns):
                        w.close()

    async def _pace(self, nbytes: int, *, down: bool = False) -> None:
        """Wait for the shared link budget of that direction (a simple pacing)."""
        loop = asyncio.get_running_loop()
        if down:
            start = max(loop.time(), self._next_down)
            self._next_down = start + nbytes / self.down_rate
            await asyncio.sleep(max(0.0, self._next_down - loop.time()))
            return
        start = max(loop.time(), self._next_up)
        self._next_up = start + nbytes / self.rate
        await asyncio.sleep(max(0.0, self._next_up - loop.time()))

    @property
    def url(self) -> str:
        return f"http://{self.listen_host}:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        source = writer.get_extra_info("peername")[0]
        if source in self.blocked:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        if source in self.blocked:  # blocked while the upstream connection was opening:
            writer.close()  # block() could not cut it (not yet listed), so it would have
            up_writer.close()  # carried a partitioned node's requests for as long as kept
            return
        self._conns.setdefault(source, set()).update({writer, up_writer})

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool = False
        ) -> None:
            try:
                while data := await src.read(16384 if self.rate or self.down_rate else 65536):
                    if self.latency_s:
                        await asyncio.sleep(self.latency_s)
                    if up and self.rate:
                        await self._pace(len(data))
                    if not up and self.down_rate:
                        await self._pace(len(data), down=True)
                    if up and self.cut_after is not None:
                        self._sent_up += len(data)
                        if self._sent_up > self.cut_after:
                            writer.close()
                            up_writer.close()
                            return
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, up=True), pipe(up_reader, writer))
        self._conns.get(source, set()).difference_update({writer, up_writer})

    def block(self, sources: set[str]) -> None:
        self.blocked |= sources
        for source in sources:
            for w in self._conns.pop(source, set()):
                w.close()

    def unblock(self) -> None:
        self.blocked.clear()

    async def stop(self) -> None:
        if self._cutter is not None:
            self._cutter.cancel()
        if self._server is not None:
            self._server.close()
            for conns in self._conns.values():
                for w in conns:
                    w.close()
            await self._server.wait_closed()


class LoopThread:
    """An asyncio loop in a thread, for proxies that run beside synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
