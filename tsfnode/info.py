"""What a node says about itself, to peers and to its own people."""

from __future__ import annotations

from aiohttp import web
from aiohttp.helpers import ChainMapProxy

from protocol import PROTOCOL_VERSION
from tsfnode import __version__
from tsfnode.appkeys import CONFIG, IDENTITY


def node_info(app: web.Application | ChainMapProxy) -> dict[str, object]:
    config = app[CONFIG]
    return {
        "id": app[IDENTITY].public.text,
        "name": config.name,
        "country": config.country,
        "network": config.network,
        "version": __version__,
        "protocol": PROTOCOL_VERSION,
    }
