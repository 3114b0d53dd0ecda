"""The RFC 5176 port of the simulated access points (tests/support/nassim.py): a UDP listener on the
address the NAS is registered with, which checks each request as the real NAS does and lets the
simulator answer it (change the session's rate, end it, or say it knows no such session)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pyrad import packet


@dataclass
class Answer:
    """What the simulated NAS replies: ACK or NAK, with attributes (Error-Cause) and whether it signs
    the reply with a Message-Authenticator (RouterOS does; CoovaChilli's replies carry none)."""

    ack: bool
    attributes: dict = field(default_factory=dict)
    sign: bool = True


@dataclass
class Exchange:
    """One request as it arrived (bytes, decoded) and the reply code sent (None: dropped)."""

    raw: bytes
    request: packet.Packet
    reply_code: int | None


class CoaListener:
    """Receives Disconnect- and CoA-Requests for one simulated NAS. Requests whose Request Authenticator
    or Message-Authenticator does not verify are dropped silently (RFC 5176 3.5); the others go to
    `handle`, which returns an Answer, or None to drop the request as the NAS would."""

    def __init__(self, host: str, secret: bytes, dictionary, handle: Callable[[packet.Packet], Answer | None]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.secret = secret
        self.dictionary = dictionary
        self.handle = handle
        self.log: list[Exchange] = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        """The UDP port to register as the NAS's CoA port."""
        return self.sock.getsockname()[1]

    def close(self) -> None:
        """Stop listening."""
        self.running = False
        self.thread.join(2)
        self.sock.close()

    def _serve(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            self._one(data, addr)

    def _one(self, data: bytes, addr: tuple) -> None:
        try:
            req = packet.CoAPacket(packet=data, secret=self.secret, dict=self.dictionary)
        except packet.PacketError:
            return
        authentic = req.VerifyCoARequest() and (not req.message_authenticator or req.verify_message_authenticator())
        answer = self.handle(req) if authentic and req.code in (packet.DisconnectRequest, packet.CoARequest) else None
        if answer is None:
            self.log.append(Exchange(data, req, None))
            return
        reply = req.CreateReply()
        ack, nak = ((packet.DisconnectACK, packet.DisconnectNAK) if req.code == packet.DisconnectRequest
                    else (packet.CoAACK, packet.CoANAK))
        reply.code = ack if answer.ack else nak
        for name, value in answer.attributes.items():
            reply[name] = value
        if answer.sign:
            reply.add_message_authenticator()
        self.log.append(Exchange(data, req, reply.code))
        self.sock.sendto(reply.ReplyPacket(), addr)
