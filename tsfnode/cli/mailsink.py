"""The demo's mail server: an SMTP sink on a free port of 127.0.0.1 (aiosmtpd, a test
and demo dependency, not the node's: ``pip install tsfnode[dev]``), where the demo
nodes send their e-mail notices. Each message is printed (recipient and subject) as it
arrives and kept in ``DIR/mail/NNNN.eml`` to be read whole. Nothing leaves the machine.
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import threading
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class MailSink:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self._count = 0
        self._lock = threading.Lock()
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self._count += 1
            path = self.folder / f"{self._count:04d}.eml"
        path.write_bytes(envelope.content)
        to = ", ".join(envelope.rcpt_tos)
        print(f"  ✉ {to}: {message['Subject']}  ({path})", flush=True)
        return "250 Message accepted"

    def start(self) -> bool:
        """Listen (False: aiosmtpd is not installed, the demo runs without e-mail)."""
        try:
            from aiosmtpd.controller import Controller
        except ImportError:
            return False
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._count = len(list(self.folder.glob("*.eml")))
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return True

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
