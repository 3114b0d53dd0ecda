"""A fake access point's RFC 5176 side, for tests of Disconnect-Requests."""

from __future__ import annotations

import socket
import threading

from pyrad import packet

from tests.support.builders import SECRET


class FakeCoaNas:
    """The NAS side of RFC 5176: verifies Disconnect-Requests and answers ACK (or stays silent).

    With `hold` set, it answers only once the event is set: a NAS that takes its time.
    """

    def __init__(self, dictionary, answer: bool = True, hold: threading.Event | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.dictionary = dictionary
        self.answer = answer
        self.hold = hold
        self.received: list[packet.Packet] = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            req = packet.CoAPacket(packet=data, secret=SECRET.encode(), dict=self.dictionary)
            assert req.VerifyCoARequest() and req.verify_message_authenticator()
            self.received.append(req)
            if self.hold is not None and not self.hold.is_set():
                continue     # not yet: the client will retransmit
            if self.answer:
                reply = req.CreateReply()
                reply.code = packet.DisconnectACK
                self.sock.sendto(reply.ReplyPacket(), addr)

    def close(self) -> None:
        """Stop listening."""
        self.running = False
        self.thread.join(2)
        self.sock.close()
