"""Sites, NAS, accounts and staff: validated create/list/remove, shared by the CLI and the console."""

from __future__ import annotations

import csv
import io
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from policies import Policy
from portal.credentials import is_one_time
from portal.model import (
    AGE_BANDS,
    GENDERS,
    SITE_KINDS,
    STAFF_ROLES,
    VENDORS,
    FaultReport,
    Nas,
    Session,
    Site,
    Staff,
    UsageDaily,
    User,
)
from radius.packets import normalize_mac

WEAK_SECRETS = {"testing123", "radius", "secret", "password", "changeme", "admin", "default",
                "mikrotik", "ubnt", "coova", "chillispot", "123456", "testing123testing123"}
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
NAME = re.compile(r"\S(.{0,78}\S)?")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


class FleetError(ValueError):
    """Bad input for a fleet operation; the message is one line for a human."""


def _check_name(name: str, what: str) -> str:
    if not NAME.fullmatch(name or "") or any(ord(c) < 32 for c in name):
        raise FleetError(f"{what} name must be 1 to 80 printable characters")
    return name


def check_secret(secret: str, production: bool, what: str = "secret") -> list[str]:
    """Raise on a secret unsafe for production; return warnings for development."""
    problems = []
    if len(secret) < 16:
        problems.append(f"{what} is shorter than 16 characters")
    if secret.lower() in WEAK_SECRETS:
        problems.append(f"{what} is a well-known default")
    if not secret or len(secret) > 128 or any(ord(c) < 32 for c in secret):
        raise FleetError(f"{what} must be 1 to 128 printable characters")
    if problems and production:
        raise FleetError(f"{problems[0]}; refused in production (use e.g. `openssl rand -hex 16`)")
    return [p + " (refused in production)" for p in problems]


def _get_site(db: DbSession, name: str) -> Site:
    site = db.scalar(select(Site).where(Site.name == name))
    if site is None:
        raise FleetError(f"unknown site {name!r} (see `conecta site list`)")
    return site


def _check_policy(policy: str, policies: dict[str, Policy]) -> str:
    if policy not in policies:
        raise FleetError(f"unknown policy {policy!r} (loaded: {', '.join(sorted(policies))})")
    return policy


@dataclass
class SiteSpec:
    """What a site is made of, for adding and editing."""

    name: str
    kind: str
    policy: str
    planned_gb_month: float | None = None
    lat: float | None = None
    lon: float | None = None
    communities: tuple[str, ...] = ()     # offered at registration; empty: the person types it


def _check_site(spec: SiteSpec, policies: dict[str, Policy]) -> None:
    _check_name(spec.name, "site")
    if spec.kind not in SITE_KINDS:
        raise FleetError(f"unknown site kind {spec.kind!r} (use {' | '.join(SITE_KINDS)})")
    _check_policy(spec.policy, policies)
    if spec.planned_gb_month is not None and not 0 <= spec.planned_gb_month <= 10**7:
        raise FleetError("planned GB per month must be between 0 and 10,000,000")
    if (spec.lat is None) != (spec.lon is None):
        raise FleetError("give both --lat and --lon, or neither")
    if spec.lat is not None and not (-90 <= spec.lat <= 90 and -180 <= spec.lon <= 180):
        raise FleetError("latitude must be within ±90 and longitude within ±180")
    if len(spec.communities) > 300 or any(not NAME.fullmatch(c) or any(ord(x) < 32 for x in c)
                                          for c in spec.communities):
        raise FleetError("communities: at most 300, each 1 to 80 printable characters")


def _site_values(spec: SiteSpec) -> dict:
    """The sites row for a spec (communities stored one per line)."""
    return {"name": spec.name, "kind": spec.kind, "policy": spec.policy, "planned_gb_month": spec.planned_gb_month,
            "lat": spec.lat, "lon": spec.lon, "communities": "\n".join(spec.communities) or None}


def add_site(db: DbSession, policies: dict[str, Policy], name: str, kind: str, policy: str,
             planned_gb_month: float | None = None, lat: float | None = None,
             lon: float | None = None, communities: tuple[str, ...] = ()) -> Site:
    """Create a site; the caller commits."""
    spec = SiteSpec(name, kind, policy, planned_gb_month, lat, lon, tuple(communities))
    _check_site(spec, policies)
    if db.scalar(select(Site.id).where(Site.name == name)):
        raise FleetError(f"site {name!r} already exists")
    site = Site(**_site_values(spec))
    db.add(site)
    db.flush()
    return site


def update_site(db: DbSession, policies: dict[str, Policy], site: Site, spec: SiteSpec) -> list[str]:
    """Change a site to `spec`; return the names of the fields that changed. The caller commits."""
    _check_site(spec, policies)
    if spec.name != site.name and db.scalar(select(Site.id).where(Site.name == spec.name)):
        raise FleetError(f"site {spec.name!r} already exists")
    new = _site_values(spec)
    changed = [field for field, value in new.items() if getattr(site, field) != value]
    for field in changed:
        setattr(site, field, new[field])
    db.flush()
    return changed


@dataclass
class NasSpec:
    """What `nas add` takes."""

    name: str
    site: str
    ip: str
    secret: str
    vendor: str
    coa_port: int = 3799
    uam_secret: str | None = None
    require_message_authenticator: bool = True


def add_nas(db: DbSession, spec: NasSpec, production: bool) -> tuple[Nas, list[str]]:
    """Create a NAS; return it and any warnings. The caller commits."""
    _check_name(spec.name, "NAS")
    site = _get_site(db, spec.site)
    try:
        ip = str(ipaddress.ip_address(spec.ip.strip()))
    except ValueError:
        raise FleetError(f"{spec.ip!r} is not an IP address") from None
    if spec.vendor not in VENDORS:
        raise FleetError(f"unknown vendor {spec.vendor!r} (use {' | '.join(VENDORS)})")
    if not 1 <= spec.coa_port <= 65535:
        raise FleetError(f"CoA port {spec.coa_port} is not a port number")
    warnings = check_secret(spec.secret, production)
    if spec.uam_secret is not None:
        warnings += check_secret(spec.uam_secret, production, "UAM secret")
    if db.scalar(select(Nas.id).where(Nas.name == spec.name)):
        raise FleetError(f"NAS {spec.name!r} already exists")
    if db.scalar(select(Nas.name).where(Nas.ip == ip)):
        raise FleetError(f"IP {ip} already belongs to NAS {db.scalar(select(Nas.name).where(Nas.ip == ip))!r}")
    nas = Nas(name=spec.name, site_id=site.id, ip=ip, secret=spec.secret, vendor=spec.vendor,
              coa_port=spec.coa_port, uam_secret=spec.uam_secret,
              require_message_authenticator=spec.require_message_authenticator)
    db.add(nas)
    db.flush()
    return nas, warnings


def validate_user(fields: dict[str, str | None], policies: dict[str, Policy]) -> dict:
    """Check one account's fields (as from the CLI or a CSV line); raise FleetError naming the column."""
    username = (fields.get("username") or "").strip()
    if not USERNAME.fullmatch(username):
        raise FleetError("username: 1 to 64 letters, digits or . _ @ + -, starting with a letter or digit")
    if is_one_time(username) or normalize_mac(username):
        raise FleetError("username: looks like a one-time credential or a MAC address; choose another")
    password = fields.get("password") or ""
    if not 4 <= len(password) <= 128 or any(ord(c) < 32 for c in password):
        raise FleetError("password: 4 to 128 printable characters")
    policy = (fields.get("policy") or "").strip() or None
    if policy is not None and policy not in policies:
        raise FleetError(f"policy: unknown policy {policy!r} (loaded: {', '.join(sorted(policies))})")
    gender = (fields.get("gender") or "undisclosed").strip()
    if gender not in GENDERS:
        raise FleetError(f"gender: {gender!r} is not one of {' | '.join(GENDERS)}")
    age_band = (fields.get("age_band") or "undisclosed").strip()
    if age_band not in AGE_BANDS:
        raise FleetError(f"age_band: {age_band!r} is not one of {' | '.join(AGE_BANDS)}")
    community = (fields.get("community") or "").strip() or None
    if community is not None and (len(community) > 80 or any(ord(c) < 32 for c in community)):
        raise FleetError("community: at most 80 printable characters")
    return {"username": username, "password": password, "policy": policy, "gender": gender,
            "age_band": age_band, "community": community}


def add_user(db: DbSession, policies: dict[str, Policy], fields: dict, source: str = "staff") -> User:
    """Create one account; the caller commits."""
    values = validate_user(fields, policies)
    if db.scalar(select(User.id).where(User.username == values["username"])):
        raise FleetError(f"user {values['username']!r} already exists")
    user = User(**values, source=source)
    db.add(user)
    db.flush()
    return user


CSV_COLUMNS = ("username", "password", "policy", "gender", "age_band", "community")


def read_user_csv(text: str, policies: dict[str, Policy]) -> list[dict]:
    """Parse and validate a whole CSV; FleetError names the line and column of the first fault."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if "username" not in header or "password" not in header:
        raise FleetError("line 1: the header must name at least username and password")
    if unknown:
        raise FleetError(f"line 1, column {unknown[0]!r}: unknown column (known: {', '.join(CSV_COLUMNS)})")
    repeated = [h for h in header if header.count(h) > 1]
    if repeated:
        raise FleetError(f"line 1, column {repeated[0]!r}: named twice in the header")
    reader.fieldnames = header
    try:
        return _read_rows(reader, policies)
    except csv.Error as exc:
        raise FleetError(f"line {reader.line_num + 1}: not valid CSV ({exc})") from None


def _read_rows(reader: csv.DictReader, policies: dict[str, Policy]) -> list[dict]:
    rows, seen = [], {}
    for row in reader:
        line = reader.line_num
        if None in row:
            raise FleetError(f"line {line}: more fields than the header has")
        try:
            values = validate_user(row, policies)
        except FleetError as exc:
            raise FleetError(f"line {line}, column {exc}") from None
        if values["username"] in seen:
            first = seen[values["username"]]
            raise FleetError(f"line {line}, column username: {values['username']!r} repeats line {first}")
        seen[values["username"]] = line
        rows.append({**values, "line": line})
    if not rows:
        raise FleetError("the file has a header but no accounts")
    return rows


def import_users(db: DbSession, rows: list[dict], progress: Callable[[int], None] = lambda n: None,
                 chunk: int = 1000) -> int:
    """Insert validated rows in one transaction (the caller commits or rolls back); all or nothing."""
    line_of = {r["username"]: r.get("line") for r in rows}
    names = list(line_of)
    for start in range(0, len(names), chunk):
        taken = db.scalars(select(User.username).where(User.username.in_(names[start:start + chunk]))).first()
        if taken:
            raise FleetError(f"line {line_of[taken]}, column username: user {taken!r} already exists")
    columns = {c.name for c in User.__table__.columns}
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        db.execute(User.__table__.insert(), [{**{k: v for k, v in r.items() if k in columns}, "source": "import",
                                              "disabled": False} for r in part])
        progress(len(part))
    return len(rows)


def remove(db: DbSession, kind: str, name: str) -> None:
    """Remove a site, NAS, user or staff login by name; refuse when others depend on it."""
    if kind == "site":
        site = _get_site(db, name)
        n = db.scalar(select(func.count()).select_from(Nas).where(Nas.site_id == site.id))
        if n:
            raise FleetError(f"site {name!r} still has {n} NAS; remove them first")
        if any(db.scalar(select(model.site_id).where(model.site_id == site.id).limit(1))
               for model in (UsageDaily, Session, FaultReport)):
            raise FleetError(f"site {name!r} has usage or fault reports that reports still need; keep it")
        db.delete(site)
        return
    model, column = {"nas": (Nas, Nas.name), "user": (User, User.username), "staff": (Staff, Staff.email)}[kind]
    if kind == "staff":
        name = name.strip().lower()
    obj = db.scalar(select(model).where(column == name))
    if obj is None:
        raise FleetError(f"unknown {kind} {name!r}")
    if kind == "user":
        db.execute(Session.__table__.update().where(Session.user_id == obj.id).values(username="-"))
    db.delete(obj)


def add_staff(db: DbSession, email: str, role: str, password: str) -> Staff:
    """Create a staff login with an argon2 hash of `password`; the caller commits."""
    from argon2 import PasswordHasher
    email = email.strip().lower()
    if not EMAIL.fullmatch(email) or len(email) > 254:
        raise FleetError(f"{email!r} is not an e-mail address")
    if role not in STAFF_ROLES:
        raise FleetError(f"unknown role {role!r} (use {' | '.join(STAFF_ROLES)})")
    if len(password) < 12:
        raise FleetError("staff password must be at least 12 characters")
    if db.scalar(select(Staff.id).where(Staff.email == email)):
        raise FleetError(f"staff {email!r} already exists")
    staff = Staff(email=email, role=role, password_hash=PasswordHasher().hash(password))
    db.add(staff)
    db.flush()
    return staff


def commit_or_explain(db: DbSession) -> None:
    """Commit, turning a constraint race (two admins at once) into a FleetError."""
    try:
        db.commit()
    except IntegrityError as exc:
        db.rollback()
        raise FleetError(f"not saved: {str(exc.orig).splitlines()[0][:120]}") from None
