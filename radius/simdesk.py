"""The RFC 5176 side of `conecta simulate`'s access points: one UDP socket per simulated NAS address.

They behave as CoovaChilli does: a request whose Request Authenticator or Message-Authenticator does
not verify is dropped; one without User-Name is dropped; a CoA-Request for a session being played
changes its rate (ChilliSpot-Bandwidth-Max-Down/-Up, kbit/s) and is ACKed, a Disconnect-Request ends
the session (the player sends its Stop) and is ACKed; a session that is not playing is NAKed with
Error-Cause 503 (Session-Context-Not-Found).
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from dataclasses import dataclass

from pyrad import packet
from pyrad.dictionary import Dictionary

log = logging.getLogger(__name__)
SESSION_CONTEXT_NOT_FOUND = 503


@dataclass
class Playing:
    """A session the player is playing: its rate now (bit/s, None: unlimited) and whether it was cut."""

    down: int | None
    ended: bool = False


def accept_rate(reply: packet.Packet) -> int | None:
    """The download rate an Access-Accept gives (ChilliSpot-Bandwidth-Max-Down, kbit/s), in bit/s."""
    return reply["ChilliSpot-Bandwidth-Max-Down"][0] * 1000 if "ChilliSpot-Bandwidth-Max-Down" in reply else None


class CoaDesk(threading.Thread):
    """Answers Disconnect- and CoA-Requests for the simulated access points, in a thread."""

    def __init__(self, secrets_by_ip: dict[str, str], dictionary: Dictionary) -> None:
        super().__init__(name="sim-coa", daemon=True)
        self.dictionary = dictionary
        self.selector = selectors.DefaultSelector()
        self.ports: dict[str, int] = {}
        for ip, secret in secrets_by_ip.items():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((ip, 0))
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, secret.encode())
            self.ports[ip] = sock.getsockname()[1]
        self.playing: dict[str, Playing] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def start_session(self, session_id: str, down: int | None) -> Playing:
        """A session starts playing at this rate."""
        with self.lock:
            state = self.playing[session_id] = Playing(down)
        return state

    def end_session(self, session_id: str) -> None:
        """The session is over: later requests for it are NAKed."""
        with self.lock:
            self.playing.pop(session_id, None)

    def stop(self) -> None:
        """Stop answering and close the sockets."""
        self.stopping.set()
        self.join(2)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()

    def run(self) -> None:
        """Answer until stopped."""
        while not self.stopping.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                try:
                    data, addr = key.fileobj.recvfrom(4096)
                    self.answer(key.fileobj, data, addr, key.data)
                except Exception:  # noqa: BLE001 - a bad request never stops the desk
                    log.exception("simulated access point: request not answered")

    def answer(self, sock: socket.socket, data: bytes, addr: tuple, secret: bytes) -> None:
        """Check one request and reply to it as CoovaChilli would (or drop it)."""
        try:
            req = packet.CoAPacket(packet=data, secret=secret, dict=self.dictionary)
        except packet.PacketError:
            return
        authentic = req.VerifyCoARequest() and (not req.message_authenticator or req.verify_message_authenticator())
        if not authentic or req.code not in (packet.CoARequest, packet.DisconnectRequest) or "User-Name" not in req:
            return
        sid = req["Acct-Session-Id"][0] if "Acct-Session-Id" in req else ""
        with self.lock:
            state = self.playing.get(sid)
            if state is not None and req.code == packet.CoARequest and "ChilliSpot-Bandwidth-Max-Down" in req:
                state.down = req["ChilliSpot-Bandwidth-Max-Down"][0] * 1000
            elif state is not None and req.code == packet.DisconnectRequest:
                state.ended = True
        reply = req.CreateReply()
        if state is None:
            reply.code = packet.CoANAK if req.code == packet.CoARequest else packet.DisconnectNAK
            reply["Error-Cause"] = SESSION_CONTEXT_NOT_FOUND
        sock.sendto(reply.ReplyPacket(), addr)
