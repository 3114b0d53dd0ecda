"""A real SMTP server for the tests (aiosmtpd on 127.0.0.1): keeps every message it accepts, or
refuses every recipient when told to."""

from __future__ import annotations

import socket
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


class _Handler:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201, N802
        if self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd serving on a free port of 127.0.0.1 until close()."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.handler = _Handler()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def messages(self) -> list[EmailMessage]:
        """Every message accepted so far."""
        return self.handler.messages

    def refuse(self, on: bool = True) -> None:
        """Refuse (550) every recipient from now on."""
        self.handler.refuse = on

    def close(self) -> None:
        """Stop the server."""
        self.controller.stop()
