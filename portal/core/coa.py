"""Dynamic Authorization client (RFC 5176): Disconnect-Request and CoA-Request to an access point.

One exchange for both: Message-Authenticator sent, retried with back-off (1 s, 2 s, 4 s), the answer
verified (Response Authenticator, Message-Authenticator when present, the right code) and its
Error-Cause kept. The Disconnector records each Disconnect-Request in `disconnects`; the slow lane
(radius/slowlane.py) records its CoA-Requests in `coa_requests`.
"""

from __future__ import annotations

import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
# What answers each request (RFC 5176 2.1, 2.2): its ACK and its NAK.
ANSWERS = {packet.DisconnectRequest: (packet.DisconnectACK, packet.DisconnectNAK),
           packet.CoARequest: (packet.CoAACK, packet.CoANAK)}
# Access points that take no Dynamic Authorization at all: pfSense and OPNsense re-authenticate every
# minute instead; openNDS hands clients over without RADIUS.
NO_COA_VENDORS = ("pfsense", "opennds")
ERROR_CAUSES = {201: "Residual-Session-Context-Removed", 401: "Unsupported-Attribute", 402: "Missing-Attribute",
                403: "NAS-Identification-Mismatch", 404: "Invalid-Request", 405: "Unsupported-Service",
                406: "Unsupported-Extension", 407: "Invalid-Attribute-Value", 501: "Administratively-Prohibited",
                502: "Request-Not-Routable", 503: "Session-Context-Not-Found", 504: "Session-Context-Not-Removable",
                505: "Other-Proxy-Processing-Error", 506: "Resources-Unavailable", 507: "Request-Initiated"}


@dataclass(frozen=True)
class Outcome:
    """What came of one request: ack, nak, timeout, or no-coa (nothing sent: the NAS takes none)."""

    result: str
    attempts: int
    error_cause: int | None = None
    ignored: int = 0          # answers dropped: bad authenticator, wrong code, another sender

    def describe(self) -> str:
        """The outcome in a log line: no personal data, numbers and RFC names only."""
        text = f"{self.result} after {self.attempts} attempt(s)"
        if self.error_cause is not None:
            text += f", Error-Cause {self.error_cause} {ERROR_CAUSES.get(self.error_cause, '')}".rstrip()
        if self.ignored:
            text += f"; {self.ignored} answer(s) that failed verification ignored (wrong secret?)"
        return text


def takes_coa(vendor: str, coa_port: int | None) -> bool:
    """True when an access point of `vendor` registered with `coa_port` listens for RFC 5176 requests."""
    return bool(coa_port) and vendor not in NO_COA_VENDORS


def _error_cause(reply: packet.Packet) -> int | None:
    value = dict.get(reply, 101)     # Error-Cause, raw: the dictionary may lack a name for its value
    return int.from_bytes(value[0], "big") if value and len(value[0]) == 4 else None


def _verified(req: packet.CoAPacket, data: bytes, codes: tuple[int, int]) -> packet.Packet | None:
    """The decoded answer when it belongs to `req` and verifies; None otherwise."""
    if len(data) < 20 or data[0] not in codes:
        return None
    try:
        reply = req.CreateReply(packet=data)
    except (packet.PacketError, KeyError, ValueError, TypeError, IndexError):
        return None
    return reply if req.VerifyReply(reply, data) else None


def exchange(nas_ip: str, port: int, secret: bytes, dictionary: Dictionary, code: int,
             attrs: list[tuple[str, object]], backoff: tuple[float, ...] = BACKOFF) -> Outcome:
    """Send one Disconnect- or CoA-Request (`code`) and wait for its verified answer, retrying."""
    req = packet.CoAPacket(code=code, secret=secret, dict=dictionary)
    for name, value in attrs:
        if value is not None:
            req.AddAttribute(name, value)
    req.add_message_authenticator()
    raw = req.RequestPacket()
    ignored = 0
    with socket.socket(socket.AF_INET6 if ":" in nas_ip else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for attempt, wait in enumerate(backoff, start=1):
            sock.sendto(raw, (nas_ip, port))
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:   # junk never extends the wait
                sock.settimeout(left)
                try:
                    data, addr = sock.recvfrom(4096)
                except TimeoutError:
                    break
                reply = _verified(req, data, ANSWERS[code]) if addr[0] == nas_ip else None
                if reply is None:
                    ignored += 1
                    continue
                result = "ack" if reply.code == ANSWERS[code][0] else "nak"
                return Outcome(result, attempt, _error_cause(reply), ignored)
    return Outcome("timeout", len(backoff), None, ignored)


def session_identity(s: Session) -> list[tuple[str, object]]:
    """What a NAS needs to find the session (RFC 5176 3): its user, accounting session, MAC and address."""
    return [("User-Name", s.username), ("Acct-Session-Id", s.acct_session_id),
            ("Calling-Station-Id", radius_mac(s.mac)), ("Framed-IP-Address", s.framed_ip)]


def send_disconnect(nas: Nas, s: Session, dictionary: Dictionary, backoff: tuple[float, ...] = BACKOFF) -> Outcome:
    """Ask `nas` to end session `s`."""
    if not takes_coa(nas.vendor, nas.coa_port):
        return Outcome("no-coa", 0)
    return exchange(nas.ip, nas.coa_port, nas.secret.encode(), dictionary, packet.DisconnectRequest,
                    session_identity(s), backoff)


def send_coa(nas: Nas, s: Session, dictionary: Dictionary, rates: list[tuple[str, object]],
             backoff: tuple[float, ...] = BACKOFF) -> Outcome:
    """Ask `nas` to change the rates of session `s` (the NAS's own attributes in `rates`)."""
    if not takes_coa(nas.vendor, nas.coa_port):
        return Outcome("no-coa", 0)
    return exchange(nas.ip, nas.coa_port, nas.secret.encode(), dictionary, packet.CoARequest,
                    session_identity(s) + rates, backoff)


class Disconnector:
    """Disconnects sessions on their NAS from a small thread pool: callers never wait for the back-off.

    Each request is recorded in `disconnects` as pending before it is sent, and its outcome (ack, nak,
    timeout or no-coa) is written to the same row when it arrives. The RADIUS daemon uses it when a pool
    is spent (and when the slow lane cannot be set), the staff console when an admin cuts a session.
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
        record_id = self.record(session_id, reason)
        if record_id is not None:
            self.pool.submit(self.send, record_id)
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
            record_id = self.record(session_id, reason)
            if record_id is not None:
                self.send(record_id)

    def record(self, session_id: int, reason: str) -> int | None:
        """A pending Disconnect-Request for a session, recorded before it is sent; its id."""
        with self.db_factory.begin() as db:
            s = db.get(Session, session_id)
            if s is None:
                return None
            record = Disconnect(session_id=session_id, nas_id=s.nas_id, reason=reason)
            db.add(record)
            db.flush()
            return record.id

    def send(self, record_id: int) -> Outcome | None:
        """Send a recorded Disconnect-Request, wait for its outcome and record it (None on a fault)."""
        try:
            with self.db_factory() as db:
                record = db.get(Disconnect, record_id)
                s, nas = db.get(Session, record.session_id), db.get(Nas, record.nas_id)
            # A NAS removed meanwhile: nobody to ask.
            outcome = Outcome("nak", 0) if nas is None else send_disconnect(nas, s, self.dictionary, self.backoff)
            with self.db_factory.begin() as db:
                row = db.get(Disconnect, record_id)
                row.result, row.attempts, row.finished_at = outcome.result, outcome.attempts, utcnow()
                row.error_cause = outcome.error_cause
                m().disconnects.labels(outcome.result).inc()
            level = logging.INFO if outcome.result == "ack" else logging.WARNING   # the session may go on
            log.log(level, "Disconnect-Request session %s on NAS %s (%s): %s", record.session_id, record.nas_id,
                    record.reason, outcome.describe())
            return outcome
        except Exception:  # noqa: BLE001 - a worker thread must log, never die silently
            log.exception("Disconnect-Request %s failed", record_id)
            return None
