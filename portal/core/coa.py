"""Disconnect-Request client (RFC 5176): cut a session off on its access point.

Each request is retried with back-off (1 s, 2 s, 4 s) and its outcome recorded in `disconnects`.
"""

from __future__ import annotations

import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from pyrad import packet
from pyrad.dictionary import Dictionary
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from portal.core.macs import radius_mac
from portal.core.metrics import m
from portal.core.model import Disconnect, Nas, Session, utcnow

log = logging.getLogger(__name__)
BACKOFF = (1.0, 2.0, 4.0)


def send_disconnect(nas_ip: str, port: int, secret: bytes, dictionary: Dictionary,
                    attrs: dict[str, object], backoff: tuple[float, ...] = BACKOFF) -> tuple[str, int]:
    """Send one Disconnect-Request; return ('ack'|'nak'|'timeout', attempts)."""
    req = packet.CoAPacket(code=packet.DisconnectRequest, secret=secret, dict=dictionary)
    for name, value in attrs.items():
        if value is not None:
            req.AddAttribute(name, value)
    req.add_message_authenticator()
    raw = req.RequestPacket()
    with socket.socket(socket.AF_INET6 if ":" in nas_ip else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for attempt, wait in enumerate(backoff, start=1):
            sock.sendto(raw, (nas_ip, port))
            sock.settimeout(wait)
            try:
                while True:
                    data, addr = sock.recvfrom(4096)
                    if addr[0] != nas_ip:
                        continue
                    try:
                        reply = req.CreateReply(packet=data)
                    except packet.PacketError:
                        continue
                    if req.VerifyReply(reply, data):
                        return ("ack" if reply.code == packet.DisconnectACK else "nak"), attempt
            except TimeoutError:
                continue
    return "timeout", len(backoff)


class Disconnector:
    """Disconnects sessions on their NAS from a small thread pool: callers never wait for the back-off.

    Each request is recorded in `disconnects` as pending before it is sent, and its outcome (ack, nak
    or timeout) is written to the same row when it arrives. The RADIUS daemon uses it when a pool is
    spent, the staff console when an admin cuts a session.
    """

    def __init__(self, db_factory: sessionmaker, dictionary: Dictionary, backoff: tuple[float, ...] = BACKOFF,
                 workers: int = 4) -> None:
        self.db_factory = db_factory
        self.dictionary = dictionary
        self.backoff = backoff
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coa")

    def person_spent(self, user_id: int, reason: str) -> None:
        """Queue the disconnection of every open session of a person."""
        self.pool.submit(self._disconnect_person, user_id, reason)

    def disconnect_session(self, session_id: int, reason: str) -> int | None:
        """Record a pending Disconnect-Request for one session and send it in the background;
        return the record's id (None when there is no such session)."""
        record_id = self._record(session_id, reason)
        if record_id is not None:
            self.pool.submit(self._send, record_id)
        return record_id

    def stop(self) -> None:
        """Wait for requests under way."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _disconnect_person(self, user_id: int, reason: str) -> None:
        recent = utcnow() - timedelta(minutes=5)
        with self.db_factory() as db:
            sessions = db.scalars(select(Session.id).where(
                Session.user_id == user_id, Session.is_open.is_(True),
                ~Session.id.in_(select(Disconnect.session_id).where(Disconnect.requested_at > recent)))).all()
        for session_id in sessions:
            record_id = self._record(session_id, reason)
            if record_id is not None:
                self._send(record_id)

    def _record(self, session_id: int, reason: str) -> int | None:
        with self.db_factory.begin() as db:
            s = db.get(Session, session_id)
            if s is None:
                return None
            record = Disconnect(session_id=session_id, nas_id=s.nas_id, reason=reason)
            db.add(record)
            db.flush()
            return record.id

    def _send(self, record_id: int) -> None:
        try:
            with self.db_factory() as db:
                record = db.get(Disconnect, record_id)
                s, nas = db.get(Session, record.session_id), db.get(Nas, record.nas_id)
            if nas is None:   # removed meanwhile: nobody to ask
                result, attempts = "nak", 0
            else:
                attrs = {"User-Name": s.username, "Acct-Session-Id": s.acct_session_id,
                         "Calling-Station-Id": radius_mac(s.mac), "Framed-IP-Address": s.framed_ip}
                result, attempts = send_disconnect(nas.ip, nas.coa_port, nas.secret.encode(), self.dictionary,
                                                   attrs, self.backoff)
            with self.db_factory.begin() as db:
                row = db.get(Disconnect, record_id)
                row.result, row.attempts, row.finished_at = result, attempts, utcnow()
                m().disconnects.labels(result).inc()
            log.info("Disconnect-Request session %s on NAS %s (%s): %s after %d attempt(s)",
                     record.session_id, record.nas_id, record.reason, result, attempts)
        except Exception:  # noqa: BLE001 - a worker thread must log, never die silently
            log.exception("Disconnect-Request %s failed", record_id)
