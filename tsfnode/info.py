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


FORWARDED = web.RequestKey("tsfnode.forwarded", bool)  # a trusted proxy forwarded it (app.py)


def dicomweb_base_url(request: web.Request) -> str:
    """This service's URL as the client reached it (behind a trusted reverse proxy, the
    proxy's scheme and host: tsfnode.app's ``_behind_proxy``). Some clients
    (dicomweb-client) send a Host header without the port: the port the connection came
    in on is added then, unless a trusted proxy gave the host."""
    host = request.host
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    default = {"http": 80, "https": 443}.get(request.scheme)
    proxied = bool(request.get(FORWARDED))
    if (
        not proxied
        and not host.endswith("]")
        and ":" not in host
        and sockname
        and sockname[1] != default
    ):
        host = f"{host}:{sockname[1]}"
    return f"{request.scheme}://{host}/dicomweb"
