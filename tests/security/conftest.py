from __future__ import annotations

import pytest

from tests.harness.inprocess import LocalNode


@pytest.fixture
async def node(local_node: LocalNode) -> LocalNode:
    """A node in this process with a reader (marie) and a sender (koffi)."""
    await local_node.account("marie", "reader")
    await local_node.account("koffi", "sender")
    return local_node
