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
    retired: tuple[Identity, ...] = ()
    """The node's earlier keys (SPEC.md §8.5): bundles sealed to them still open here."""


class NodeService:
    """A service of the running node: what it keeps of the context, under the same names
    in each (``me`` is the node's public key, ``db`` the database's connection)."""

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.clock = context.clock
        self.identity = context.identity
        self.me = context.identity.public.key
        # This node's keys, the current one first: a bundle sealed to an earlier key (by
        # a peer that had not yet learnt of the rotation) is still for this node.
        self.keys = {k.public.key: k for k in (context.identity, *context.retired)}
        self.config = context.config
        self.node_dir = context.node_dir
        self.store = context.store
        self.db = context.store.db
        self.blobs = context.blobs  # the outbox's chunks (sealed here)
        self.directory = context.directory
