from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from bootstrap.keys import write_key
from bootstrap.network import demo_anchor
from tests.harness.cluster import configure
from tests.harness.inprocess import LocalNode, start_local_node
from tests.harness.lan import alone_on_the_lan
from tests.harness.nodes import tsfnode


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    """A freshly initialised node that listens on a free port of 127.0.0.1 and does not
    announce itself by mDNS (a test of the LAN turns it on, on 127.0.0.1 only, and holds
    tests.harness.lan's lock)."""
    directory = tmp_path / "erasme"
    result = tsfnode(
        "init", directory, "--name", "Hôpital Erasme", "--country", "BE", "--port", "0"
    )
    assert result.returncode == 0, result.stderr
    configure(directory, discovery={"mdns": False})
    return directory


@pytest.fixture
def lan() -> Iterator[None]:
    """This test alone, on this machine, announces and browses by mDNS."""
    with alone_on_the_lan():
        yield


@pytest.fixture
def anchor_key(tmp_path: Path) -> Path:
    """The demo network's anchor key (derived from a public phrase), as a file."""
    path = tmp_path / "demo-anchor.key"
    write_key(path, demo_anchor())
    return path


@pytest.fixture
async def local_node(tmp_path: Path, aiohttp_client: AiohttpClient) -> LocalNode:
    """A node's application in this process (tests.harness.inprocess), its clock held
    still at START_MS until the test moves it."""
    return await start_local_node(tmp_path / "cotonou", aiohttp_client)


# Seconds each file of the slow lane took on this two-core machine (xdist, two workers,
# 2026-12), so that the longest start first and the two workers end close together. A
# hint only: a file missing here goes after these, and a figure out of date costs time,
# never a result.
SLOW_FILE_SECONDS = {
    "tests/test_bench.py": 105,
    "tests/tsfnode/transfers/test_links.py": 100,
    "tests/tsfnode/transfers/test_kill.py": 85,
    "tests/tsfnode/transfers/test_relays.py": 70,
    "tests/tsfnode/test_network.py": 65,
    "tests/tsfnode/transfers/test_delivery.py": 65,
    "tests/tsfnode/test_web.py": 60,
    "tests/tsfnode/test_cases.py": 30,
    "tests/tsfnode/test_demo.py": 23,
    "tests/tsfnode/test_node_lifecycle.py": 22,
    "tests/tsfnode/intake/test_send.py": 19,
    "tests/tsfnode/test_dicomweb.py": 9,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files of the slow lane first, longest first, each file's tests kept together
    and in order.

    With pytest-xdist (``--dist loadfile --no-loadscope-reorder``) a file is one unit of
    work, so that what its tests share (a network of nodes built once per module) is built
    once, and units go to the workers in this order: the long files start first and the
    short ones fill the gaps at the end."""
    root = config.rootpath
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> tuple[bool, float]:
        if item.path not in slow_files:
            return (True, 0.0)
        name = item.path.relative_to(root).as_posix()
        return (False, -SLOW_FILE_SECONDS.get(name, 0))

    items.sort(key=rank)  # stable: the order of each file's tests is kept
