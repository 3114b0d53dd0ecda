"""The RFC 5176 side of the simulated access points (tests/support/simbase.py): Disconnect- and
CoA-Requests arrive on a RadiusPort (the access point's own CoA port, as MikroTik's `/radius incoming`,
or the socket its accounting leaves from, as CoovaChilli's HS_COAPORT); each is checked as the real NAS
checks it and the simulator answers it (change the session's rate, end it, or say it knows no such
session)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyrad import packet

from tests.support.radiusport import RadiusPort


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
    """Receives Disconnect- and CoA-Requests for one simulated NAS on `port` (see `listen`). Requests
    whose Request Authenticator or Message-Authenticator does not verify are dropped silently (RFC 5176
    3.5); the others go to `handle`, which returns an Answer, or None to drop the request as the NAS
    would. Every request is kept in `log`."""

    def __init__(self, secret: bytes, dictionary, handle: Callable[[packet.Packet], Answer | None]) -> None:
        self.secret = secret
        self.dictionary = dictionary
        self.handle = handle
        self.log: list[Exchange] = []
        self.sock: RadiusPort | None = None
        self.own = False

    def listen(self, port: RadiusPort, own: bool) -> None:
        """Answer on `port` (made with `receive` as its on_request); `own`: close it with the listener."""
        self.sock, self.own = port, own

    @property
    def port(self) -> int:
        """The UDP port to register as the NAS's CoA port."""
        return self.sock.port

    def close(self) -> None:
        """Stop listening (the port is closed here only when it is the listener's own)."""
        if self.own:
            self.sock.close()

    def receive(self, data: bytes, addr: tuple) -> None:
        """One datagram with a Disconnect- or CoA-Request code, from `addr`."""
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
        self.sock.reply(reply.ReplyPacket(), addr)
