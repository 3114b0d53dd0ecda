"""Staff logins: accounts with argon2 passwords, back-off on failures, server-side sessions, and the audit log."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from functools import cache

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DbSession

from policies.messages import N_
from portal.core.errors import InputError
from portal.core.model import STAFF_ROLES, AuditEntry, Staff, StaffSession, utcnow

IDLE = timedelta(hours=8)
FREE_FAILURES = 5
_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the e-mail is unknown, so both take the same time (made on first
    use: each hash takes 64 MiB for a moment, which every process importing this module would pay)."""
    return _hasher.hash("not-a-real-password-0")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _locked_for(r: redis.Redis, keys: list[str]) -> int:
    """Seconds until another attempt is allowed (0 when allowed)."""
    return max([int(r.ttl(k + ":lock")) for k in keys] + [0])


def _fail(r: redis.Redis, keys: list[str]) -> None:
    for key in keys:
        count = r.incr(key)
        r.expire(key, 3600)
        if count >= FREE_FAILURES:   # doubling back-off: 30 s, 60 s, … up to 15 min
            r.set(key + ":lock", 1, ex=min(30 * 2 ** (count - FREE_FAILURES), 900))


def sign_in(db: DbSession, r: redis.Redis, email: str, password: str, address: str) -> tuple[str | None, int]:
    """(session token, 0) on success; (None, seconds to wait) on failure — one generic outcome."""
    email = email.strip().lower()[:254]
    keys = [f"staff:fail:acct:{email}", f"staff:fail:ip:{address}"]
    wait = _locked_for(r, keys)
    if wait:
        audit(db, email or "?", "sign-in", "", "locked", address)
        return None, wait
    staff = db.scalar(select(Staff).where(Staff.email == email))
    try:
        ok = _hasher.verify(staff.password_hash if staff else _dummy_hash(), password[:256]) and staff is not None
    except (VerifyMismatchError, InvalidHashError):
        ok = False
    if not ok or staff.disabled:
        _fail(r, keys)
        audit(db, email or "?", "sign-in", "", "refused", address)
        return None, 0
    r.delete(keys[0], keys[0] + ":lock")
    token = secrets.token_urlsafe(32)
    db.add(StaffSession(token_hash=_hash(token), staff_id=staff.id))
    audit(db, email, "sign-in", "", "ok", address)
    return token, 0


def current(db: DbSession, token: str | None, now: datetime | None = None) -> Staff | None:
    """The staff member behind a session cookie, if the session is live on the server."""
    if not token or len(token) > 100:
        return None
    row = db.get(StaffSession, _hash(token))
    now = now or utcnow()
    if row is None or now - row.last_seen > IDLE:
        return None
    staff = db.get(Staff, row.staff_id)
    if staff is None or staff.disabled:
        return None
    if now - row.last_seen > timedelta(minutes=1):
        row.last_seen = now
    return staff


def sign_out(db: DbSession, token: str | None) -> None:
    """Revoke this session on the server: a replayed cookie is refused from now on."""
    if token:
        db.execute(delete(StaffSession).where(StaffSession.token_hash == _hash(token)))


def revoke_all(db: DbSession, staff_id: int) -> None:
    """Revoke every session of a staff member (on disabling the account)."""
    db.execute(delete(StaffSession).where(StaffSession.staff_id == staff_id))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def audit(db: DbSession, actor: str, action: str, target: str, outcome: str, address: str) -> None:
    """Record an action; control characters are replaced so nothing can forge a line."""
    def clean(text: str, size: int) -> str:
        return _CONTROL.sub("?", text or "")[:size]
    db.add(AuditEntry(actor=clean(actor, 254), action=clean(action, 64), target=clean(target, 200),
                      outcome=clean(outcome, 16), address=clean(address, 45)))


EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


def add_staff(db: DbSession, email: str, role: str, password: str) -> Staff:
    """Create a staff login with an argon2 hash of `password`; the caller commits."""
    email = email.strip().lower()
    if not EMAIL.fullmatch(email) or len(email) > 254:
        raise InputError(N_("%(email)r no es una dirección de correo"), email=email[:80])
    if role not in STAFF_ROLES:
        raise InputError(N_("rol desconocido %(role)r (usa %(known)s)"), role=role[:40], known=" | ".join(STAFF_ROLES))
    if len(password) < 12:
        raise InputError(N_("la contraseña del personal debe tener al menos 12 caracteres"))
    if db.scalar(select(Staff.id).where(Staff.email == email)):
        raise InputError(N_("la cuenta de personal %(email)r ya existe"), email=email)
    staff = Staff(email=email, role=role, password_hash=_hasher.hash(password))
    db.add(staff)
    db.flush()
    return staff



def remove_staff(db: DbSession, email: str) -> None:
    """Remove a staff login and its sessions; the audit log keeps its e-mail. The caller commits."""
    staff = db.scalar(select(Staff).where(Staff.email == email.strip().lower()))
    if staff is None:
        raise InputError(N_("no existe la cuenta de personal %(name)r"), name=email.strip().lower()[:80])
    revoke_all(db, staff.id)
    db.delete(staff)
