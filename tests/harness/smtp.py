"""A real SMTP server for tests and its messages: aiosmtpd's ``Controller`` on a free
port of 127.0.0.1, in its own thread. It can be told to refuse recipients (``answer``,
such as "550 ..." or "451 ..."), to take its time (``delay_s``, longer than the node's
timeout), or be stopped and started again on the same port (a server down, then back). Its
first start takes another free port if the one found was taken meanwhile (the machine
is shared).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.harness import pacs


class SmtpSink:
    def __init__(self) -> None:
        self.port = pacs.free_port()
        self._bound = False  # started once: the port is its own from then on
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.answer: str | None = None  # refuse every recipient with this answer
        self.delay_s = 0.0
        self._controller: Controller | None = None
        self._lock = threading.Lock()

    # aiosmtpd's handler hooks (run in the controller's thread and loop)
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.answer:
            return self.answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
            self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        # aiosmtpd logs every recipient at INFO ("mail.log"): not into the node's log
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        for attempt in range(pacs.PORT_ATTEMPTS):
            controller = Controller(self, hostname="127.0.0.1", port=self.port)
            try:
                controller.start()
            except OSError:  # the port found free was taken meanwhile by another program
                controller.loop.close()  # its own loop, which a failed start leaves open
                if self._bound or attempt == pacs.PORT_ATTEMPTS - 1:
                    raise
                self.port = pacs.free_port()
                continue
            self._controller, self._bound = controller, True
            return

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A real SMTP server on a free loopback port, stopped after the test."""
    server = SmtpSink()
    server.start()
    try:
        yield server
    finally:
        server.stop()
