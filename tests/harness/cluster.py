"""A cluster of real node processes on loopback, each behind its own userspace proxy
(peers reach node i only through proxy i), admitted to a test network by the demo
anchor. Used by the network and transfer tests."""

from __future__ import annotations

import random
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tomli_w

from bootstrap.network import NetworkFile, demo_anchor
from tests.harness.nodes import RunningNode, get_json, tsfnode
from tests.harness.proxy import LoopThread, Proxy
from tests.harness.waiting import wait_for

FAST = {
    "gossip": {"interval_ms": 300, "fanout": 2, "budget_kib": 64},
    "liveness": {"probe_interval_ms": 400, "probe_timeout_ms": 200},
}


def configure(directory: Path, **sections: dict[str, Any]) -> None:
    path = directory / "config.toml"
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path.write_text(tomli_w.dumps(config), encoding="utf-8")


def node_id(directory: Path) -> str:
    out = tsfnode("status", directory).stdout
    return next(line.split()[1] for line in out.splitlines() if line.startswith("Id:"))


def add_records(directory: Path, records: Path) -> None:
    result = tsfnode("directory", directory, "--add", records)
    assert result.returncode == 0, result.stdout + result.stderr


def loopback_prefix() -> str:
    """A random 127.x.y (x from 1: 127.0.0.x is where single nodes and demos listen)."""
    draw = random.SystemRandom()
    return f"127.{draw.randint(1, 254)}.{draw.randint(0, 255)}"


def directory_names(url: str, kind: str) -> set[str]:
    return {e["name"] for e in get_json(f"{url}/api/v1/directory?kind={kind}")}


class Cluster:
    def __init__(
        self,
        tmp_path: Path,
        anchor_key: Path,
        n: int,
        *,
        direct: tuple[int, ...] = (),
        prefix: str = "",
        **sections: dict[str, Any],
    ) -> None:
        """``direct``: nodes that peers reach without their proxy (for throughput).
        Nodes listen on PREFIX.10, .11..., their proxies on PREFIX.100...; PREFIX is a
        127.x.y of 127.0.0.0/8 drawn at random, so that clusters of other test runs on
        this machine (whose nodes also take ephemeral ports on their addresses) do not
        share addresses with this one."""
        self.tmp = tmp_path
        self.anchor_key = anchor_key
        self._closed = False
        self.loop = LoopThread()
        self.dirs = [tmp_path / f"node{i}" for i in range(n)]
        prefix = prefix or loopback_prefix()
        self.hosts = [f"{prefix}.{10 + i}" for i in range(n)]
        self.proxies: list[Proxy] = []
        self.ports: list[int] = []
        self.nodes: list[RunningNode | None] = []
        self.network_file = tmp_path / "network.toml"
        for i, directory in enumerate(self.dirs):
            result = tsfnode(
                "init",
                directory,
                "--name",
                f"Hôpital {i}",
                "--country",
                "BJ",
                "--host",
                self.hosts[i],
                "--port",
                "0",
            )
            assert result.returncode == 0, result.stderr
        # Nodes listen on port 0: find their ports by a first start, then put proxies
        # in front (peers reach node i only through proxy i).
        self.ids = [node_id(d) for d in self.dirs]
        for i, directory in enumerate(self.dirs):
            port = self._free_port(self.hosts[i])
            self.ports.append(port)
            configure(directory, http={"port": port})
            proxy = Proxy(f"{prefix}.{100 + i}", (self.hosts[i], port))
            self.loop.run(proxy.start())
            self.proxies.append(proxy)
        network = NetworkFile(
            "demo",
            (demo_anchor().public,),
            seeds=(self.proxies[0].url,),
        )
        self.network_file.write_text(network.to_toml(), encoding="utf-8")
        for i, directory in enumerate(self.dirs):
            given = {**FAST, **sections}
            configure(
                directory,
                node={"network": str(self.network_file)},
                http={
                    "public_url": (
                        f"http://{self.hosts[i]}:{self.ports[i]}"
                        if i in direct
                        else self.proxies[i].url
                    ),
                    "source_address": self.hosts[i],
                    **given.pop("http", {}),  # the test's own (client_timeout_s)
                },
                discovery={"mdns": False},
                **given,
            )
            cert = self.tmp / f"cert{i}.tsfd"
            result = tsfnode(
                "admit",
                self.ids[i],
                "--network",
                self.network_file,
                "--key",
                anchor_key,
                "--out",
                cert,
            )
            assert result.returncode == 0, result.stderr
            add_records(directory, cert)

    @staticmethod
    def _free_port(host: str) -> int:
        import socket

        with socket.socket() as s:
            s.bind((host, 0))
            return int(s.getsockname()[1])

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Node 0, the network's seed, then the others side by side; returns once each
        answers. (A node that finds its seed not listening yet introduces itself again
        only after SEED_RETRY_MS, 30 s: the seed answers first.)"""
        self.nodes = []
        try:  # a node that does not start leaves none of the others running
            self.nodes.append(RunningNode(self.dirs[0]))
            others = [RunningNode(d, wait=False) for d in self.dirs[1:]]
            self.nodes.extend(others)
            for node in others:
                node.wait_ready(starting=len(others))
        except BaseException:
            self.close()
            raise

    def start_node(self, i: int) -> None:
        while len(self.nodes) <= i:
            self.nodes.append(None)
        assert self.nodes[i] is None, f"node {i} runs already"
        self.nodes[i] = RunningNode(self.dirs[i])

    def stop_node(self, i: int, signum: int = 15) -> int:
        node = self.nodes[i]
        assert node is not None, f"node {i} is not running"
        self.nodes[i] = None
        return node.stop(signum)

    def url(self, i: int) -> str:
        node = self.nodes[i]
        assert node is not None
        return node.url

    def live(self) -> Iterator[int]:
        return (i for i, n in enumerate(self.nodes) if n is not None)

    def partition(self, left: list[int], right: list[int]) -> None:
        """Each side's proxies refuse the other side, and have cut its open connections,
        when this returns."""
        for a, b in ((left, right), (right, left)):
            sources = {self.hosts[j] for j in b}
            for i in a:
                self.loop.run(_on_loop(self.proxies[i].block, sources))

    def wait_until_everyone_knows_everyone(self) -> None:
        names = {f"Hôpital {i}" for i in range(len(self.dirs))}
        wait_for(
            "every node knows every node",
            lambda: all(directory_names(self.url(i), "node") == names for i in self.every()),
        )

    def publish_group(self, at: int, name: str) -> str:
        """A group made with a coordinator key of its own, its records added at node
        ``at``, awaited at every node; the coordinator's id."""
        coordinator = self.tmp / f"coordinator-of-{name}.key"
        assert tsfnode("key", "new", coordinator).returncode == 0
        coordinator_id = tsfnode("key", "show", coordinator).stdout.split()[-1]
        add_records(self.dirs[at], self.new_group(self.tmp, name, coordinator_id))
        wait_for(
            f"the group {name} reaches every node",
            lambda: all(name in directory_names(self.url(i), "group") for i in self.every()),
        )
        return coordinator_id

    def every(self) -> range:
        return range(len(self.dirs))

    def new_group(self, tmp_path: Path, name: str, coordinator: str) -> Path:
        """Sign a group certificate and record with `tsfnode group create`."""
        out = tmp_path / f"{name}.tsfd"
        result = tsfnode(
            "group",
            "create",
            "--network",
            self.network_file,
            "--anchor-key",
            self.anchor_key,
            "--group-key",
            tmp_path / f"{name}.key",
            "--name",
            name,
            "--kind",
            "subspeciality",
            "--coordinator",
            coordinator,
            "--out",
            out,
        )
        assert result.returncode == 0, result.stderr
        return out

    def heal(self) -> None:
        for proxy in self.proxies:
            self.loop.run(_on_loop(proxy.unblock))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        for node in self.nodes:  # every node is stopped, even if one is slow to
            if node is not None:
                try:
                    node.stop()
                except Exception as exc:
                    errors.append(exc)
        for proxy in self.proxies:
            self.loop.run(proxy.stop())
        self.loop.close()
        if errors:
            raise errors[0]


async def _on_loop(fn: Callable[..., None], *args: Any) -> None:
    """Call ``fn`` on the proxies' loop (LoopThread.run waits for it to be done)."""
    fn(*args)


@contextmanager
def running(tmp_path: Path, anchor_key: Path, n: int) -> Iterator[Cluster]:
    """``n`` nodes started as a cluster, every one stopped after (a fixture's body)."""
    with Cluster(tmp_path, anchor_key, n) as c:
        c.start()
        yield c
