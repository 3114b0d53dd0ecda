"""Application hooks: who is asking and may they go online. No sockets; packets arrive checked.

authorize() takes a batch of Access-Requests and returns one (Decision, user id) per request;
parse_accounting() turns an Accounting-Request into an AcctEvent for the durable writer.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis
from pyrad.packet import AuthPacket, Packet
from sqlalchemy import or_, select
from sqlalchemy.orm import sessionmaker

from policies import Decision, Policy, evaluate
from policies.messages import gettext as _
from portal.core import bulk, counters, credentials
from portal.core.accounting import STATUSES, AcctEvent
from portal.core.macs import normalize_mac
from portal.core.model import Device, User
from radius.attributes import class_slow, class_user_id
from radius.nas import NasInfo

log = logging.getLogger(__name__)
OTC_USER_TTL = 2 * 86400


def raw(pkt: Packet, code: int) -> bytes | None:
    """The first undecoded value of attribute `code` (pyrad keeps them under the integer code)."""
    values = dict.get(pkt, code)
    return values[0] if values else None


def text(pkt: Packet, code: int) -> str | None:
    """The first value of a string attribute, or None if absent or not valid UTF-8."""
    value = raw(pkt, code)
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def integer(pkt: Packet, code: int, default: int = 0) -> int:
    """The first value of a 32-bit integer attribute, or `default` if absent or malformed."""
    value = raw(pkt, code)
    return int.from_bytes(value, "big") if value is not None and len(value) == 4 else default


@dataclass
class AuthRequest:
    """An Access-Request that passed the protocol checks."""

    nas: NasInfo
    username: str
    mac: str | None
    packet: AuthPacket


@dataclass
class Identity:
    """Who a request turned out to be, or why nobody."""

    user_id: int | None = None
    policy: str | None = None
    error: str | None = None


def password_ok(pkt: AuthPacket, expected: str) -> bool:
    """PAP or CHAP check of the request against the stored cleartext password."""
    encrypted = raw(pkt, 2)
    if encrypted:
        try:
            given = pkt.PwDecrypt(encrypted)
        except (UnicodeDecodeError, ValueError, TypeError):
            return False
        return hmac.compare_digest(given.encode(), expected.encode())
    if raw(pkt, 3):
        try:
            return pkt.VerifyChapPasswd(expected.encode())
        except (TypeError, ValueError):
            return False
    return False


BAD_CREDENTIALS = "credentials"


def _reject(reason: str) -> Decision:
    messages = {
        BAD_CREDENTIALS: _("Usuario o contraseña incorrectos. Vuelve a intentarlo desde el portal."),
        "disabled": _("Esta cuenta está suspendida. Acércate a un centro de acceso digital."),
        "device": _("Este dispositivo no está registrado. Abre el portal para conectarte."),
        "policy": _("El servicio no está disponible en este momento. Avisa al personal del municipio."),
    }
    return Decision(False, reason, messages[reason])


class Authorizer:
    """Identifies the person behind each request and evaluates their policy."""

    def __init__(self, policies: dict[str, Policy], db_factory: sessionmaker, r: redis.Redis, tz: ZoneInfo) -> None:
        self.policies = policies
        self.db_factory = db_factory
        self.redis = r
        self.tz = tz

    def authorize(self, reqs: list[AuthRequest], now: datetime) -> list[tuple[Decision, int | None]]:
        """Decide a batch of requests; raises on Redis/database failure (the caller drops the batch)."""
        idents = self._identify(reqs)
        stale = {}
        for req, ident in zip(reqs, idents):
            if ident.user_id is not None:
                policy = self.policies.get(ident.policy or req.nas.site_policy)
                stale[ident.user_id] = 2 * (policy.interim_interval if policy else 300) + 60
        usage = counters.read_usage(self.redis, self.db_factory, list(stale), now, stale) if stale else {}
        out: list[tuple[Decision, int | None]] = []
        otc_names = {}
        for req, ident in zip(reqs, idents):
            if ident.error:
                out.append((_reject(ident.error), None))
                continue
            policy = self.policies.get(ident.policy or "") or self.policies.get(req.nas.site_policy)
            if policy is None:
                log.error("NAS %s: site policy %r is not loaded", req.nas.name, req.nas.site_policy)
                out.append((_reject("policy"), None))
                continue
            decision = evaluate(policy, usage[ident.user_id], now)
            out.append((decision, ident.user_id if decision.accept else None))
            if decision.accept and credentials.is_one_time(req.username):
                otc_names[req.username] = ident.user_id
        if otc_names:  # accounting from NASes that drop Class still finds the person
            pipe = self.redis.pipeline(transaction=False)
            for name, uid in otc_names.items():
                pipe.set(f"otu:{name}", uid, ex=OTC_USER_TTL)
            pipe.execute()
        return out

    def _identify(self, reqs: list[AuthRequest]) -> list[Identity]:
        otc = [r.username for r in reqs if credentials.is_one_time(r.username)]
        stored = credentials.read_many(self.redis, otc) if otc else {}
        records = {name: item[1] if item else None for name, item in stored.items()}
        macs = {r.mac for r in reqs if r.mac and normalize_mac(r.username) == r.mac}
        names = {r.username for r in reqs if r.username not in records and r.mac not in macs}
        uids = {rec["u"] for rec in records.values() if rec}
        users, devices = self._load_users(names, uids, macs)
        idents = [self._identity(r, records, users, devices) for r in reqs]
        # A credential is used up only by a request that passed every check (a wrong attempt by
        # someone who saw the logon URL burns nothing), and by one such request only.
        passed = [i for i, (r, ident) in enumerate(zip(reqs, idents)) if r.username in stored and not ident.error]
        taken = credentials.take(self.redis, [(reqs[i].username, stored[reqs[i].username][0]) for i in passed])
        for i, ok in zip(passed, taken):
            if not ok:
                idents[i] = Identity(error=BAD_CREDENTIALS)
        return idents

    def _load_users(self, names: set[str], uids: set[int], macs: set[str]) -> tuple[dict, dict]:
        users_by_key: dict = {}
        devices: dict[str, tuple] = {}
        with self.db_factory() as db:
            if names or uids:
                rows = db.execute(select(User.id, User.username, User.password, User.policy, User.disabled)
                                  .where(or_(bulk.any_of(db, User.username, names), bulk.any_of(db, User.id, uids))))
                for row in rows:
                    users_by_key[row.username] = row
                    users_by_key[row.id] = row
            if macs:
                rows = db.execute(select(Device.mac, User.id, User.policy, User.disabled)
                                  .join(User, User.id == Device.user_id)
                                  .where(bulk.any_of(db, Device.mac, macs), Device.mac_auth.is_(True)))
                devices = {row.mac: row for row in rows}
        return users_by_key, devices

    def _identity(self, req: AuthRequest, records: dict, users: dict, devices: dict) -> Identity:
        if req.username in records:
            rec = records[req.username]
            ok = (rec is not None and rec["n"] == req.nas.id and (not rec["m"] or rec["m"] == req.mac)
                  and password_ok(req.packet, rec["p"]))
            user = users.get(rec["u"]) if ok else None
            if user is None:
                return Identity(error=BAD_CREDENTIALS)
            return Identity(error="disabled") if user.disabled else Identity(user.id, user.policy)
        if req.mac and normalize_mac(req.username) == req.mac:
            device = devices.get(req.mac)
            if device is None:
                return Identity(error="device")
            return Identity(error="disabled") if device.disabled else Identity(device.id, device.policy)
        user = users.get(req.username)
        if user is None or not user.password or not password_ok(req.packet, user.password):
            return Identity(error=BAD_CREDENTIALS)
        return Identity(error="disabled") if user.disabled else Identity(user.id, user.policy)


CAUSES = {1: "User-Request", 2: "Lost-Carrier", 3: "Lost-Service", 4: "Idle-Timeout",
          5: "Session-Timeout", 6: "Admin-Reset", 7: "Admin-Reboot", 8: "Port-Error", 9: "NAS-Error",
          10: "NAS-Request", 11: "NAS-Reboot", 17: "User-Error", 18: "Host-Request"}


def _octets(pkt: Packet, low: int, giga: int) -> int:
    return integer(pkt, giga) * 2**32 + integer(pkt, low)


def parse_accounting(pkt: Packet, nas: NasInfo, tz: ZoneInfo, now_utc: datetime) -> AcctEvent | str:
    """An AcctEvent from a checked Accounting-Request, or the reason it cannot be used."""
    status = STATUSES.get(integer(pkt, 40, -1))              # Acct-Status-Type
    if status is None:
        return "missing or unsupported Acct-Status-Type"
    session_id = text(pkt, 44)                              # Acct-Session-Id
    if status not in ("on", "off") and not session_id:
        return "missing Acct-Session-Id"
    if session_id and len(session_id) > 64:
        return "Acct-Session-Id longer than 64 characters"
    delay = min(integer(pkt, 41), 86400)                    # Acct-Delay-Time
    event_time = now_utc - timedelta(seconds=delay)
    cause = integer(pkt, 49, -1)                            # Acct-Terminate-Cause
    framed = raw(pkt, 8)                                    # Framed-IP-Address
    received, sent = _octets(pkt, 42, 52), _octets(pkt, 43, 53)   # Acct-Input-, Acct-Output-(Giga)words
    if nas.input_is_download:                               # CoovaChilli without HS_SWAPOCTETS
        received, sent = sent, received
    return AcctEvent(
        nas_id=nas.id, site_id=nas.site_id, status=status, session_id=session_id,
        username=(text(pkt, 1) or "")[:64],
        user_id=class_user_id(raw(pkt, 25)),
        mac=normalize_mac(text(pkt, 31)),
        framed_ip=".".join(str(b) for b in framed) if framed and len(framed) == 4 else None,
        seconds=integer(pkt, 46),                           # Acct-Session-Time
        bytes_in=received, bytes_out=sent,
        terminate_cause=CAUSES.get(cause, str(cause)) if cause >= 0 else None,
        event_time=event_time.replace(tzinfo=None),
        local_day=event_time.astimezone(tz).date(), delay=delay, slow=class_slow(raw(pkt, 25)),
        start_key=pkt.authenticator.hex() if status == "start" else "",
    )
