from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from pytest_aiohttp import AiohttpClient

from bootstrap.keys import write_key
from bootstrap.network import demo_anchor
from tests.harness.cluster import Cluster, configure, running
from tests.harness.inprocess import LocalNode, start_local_node
from tests.harness.lan import alone_on_the_lan
from tests.harness.nodes import tsfnode
from tests.harness.pacs import storescp  # noqa: F401  (a fixture, for every test)
from tests.harness.smtp import sink  # noqa: F401  (a fixture, for every test)

# Hypothesis's per-example deadline is a timing assertion: on this shared machine an
# example of 0.3 s failed a property that holds. Examples are bounded in count instead.
settings.register_profile("tsfnode", deadline=None)
settings.load_profile("tsfnode")

# A node's default time zone is the system's: UTC for every test, on any machine (and for
# the node processes they start), unless a test sets a node's or a person's own.
os.environ["TZ"] = "UTC"


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
def cluster(request: pytest.FixtureRequest, tmp_path: Path, anchor_key: Path) -> Iterator[Cluster]:
    """A started cluster of as many real nodes as the test module's ``N`` says."""
    with running(tmp_path, anchor_key, request.module.N) as c:
        yield c


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


# Seconds the longest files took on this two-core machine (pytest-xdist, 2026-12), so
# that they start first and the workers end close together. A hint only: a file missing
# here goes after these (a file of the slow lane before the others), and a figure out of
# date costs time, never a result.
FILE_SECONDS = {
    "tests/tsfnode/transfers/test_links.py": 125,
    "tests/tsfnode/test_web.py": 80,
    "tests/tsfnode/test_tour.py": 75,  # four walks on one network
    "tests/tsfnode/transfers/test_kill.py": 65,
    "tests/tsfnode/test_cases.py": 60,
    "tests/tsfnode/transfers/test_delivery.py": 55,
    "tests/test_bench.py": 50,
    "tests/tsfnode/test_network.py": 45,
    "tests/tsfnode/test_demo.py": 40,
    "tests/tsfnode/test_node_lifecycle.py": 40,
    "tests/tsfnode/transfers/test_relays.py": 40,
    "tests/tsfnode/intake/test_compress.py": 35,  # with the intake of every real file
    "tests/tsfnode/intake/test_anonymize_real_data.py": 25,
    "tests/tsfnode/test_dicomweb.py": 20,
    "tests/tsfnode/intake/test_send.py": 20,
    "tests/tsfnode/test_viewer_render.py": 12,
    "tests/simulations/test_casesim.py": 25,
    "tests/simulations/test_ensemble.py": 15,
    "tests/tsfnode/test_admin.py": 11,
}
UNLISTED_SLOW_SECONDS = 10


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest files first (FILE_SECONDS, then the slow lane's), each file's tests
    kept together and in order.

    With pytest-xdist (``--dist loadfile --no-loadscope-reorder``) a file is one unit of
    work, so that what its tests share (a network of nodes built once per module) is built
    once, and units go to the workers in this order: the long files start first and the
    short ones fill the gaps at the end."""
    root = config.rootpath
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def seconds(item: pytest.Item) -> float:
        known = FILE_SECONDS.get(item.path.relative_to(root).as_posix())
        if known is not None:
            return known
        return UNLISTED_SLOW_SECONDS if item.path in slow_files else 0

    items.sort(key=lambda item: -seconds(item))  # stable: each file's order is kept
