"""Sites and their access points (NAS): validated add, edit and remove, shared by the CLI and the console."""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from policies import Policy
from portal.core import probes
from portal.core.errors import InputError, printable
from portal.core.model import (
    OCTETS_DIRECTIONS,
    SITE_KINDS,
    VENDORS,
    FaultReport,
    Nas,
    NodeEvent,
    Session,
    Site,
    UsageDaily,
    default_octets_direction,
)

WEAK_SECRETS = {"testing123", "radius", "secret", "password", "changeme", "admin", "default",
                "mikrotik", "ubnt", "coova", "chillispot", "123456", "testing123testing123"}
NAME = re.compile(r"\S(.{0,78}\S)?")


def _check_name(name: str, what: str) -> str:
    if not NAME.fullmatch(name or "") or not printable(name):
        raise InputError(f"{what} name must be 1 to 80 printable characters")
    return name


def check_secret(secret: str, production: bool, what: str = "secret") -> list[str]:
    """Raise on a secret unsafe for production; return warnings for development."""
    problems = []
    if len(secret) < 16:
        problems.append(f"{what} is shorter than 16 characters")
    if secret.lower() in WEAK_SECRETS:
        problems.append(f"{what} is a well-known default")
    if not secret or len(secret) > 128 or not printable(secret):
        raise InputError(f"{what} must be 1 to 128 printable characters")
    if problems and production:
        raise InputError(f"{problems[0]}; refused in production (use e.g. `openssl rand -hex 16`)")
    return [p + " (refused in production)" for p in problems]


def _get_site(db: DbSession, name: str) -> Site:
    site = db.scalar(select(Site).where(Site.name == name))
    if site is None:
        raise InputError(f"unknown site {name!r} (see `conecta site list`)")
    return site


def _check_policy(policy: str, policies: dict[str, Policy]) -> str:
    if policy not in policies:
        raise InputError(f"unknown policy {policy!r} (loaded: {', '.join(sorted(policies))})")
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
        raise InputError(f"unknown site kind {spec.kind!r} (use {' | '.join(SITE_KINDS)})")
    _check_policy(spec.policy, policies)
    if spec.planned_gb_month is not None and not 0 <= spec.planned_gb_month <= 10**7:
        raise InputError("planned GB per month must be between 0 and 10,000,000")
    if (spec.lat is None) != (spec.lon is None):
        raise InputError("give both --lat and --lon, or neither")
    if spec.lat is not None and not (-90 <= spec.lat <= 90 and -180 <= spec.lon <= 180):
        raise InputError("latitude must be within ±90 and longitude within ±180")
    if len(spec.communities) > 300 or any(not NAME.fullmatch(c) or not printable(c)
                                          for c in spec.communities):
        raise InputError("communities: at most 300, each 1 to 80 printable characters")


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
        raise InputError(f"site {name!r} already exists")
    site = Site(**_site_values(spec))
    db.add(site)
    db.flush()
    return site


def update_site(db: DbSession, policies: dict[str, Policy], site: Site, spec: SiteSpec) -> list[str]:
    """Change a site to `spec`; return the names of the fields that changed. The caller commits."""
    _check_site(spec, policies)
    if spec.name != site.name and db.scalar(select(Site.id).where(Site.name == spec.name)):
        raise InputError(f"site {spec.name!r} already exists")
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
    secret: str | None
    vendor: str
    coa_port: int = 3799
    uam_secret: str | None = None
    require_message_authenticator: bool = True
    nas_identifier: str | None = None     # the name it gives itself (CoovaChilli's HS_NASID)
    octets_direction: str | None = None   # None: what the vendor does out of the box
    fas_level: int | None = None          # openNDS: fas_secure_enabled (0-3)
    faskey: str | None = None             # openNDS: its faskey (also signs its BinAuth reports)


FAS_LEVELS = (0, 1, 2, 3)
FASKEY = re.compile(r"[A-Za-z0-9]{8,32}")


def check_fas(vendor: str, level: int | None, faskey: str | None, production: bool) -> list[str]:
    """An openNDS gateway needs its FAS level and faskey; level 0 (the token in clear) only when asked
    for, and never in production. Other vendors take neither."""
    if vendor != "opennds":
        if level is not None or faskey:
            raise InputError("--fas-level and --faskey are for openNDS gateways only (--vendor opennds)")
        return []
    if level not in FAS_LEVELS:
        raise InputError("an openNDS gateway needs --fas-level 1, 2 or 3 (its fas_secure_enabled; 0 only "
                         "explicitly, never in production)")
    if not faskey or not FASKEY.fullmatch(faskey):
        raise InputError("an openNDS gateway needs --faskey: 8 to 32 letters and digits, the same as its "
                         "faskey (it also signs the gateway's usage reports)")
    warnings = check_secret(faskey, production, "faskey")
    if level == 0:
        if production:
            raise InputError("FAS level 0 sends the client's token in clear; refused in production (use 2 or 3)")
        warnings.append("FAS level 0 sends the client's token in clear: use it only for a test (refused in "
                        "production)")
    return warnings


def _check_identifier(db: DbSession, identifier: str | None, nas_id: int | None) -> str | None:
    """A NAS-Identifier alias: printable, and naming no other NAS (by alias or by name)."""
    if not identifier:
        return None
    if len(identifier) > 64 or not NAME.fullmatch(identifier) or not printable(identifier):
        raise InputError("NAS identifier must be 1 to 64 printable characters")
    other = db.scalar(select(Nas.name).where((Nas.nas_identifier == identifier) | (Nas.name == identifier),
                                             Nas.id != (nas_id or 0)))
    if other is not None:
        raise InputError(f"NAS identifier {identifier!r} already names NAS {other!r}")
    return identifier


def _check_direction(direction: str) -> str:
    if direction not in OCTETS_DIRECTIONS:
        raise InputError(f"unknown octets direction {direction!r} (use {' | '.join(OCTETS_DIRECTIONS)})")
    return direction


def add_nas(db: DbSession, spec: NasSpec, production: bool) -> tuple[Nas, list[str]]:
    """Create a NAS; return it and any warnings. The caller commits."""
    _check_name(spec.name, "NAS")
    site = _get_site(db, spec.site)
    try:
        ip = str(ipaddress.ip_address(spec.ip.strip()))
    except ValueError:
        raise InputError(f"{spec.ip!r} is not an IP address") from None
    if spec.vendor not in VENDORS:
        raise InputError(f"unknown vendor {spec.vendor!r} (use {' | '.join(VENDORS)})")
    if not 0 <= spec.coa_port <= 65535:   # 0: the NAS takes no RFC 5176 requests
        raise InputError(f"CoA port {spec.coa_port} is not a port number (0: the NAS takes no CoA)")
    warnings = check_fas(spec.vendor, spec.fas_level, spec.faskey, production)
    if spec.vendor == "opennds" and not spec.secret:   # it never speaks RADIUS: nobody may with its address
        spec.secret = secrets.token_hex(16)
    if not spec.secret:
        raise InputError("--secret is required (the RADIUS shared secret, at least 16 characters)")
    warnings += check_secret(spec.secret or "", production)
    if spec.uam_secret is not None:
        warnings += check_secret(spec.uam_secret, production, "UAM secret")
    if db.scalar(select(Nas.id).where(Nas.name == spec.name)):
        raise InputError(f"NAS {spec.name!r} already exists")
    if db.scalar(select(Nas.name).where(Nas.ip == ip)):
        raise InputError(f"IP {ip} already belongs to NAS {db.scalar(select(Nas.name).where(Nas.ip == ip))!r}")
    if db.scalar(select(Nas.name).where(Nas.nas_identifier == spec.name)):
        raise InputError(f"{spec.name!r} is another NAS's identifier")
    nas = Nas(name=spec.name, site_id=site.id, ip=ip, secret=spec.secret, vendor=spec.vendor,
              coa_port=spec.coa_port, uam_secret=spec.uam_secret,
              require_message_authenticator=spec.require_message_authenticator,
              nas_identifier=_check_identifier(db, spec.nas_identifier, None),
              octets_direction=_check_direction(spec.octets_direction or default_octets_direction(spec.vendor)),
              fas_level=spec.fas_level, faskey=spec.faskey)
    db.add(nas)
    db.flush()
    return nas, warnings


@dataclass
class NasChange:
    """What `nas set` (and the console's NAS page) may change; None leaves a field as it is ('' clears the
    identifier)."""

    nas_identifier: str | None = None
    octets_direction: str | None = None
    coa_port: int | None = None
    probe: str | None = None              # icmp | tcp:PORT | http:URL | none (portal/core/probes.py)
    fas_level: int | None = None          # openNDS
    faskey: str | None = None


def _fas_change(nas: Nas, change: NasChange, production: bool) -> dict:
    """The FAS level and faskey after a change, checked together."""
    if change.fas_level is None and change.faskey is None:
        return {}
    level = nas.fas_level if change.fas_level is None else change.fas_level
    faskey = change.faskey or nas.faskey
    check_fas(nas.vendor, level, faskey, production)
    return {"fas_level": level, "faskey": faskey}


def update_nas(db: DbSession, name: str, change: NasChange, production: bool = False) -> list[str]:
    """Change a NAS (every field checked before any is set); return the names of the fields that
    changed. The caller commits."""
    nas = db.scalar(select(Nas).where(Nas.name == name))
    if nas is None:
        raise InputError(f"unknown NAS {name!r}")
    new: dict = {}
    if change.nas_identifier is not None:
        new["nas_identifier"] = _check_identifier(db, change.nas_identifier.strip(), nas.id)
    if change.octets_direction is not None:
        new["octets_direction"] = _check_direction(change.octets_direction)
    if change.coa_port is not None:
        if not 0 <= change.coa_port <= 65535:   # 0: the NAS takes no RFC 5176 requests
            raise InputError(f"CoA port {change.coa_port} is not a port number (0: the NAS takes no CoA)")
        new["coa_port"] = change.coa_port
    if change.probe is not None:
        new["probe"] = str(probes.parse_probe(change.probe, nas.ip))
    new.update(_fas_change(nas, change, production))
    changed = [field for field, value in new.items() if getattr(nas, field) != value]
    for field in changed:
        setattr(nas, field, new[field])
    db.flush()
    return changed


def remove_site(db: DbSession, name: str) -> None:
    """Remove a site that no NAS, usage or fault report needs; the caller commits."""
    site = _get_site(db, name)
    n = db.scalar(select(func.count()).select_from(Nas).where(Nas.site_id == site.id))
    if n:
        raise InputError(f"site {name!r} still has {n} NAS; remove them first")
    if any(db.scalar(select(model.site_id).where(model.site_id == site.id).limit(1))
           for model in (UsageDaily, Session, FaultReport, NodeEvent)):
        raise InputError(f"site {name!r} has usage or fault reports that reports still need; keep it")
    db.delete(site)


def remove_nas(db: DbSession, name: str) -> None:
    """Remove an access point; its sessions and usage stay for the figures. The caller commits."""
    nas = db.scalar(select(Nas).where(Nas.name == name))
    if nas is None:
        raise InputError(f"unknown NAS {name!r}")
    db.delete(nas)
