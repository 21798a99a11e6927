"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, on a free port, keeping what it receives.

`Controller(port=0)` cannot report the port it got, so a free port is picked first. The server
can be stopped and started again on the same port (a new Controller each time: a stopped one
has closed its event loop).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage

    def part(self, content_type: str) -> str:
        """The decoded body part of the given type (text/plain, text/html)."""
        found = self.message.get_body(preferencelist=(content_type.split("/")[1],))
        assert found is not None and found.get_content_type() == content_type, content_type
        return found.get_content()


@dataclass
class CollectingHandler:
    """Accepts every message, except for the addresses in `refused` (550 at RCPT)."""

    refused: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refused:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        raw = bytes(envelope.original_content or envelope.content)
        message = BytesParser(policy=policy.default).parsebytes(raw)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), raw, message))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    """Start/stop a collecting SMTP server on 127.0.0.1:`port`."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.handler = CollectingHandler()
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        self._controller = Controller(self.handler, hostname=self.host, port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
