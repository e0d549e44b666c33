"""What the services of a running node share, handed to each as one value."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.identity import Identity
from tsfnode.clock import Clock
from tsfnode.config import NodeConfig
from tsfnode.network.directory import DirectoryService
from tsfnode.nodedir import NodeDir
from tsfnode.store import Store
from tsfnode.store.blobs import BlobStore


@dataclass(frozen=True)
class NodeContext:
    """The node's identity, settings, directory on disk, database, blob store, view of
    the network's directory, and clock: made once by the app (``tsfnode.app``), given to
    the transfer and case services."""

    identity: Identity
    config: NodeConfig
    node_dir: NodeDir
    store: Store
    blobs: BlobStore
    directory: DirectoryService
    clock: Clock
