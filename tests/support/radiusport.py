"""The RADIUS side of a simulated access point: one UDP socket towards Conecta."""

from __future__ import annotations

import logging
import queue
import socket
import threading
from collections.abc import Callable

from pyrad import packet

log = logging.getLogger(__name__)


class RadiusPort:
    """One UDP socket of the NAS towards Conecta: requests out and their replies in and, when
    `on_request` is given, Disconnect-/CoA-Requests in on the same socket (CoovaChilli's CoA port
    is also where its accounting and MAC authentication come from). `on_request` runs in a thread
    of its own, one request at a time, so it may send on this port and wait for the reply (a
    Disconnect-Request's Stop)."""

    def __init__(self, source: str, server: tuple[str, tuple[int, int]], secret: str, dictionary,
                 on_request: Callable[[bytes, tuple], None] | None = None, timeout: float = 2.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.server, self.secret, self.dictionary = server, secret.encode(), dictionary
        self.on_request, self.timeout = on_request, timeout
        self.pending: dict[int, tuple[packet.Packet, threading.Event, list]] = {}
        self.lock = threading.Lock()        # one request in flight: ids stay unique
        self.running = True
        self.requests: queue.SimpleQueue[tuple[bytes, tuple] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()
        self.worker = None
        if on_request is not None:
            self.worker = threading.Thread(target=self._serve_requests, daemon=True)
            self.worker.start()

    def auth_packet(self, **attrs) -> packet.AuthPacket:
        """An empty Access-Request for this NAS."""
        return packet.AuthPacket(code=packet.AccessRequest, secret=self.secret, dict=self.dictionary, **attrs)

    def acct_packet(self, **attrs) -> packet.AcctPacket:
        """An empty Accounting-Request for this NAS."""
        return packet.AcctPacket(secret=self.secret, dict=self.dictionary, **attrs)

    def send(self, req: packet.Packet, retries: int = 2) -> packet.Packet | None:
        """Send and wait for the verified reply, retransmitting the same bytes; None after the retries."""
        with self.lock:
            req.id = req.CreateID()
            raw = req.RequestPacket()
            box: list = []
            done = threading.Event()
            self.pending[req.id] = (req, done, box)
            address = (self.server[0], self.server[1][1 if req.code == packet.AccountingRequest else 0])
            try:
                for _ in range(retries + 1):
                    self.sock.sendto(raw, address)
                    if done.wait(self.timeout):
                        return box[0]
                return None
            finally:
                self.pending.pop(req.id, None)

    def _receive(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            if data[:1] in (bytes([packet.DisconnectRequest]), bytes([packet.CoARequest])):
                if self.on_request is not None:
                    self.requests.put((data, addr))
                continue
            waiting = self.pending.get(data[1]) if len(data) > 1 else None
            if waiting is None:
                continue
            req, done, box = waiting
            try:
                reply = req.CreateReply(packet=data)
            except packet.PacketError:
                continue
            if req.VerifyReply(reply, data):
                box.append(reply)
                done.set()

    def _serve_requests(self) -> None:
        while (item := self.requests.get()) is not None:
            try:
                self.on_request(*item)
            except Exception:  # noqa: BLE001 - the port keeps answering (the test sees the log)
                log.exception("simulated NAS: request from %s not handled", item[1])

    def reply(self, data: bytes, addr: tuple) -> None:
        """Send raw bytes back to where a request came from."""
        self.sock.sendto(data, addr)

    def close(self) -> None:
        """Stop receiving and close the socket."""
        self.running = False
        self.thread.join(2)
        if self.worker is not None:
            self.requests.put(None)
            self.worker.join(2)
        self.sock.close()
