"""Typed keys of the node's aiohttp applications, declared in one place."""

from __future__ import annotations

import asyncio

from aiohttp import web

from protocol.identity import Identity
from tsfnode.cases.service import CaseService
from tsfnode.config import NodeConfig
from tsfnode.images.render import Renderer
from tsfnode.mail.service import MailService
from tsfnode.network.directory import DirectoryService
from tsfnode.network.echo import EchoLimits
from tsfnode.network.nearest import SpeedTests
from tsfnode.network.peering import Peering
from tsfnode.nodedir import NodeDir
from tsfnode.store import Store
from tsfnode.store.blobs import BlobStore
from tsfnode.tasks import Turns
from tsfnode.transfers.service import TransferService

CONFIG = web.AppKey("config", NodeConfig)
NODE_DIR = web.AppKey("node_dir", NodeDir)
IDENTITY = web.AppKey("identity", Identity)
STORE = web.AppKey("store", Store)
BLOBS = web.AppKey("blobs", BlobStore)
STARTED_MS = web.AppKey("started_ms", int)
DIRECTORY = web.AppKey("directory", DirectoryService)
PEERING = web.AppKey("peering", Peering)
TRANSFERS = web.AppKey("transfers", TransferService)
CASES = web.AppKey("cases", CaseService)
MAIL = web.AppKey("mail", MailService)  # the e-mail queue's sender
NEAREST_BUSY = web.AppKey("nearest_busy", asyncio.Lock)  # on /api/: one measurement at a time
SPEED_TESTS = web.AppKey("speed_tests", SpeedTests)  # on /peer/: the tests served at once
ECHO_LIMITS = web.AppKey("echo_limits", EchoLimits)  # on /peer/: the echoes answered
RENDERER = web.AppKey("renderer", Renderer)  # decoded frames, shared by the viewer and DICOMweb
# DICOMweb's transcodings at once (dicomweb/service.py), on the root: /metrics shows them
TRANSCODINGS = web.AppKey("transcodings", Turns)
