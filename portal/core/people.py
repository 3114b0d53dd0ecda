"""Citizens at the portal: register once, come back, optional account, see and delete their data."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import Insert, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as DbSession

from portal.core.accounts import USERNAME
from portal.core.identity import FIRST_NOTICE_VERSION
from portal.core.model import AGE_BANDS, GENDERS, Device, Session, User, utcnow

PRIVACY_NOTICE_VERSION = FIRST_NOTICE_VERSION   # until the city publishes its own (identity.update)
_hasher = PasswordHasher()


class AccountError(ValueError):
    """A username or PIN a person chose that cannot be used; the message names the fault:
    "username", "pin" or "taken" (the page says it in the person's language)."""


@dataclass(frozen=True)
class Registration:
    """What the splash form asks, and nothing else (data minimisation)."""

    gender: str
    age_band: str
    community: str | None
    accepted_terms: bool
    accepted_privacy: bool
    guardian_consent: bool = False


def check_registration(reg: Registration, communities: list[str]) -> str | None:
    """None if the registration can be stored, else the field at fault."""
    if reg.gender not in GENDERS:
        return "gender"
    if reg.age_band not in AGE_BANDS:
        return "age_band"
    if reg.community is not None and communities and reg.community not in communities:
        return "community"
    if not (reg.accepted_terms and reg.accepted_privacy):
        return "consent"
    if reg.age_band == "0-17" and not reg.guardian_consent:
        return "guardian"  # Mexican data protection law: a minor's data needs a guardian's consent
    return None


def register(db: DbSession, reg: Registration, mac: str | None, now: datetime,
             notice_version: str = PRIVACY_NOTICE_VERSION) -> User:
    """Create a person with consent to `notice_version` on record, and remember their device; the caller
    commits."""
    user = User(username="p-" + secrets.token_hex(8), password=None, gender=reg.gender,
                age_band=reg.age_band, community=reg.community, source="portal",
                consent_version=notice_version, consent_at=_utc(now),
                guardian_consent=reg.guardian_consent)
    db.add(user)
    db.flush()
    remember_device(db, user.id, mac)
    return user


def consent(user: User, notice_version: str, now: datetime) -> None:
    """Record that a returning person accepted `notice_version` of the privacy notice; the caller commits."""
    user.consent_version, user.consent_at = notice_version, _utc(now)


def _utc(now: datetime) -> datetime:
    """Stored times are naive UTC."""
    return now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now


def remember_device(db: DbSession, user_id: int, mac: str | None) -> None:
    """Link a MAC to a person (moving it from anyone else) so MAC authentication knows it: one upsert,
    so a registration is one INSERT of the person, this statement and the commit."""
    if mac:
        now = utcnow()
        db.execute(_device_upsert(db.get_bind().dialect.name),
                   {"user_id": user_id, "mac": mac, "mac_auth": True, "created_at": now, "last_seen": now})


@lru_cache(maxsize=4)
def _device_upsert(dialect: str) -> Insert:
    """INSERT ... ON CONFLICT (mac) DO UPDATE, built once per dialect (building it costs more than running it)."""
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(Device)
    return stmt.on_conflict_do_update(index_elements=[Device.mac], set_={
        "user_id": stmt.excluded.user_id, "last_seen": stmt.excluded.last_seen})


def set_account(db: DbSession, user: User, username: str, pin: str) -> None:
    """Give a registered person a username and PIN for their other devices; the caller commits."""
    if not USERNAME.fullmatch(username) or username.startswith(("p-", "c-")):
        raise AccountError("username")
    if not (4 <= len(pin) <= 64):
        raise AccountError("pin")
    taken = db.scalar(select(User.id).where(User.username == username, User.id != user.id))
    if taken:
        raise AccountError("taken")
    user.username, user.pin_hash = username, _hasher.hash(pin)


def check_account(db: DbSession, username: str, secret: str) -> User | None:
    """The person for username + PIN (portal accounts) or + password (staff-created accounts)."""
    user = db.scalar(select(User).where(User.username == username[:64]))
    if user is None or user.disabled:
        _hasher.hash(secret[:64])  # same cost either way: no user enumeration by timing
        return None
    if user.pin_hash:
        try:
            return user if _hasher.verify(user.pin_hash, secret[:64]) else None
        except (VerifyMismatchError, InvalidHashError):
            return None
    if user.password and hmac.compare_digest(user.password.encode(), secret.encode()):
        return user
    return None


def personal_data(db: DbSession, user: User) -> dict:
    """Everything stored about a person, as shown on "my data"."""
    macs = db.scalars(select(Device.mac).where(Device.user_id == user.id)).all()
    return {"gender": user.gender, "age_band": user.age_band, "community": user.community,
            "username": None if user.username.startswith("p-") else user.username,
            "devices": list(macs), "consent_version": user.consent_version,
            "consent_at": user.consent_at, "registered": user.created_at}


def forget(db: DbSession, user: User) -> None:
    """Delete a person and their devices; usage stays only as anonymous aggregates. Caller commits."""
    db.execute(delete(Device).where(Device.user_id == user.id))
    db.execute(update(Session).where(Session.user_id == user.id).values(username="-", mac=None, framed_ip=None))
    db.delete(user)
