"""A fake access point's RFC 5176 side, for tests of Disconnect- and CoA-Requests and of bad answers."""

from __future__ import annotations

import hashlib
import socket
import threading

from pyrad import packet

from tests.support.builders import SECRET

# How the fake answers a kind of request: "ack", "nak", "silent" (never), "forged" (an ACK signed with
# the wrong secret: a bad Response Authenticator), "bad-ma" (an ACK whose Response Authenticator is right
# but whose Message-Authenticator is not), "twice" (the same ACK sent two times).
ANSWERS = ("ack", "nak", "silent", "forged", "bad-ma", "twice")
REPLY_CODES = {packet.DisconnectRequest: (packet.DisconnectACK, packet.DisconnectNAK),
               packet.CoARequest: (packet.CoAACK, packet.CoANAK)}


class FakeCoaNas:
    """The NAS side of RFC 5176: checks each request's authenticators, keeps the raw bytes, and answers
    Disconnect- and CoA-Requests as told (`disconnect`, `coa`), a NAK with `error_cause` when given.

    With `hold` set, it answers only once the event is set: a NAS that takes its time.
    """

    def __init__(self, dictionary, answer: bool = True, hold: threading.Event | None = None,
                 disconnect: str = "ack", coa: str = "ack", error_cause: int | None = None,
                 host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.dictionary = dictionary
        self.hold = hold
        self.answers = {packet.DisconnectRequest: disconnect if answer else "silent", packet.CoARequest: coa}
        assert set(self.answers.values()) <= set(ANSWERS)
        self.error_cause = error_cause
        self.received: list[packet.Packet] = []
        self.raw: list[bytes] = []
        self.verified: list[bool] = []     # Request Authenticator and Message-Authenticator, per request
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def of(self, code: int) -> list[packet.Packet]:
        """The requests received with this code, in order."""
        return [p for p in self.received if p.code == code]

    def _serve(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            req = packet.CoAPacket(packet=data, secret=SECRET.encode(), dict=self.dictionary)
            self.raw.append(data)
            self.received.append(req)
            self.verified.append(bool(req.VerifyCoARequest() and req.message_authenticator
                                      and req.verify_message_authenticator()))
            if self.hold is not None and not self.hold.is_set():
                continue     # not yet: the client will retransmit
            self._answer(req, addr)

    def _answer(self, req: packet.Packet, addr: tuple) -> None:
        how = self.answers.get(req.code, "silent")
        if how == "silent":
            return
        ack, nak = REPLY_CODES[req.code]
        reply = req.CreateReply()
        reply.code = nak if how == "nak" else ack
        if how == "nak" and self.error_cause is not None:
            reply["Error-Cause"] = self.error_cause
        if how == "forged":
            reply.secret = b"not-the-shared-secret"
        reply.add_message_authenticator()
        raw = reply.ReplyPacket()
        if how == "bad-ma":
            raw = _spoil_message_authenticator(raw, req.authenticator)
        for _ in range(2 if how == "twice" else 1):
            self.sock.sendto(raw, addr)

    def close(self) -> None:
        """Stop listening."""
        self.running = False
        self.thread.join(2)
        self.sock.close()


def _spoil_message_authenticator(raw: bytes, request_authenticator: bytes) -> bytes:
    """The reply with one bit of its Message-Authenticator flipped and the Response Authenticator made
    right again over it (RFC 5176 3.3), so only the Message-Authenticator check can catch it."""
    body = bytearray(raw[20:])
    pos = 0
    while body[pos] != 80:          # Message-Authenticator: type 80, 16 octets of value
        pos += body[pos + 1]
    body[pos + 2] ^= 0x01
    authenticator = hashlib.md5(raw[:4] + request_authenticator + bytes(body) + SECRET.encode()).digest()
    return raw[:4] + authenticator + bytes(body)
