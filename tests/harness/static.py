"""A web application served as files from another origin than the node's: a folder on a
free loopback port, some of its files replaced (a viewer's configuration), every other
path answered with index.html as a single-page application's host does (OHIF's
``serve.json``: every route rewritten to index.html)."""

from __future__ import annotations

import contextlib
import http.server
import mimetypes
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    replaced: dict[str, bytes]

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        body = self.replaced.get(path)
        if body is None:
            found = Path(self.translate_path(path))
            if not found.is_file():
                body = (Path(self.directory) / "index.html").read_bytes()
                path = "/index.html"
            else:
                body = found.read_bytes()
        suffix = Path(path).suffix
        kind = TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Site:
    origin: str
    replaced: dict[str, bytes]
    """Paths answered with these bytes instead of the folder's file (set at any time)."""


@contextlib.contextmanager
def static_site(root: Path) -> Iterator[Site]:
    """``root`` served on a free port of 127.0.0.1, for as long as the context lasts."""
    replaced: dict[str, bytes] = {}
    handler = type("Handler", (_Handler,), {"replaced": replaced})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(handler, directory=str(root))
    )
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="static-site", daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_address[1]}", replaced)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
