"""Usage reported by an openNDS gateway's BinAuth script (contrib/opennds/conecta-binauth.sh).

Each report is one form-encoded line signed with HMAC-SHA256 under the gateway's faskey:
`gw=…&method=…&mac=…&ip=…&tok=…&down=…&up=…&start=…&end=…&sig=<hex>`; the signature covers every
byte before `&sig=`. A session is the gateway and the client's token (Acct-Session-Id); `*_auth`
methods start it, `*_deauth` methods stop it with openNDS's exact byte counts. Reports become the
same accounting records RADIUS brings (portal/core/accounting.py): stored under a digest, so a
report sent twice counts once, and committed before the gateway hears "OK".
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import redis
from sqlalchemy.orm import Session as DbSession

from portal.core import counters
from portal.core.accounting import AcctEvent, BatchResult, apply_batch
from portal.core.macs import normalize_mac

MAX_REPORT = 2048
STARTS = ("client_auth", "ndsctl_auth")
CAUSES = {"client_deauth": "User-Request", "idle_deauth": "Idle-Timeout", "timeout_deauth": "Session-Timeout",
          "downquota_deauth": "Quota", "upquota_deauth": "Quota", "ndsctl_deauth": "Admin-Reset",
          "shutdown_deauth": "NAS-Reboot"}
METHODS = ("auth_client", *STARTS, *CAUSES)
NUMBER = re.compile(r"[0-9]{1,15}")


class ReportError(ValueError):
    """A report that cannot be trusted or read; the message is for the log (never holds the key)."""


@dataclass(frozen=True)
class Report:
    """One checked BinAuth report."""

    gateway: str
    method: str
    mac: str
    token: str
    ip: str | None = None
    bytes_in: int = 0       # from the client (its upload)
    bytes_out: int = 0      # to the client (its download)
    start: int = 0          # Unix seconds
    end: int = 0


def split_signed(body: str) -> tuple[str, str, dict[str, str]]:
    """(what was signed, the signature, the fields) of a report body."""
    if len(body) > MAX_REPORT or "&sig=" not in body:
        raise ReportError("report malformed or unsigned")
    signed, _, sig = body.rpartition("&sig=")
    try:
        fields = dict(parse_qsl(signed, keep_blank_values=True, strict_parsing=True, max_num_fields=20))
    except ValueError:
        raise ReportError("report malformed") from None
    return signed, sig, fields


def verify(signed: str, sig: str, faskey: str) -> bool:
    """The report was signed with this gateway's faskey."""
    expected = hmac.new(faskey.encode(), signed.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, sig.strip().lower())


def _number(fields: dict[str, str], name: str) -> int:
    value = fields.get(name) or "0"
    if not NUMBER.fullmatch(value):
        raise ReportError(f"report field {name} is not a number")
    return int(value)


def read(fields: dict[str, str]) -> Report:
    """The report's fields, checked."""
    method, mac, token = fields.get("method", ""), normalize_mac(fields.get("mac")), fields.get("tok", "")
    if method not in METHODS:
        raise ReportError("report method unknown")
    if mac is None or not re.fullmatch(r"[0-9A-Za-z]{4,64}", token):
        raise ReportError("report mac or token malformed")
    return Report(fields.get("gw", ""), method, mac, token, fields.get("ip") or None, _number(fields, "up"),
                  _number(fields, "down"), _number(fields, "start"), _number(fields, "end"))


def event(report: Report, nas_id: int, site_id: int, user_id: int | None, username: str, tz: ZoneInfo,
          now: datetime) -> AcctEvent:
    """The accounting record of a report (Start for `*_auth`, Stop for `*_deauth`)."""
    stop = report.method in CAUSES
    start = report.start or int(now.timestamp())
    end = max(report.end, start) if stop else start
    when = datetime.fromtimestamp(end, timezone.utc)
    return AcctEvent(nas_id=nas_id, site_id=site_id, status="stop" if stop else "start", session_id=report.token,
                     username=username[:64], user_id=user_id, mac=report.mac, framed_ip=report.ip,
                     seconds=end - start if stop else 0, bytes_in=report.bytes_in if stop else 0,
                     bytes_out=report.bytes_out if stop else 0,
                     terminate_cause=CAUSES.get(report.method), event_time=when.replace(tzinfo=None),
                     local_day=when.astimezone(tz).date())


def ingest(db: DbSession, r: redis.Redis, e: AcctEvent, now: datetime, tz: ZoneInfo) -> BatchResult:
    """Store one record (idempotent) and commit it, then move the person's live counters: they are
    dropped, so that the next read takes them from SQL, which now holds the record."""
    uids = [e.user_id] if e.user_id is not None else []
    counters.hold(r, uids)
    try:
        result = apply_batch(db, [e], now.astimezone(timezone.utc).replace(tzinfo=None))
        db.commit()
    except Exception:
        db.rollback()
        counters.hold(r, uids, step=-1)
        raise
    local = now.astimezone(tz)
    pipe = r.pipeline(transaction=False)
    for uid in uids:
        pipe.delete(*counters.keys(uid, local)[:2])
        if result.usage:
            pipe.sadd(counters.active_key(local.strftime("%Y%m")), uid)
    for uid, ref in result.touched:
        pipe.zadd(counters.open_key(uid), {ref: int(now.timestamp())})
    for uid, ref in result.closed:
        pipe.zrem(counters.open_key(uid), ref)
    pipe.execute()
    counters.hold(r, uids, step=-1)
    return result
