"""Sites and their access points (NAS): validated add, edit and remove, shared by the CLI and the console."""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from policies import Policy
from policies.messages import N_, gettext
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
from portal.core.nasfields import check_fas, check_login_hosts

WEAK_SECRETS = {"testing123", "radius", "secret", "password", "changeme", "admin", "default",
                "mikrotik", "ubnt", "coova", "chillispot", "123456", "testing123testing123"}
NAME = re.compile(r"\S(.{0,78}\S)?")


def _check_name(name: str, what: str) -> str:
    if not NAME.fullmatch(name or "") or not printable(name):
        raise InputError(N_("el nombre de %(what)s debe tener de 1 a 80 caracteres imprimibles"), what=what)
    return name


def check_secret(secret: str, production: bool, what: str = "") -> list[str]:
    """Raise on a secret unsafe for production; return warnings for development."""
    what = what or gettext("el secreto")
    problems = []
    if len(secret) < 16:
        problems.append(gettext("%(what)s tiene menos de 16 caracteres") % {"what": what})
    if secret.lower() in WEAK_SECRETS:
        problems.append(gettext("%(what)s es un valor de fábrica muy conocido") % {"what": what})
    if not secret or len(secret) > 128 or not printable(secret):
        raise InputError(N_("%(what)s debe tener de 1 a 128 caracteres imprimibles"), what=what)
    if problems and production:
        raise InputError(N_("%(problem)s; no se acepta en producción (usa p. ej. `openssl rand -hex 16`)"),
                         problem=problems[0])
    return [p + gettext(" (no se acepta en producción)") for p in problems]


def _get_site(db: DbSession, name: str) -> Site:
    site = db.scalar(select(Site).where(Site.name == name))
    if site is None:
        raise InputError(N_("no existe el sitio %(name)r (ver `conecta site list`)"), name=name[:80])
    return site


def _check_policy(policy: str, policies: dict[str, Policy]) -> str:
    if policy not in policies:
        raise InputError(N_("no existe la política %(policy)r (cargadas: %(known)s)"), policy=policy[:80],
                         known=", ".join(sorted(policies)))
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
    _check_name(spec.name, gettext("sitio"))
    if spec.kind not in SITE_KINDS:
        raise InputError(N_("tipo de sitio desconocido %(kind)r (usa %(known)s)"), kind=spec.kind[:40],
                         known=" | ".join(SITE_KINDS))
    _check_policy(spec.policy, policies)
    if spec.planned_gb_month is not None and not 0 <= spec.planned_gb_month <= 10**7:
        raise InputError(N_("los GB planeados por mes deben estar entre 0 y 10 000 000"))
    if (spec.lat is None) != (spec.lon is None):
        raise InputError(N_("da la latitud y la longitud, o ninguna de las dos"))
    if spec.lat is not None and not (-90 <= spec.lat <= 90 and -180 <= spec.lon <= 180):
        raise InputError(N_("la latitud debe estar entre ±90 y la longitud entre ±180"))
    if len(spec.communities) > 300 or any(not NAME.fullmatch(c) or not printable(c)
                                          for c in spec.communities):
        raise InputError(N_("comunidades: como mucho 300, cada una de 1 a 80 caracteres imprimibles"))


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
        raise InputError(N_("el sitio %(name)r ya existe"), name=name)
    site = Site(**_site_values(spec))
    db.add(site)
    db.flush()
    return site


def update_site(db: DbSession, policies: dict[str, Policy], site: Site, spec: SiteSpec) -> list[str]:
    """Change a site to `spec`; return the names of the fields that changed. The caller commits."""
    _check_site(spec, policies)
    if spec.name != site.name and db.scalar(select(Site.id).where(Site.name == spec.name)):
        raise InputError(N_("el sitio %(name)r ya existe"), name=spec.name)
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
    login_hosts: str | None = None        # hosts of its login page besides its IP (portal hand-offs)
    fas_level: int | None = None          # openNDS: fas_secure_enabled (0-3)
    faskey: str | None = None             # openNDS: its faskey (also signs its BinAuth reports)


def _check_identifier(db: DbSession, identifier: str | None, nas_id: int | None) -> str | None:
    """A NAS-Identifier alias: printable, and naming no other NAS (by alias or by name)."""
    if not identifier:
        return None
    if len(identifier) > 64 or not NAME.fullmatch(identifier) or not printable(identifier):
        raise InputError(N_("el NAS-Identifier debe tener de 1 a 64 caracteres imprimibles"))
    other = db.scalar(select(Nas.name).where((Nas.nas_identifier == identifier) | (Nas.name == identifier),
                                             Nas.id != (nas_id or 0)))
    if other is not None:
        raise InputError(N_("el NAS-Identifier %(identifier)r ya nombra al NAS %(other)r"), identifier=identifier,
                         other=other)
    return identifier


def check_coa_port(port: int) -> int:
    """A CoA port: 0 (the NAS takes no RFC 5176 requests) to 65535."""
    if not 0 <= port <= 65535:
        raise InputError(N_("el puerto CoA %(port)s no es un número de puerto (0: el NAS no acepta CoA)"), port=port)
    return port


def _check_direction(direction: str) -> str:
    if direction not in OCTETS_DIRECTIONS:
        raise InputError(N_("sentido de octetos desconocido %(direction)r (usa %(known)s)"),
                         direction=direction[:40], known=" | ".join(OCTETS_DIRECTIONS))
    return direction


def add_nas(db: DbSession, spec: NasSpec, production: bool) -> tuple[Nas, list[str]]:
    """Create a NAS; return it and any warnings. The caller commits."""
    _check_name(spec.name, gettext("el NAS"))
    site = _get_site(db, spec.site)
    try:
        ip = str(ipaddress.ip_address(spec.ip.strip()))
    except ValueError:
        raise InputError(N_("%(ip)r no es una dirección IP"), ip=spec.ip[:60]) from None
    if spec.vendor not in VENDORS:
        raise InputError(N_("marca desconocida %(vendor)r (usa %(known)s)"), vendor=spec.vendor[:40],
                         known=" | ".join(VENDORS))
    check_coa_port(spec.coa_port)
    warnings = check_fas(spec.vendor, spec.fas_level, spec.faskey, production)
    if spec.faskey:
        warnings += check_secret(spec.faskey, production, "faskey")
    if spec.vendor == "opennds" and not spec.secret:   # it never speaks RADIUS: nobody may with its address
        spec.secret = secrets.token_hex(16)
    warnings += check_secret(spec.secret or "", production)
    if spec.uam_secret is not None:
        warnings += check_secret(spec.uam_secret, production, gettext("el secreto UAM"))
    if db.scalar(select(Nas.id).where(Nas.name == spec.name)):
        raise InputError(N_("el NAS %(name)r ya existe"), name=spec.name)
    if db.scalar(select(Nas.name).where(Nas.ip == ip)):
        raise InputError(N_("la IP %(ip)s ya es del NAS %(other)r"), ip=ip,
                         other=db.scalar(select(Nas.name).where(Nas.ip == ip)))
    if db.scalar(select(Nas.name).where(Nas.nas_identifier == spec.name)):
        raise InputError(N_("%(name)r es el NAS-Identifier de otro NAS"), name=spec.name)
    nas = Nas(name=spec.name, site_id=site.id, ip=ip, secret=spec.secret, vendor=spec.vendor,
              coa_port=spec.coa_port, uam_secret=spec.uam_secret,
              require_message_authenticator=spec.require_message_authenticator,
              nas_identifier=_check_identifier(db, spec.nas_identifier, None),
              octets_direction=_check_direction(spec.octets_direction or default_octets_direction(spec.vendor)),
              login_hosts=check_login_hosts(spec.login_hosts), fas_level=spec.fas_level, faskey=spec.faskey)
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
    uam_secret: str | None = None         # '' removes it
    require_message_authenticator: bool | None = None
    login_hosts: str | None = None        # '' clears them
    fas_level: int | None = None          # openNDS
    faskey: str | None = None


def _fas_change(nas: Nas, change: NasChange, production: bool) -> dict:
    """The FAS level and faskey after a change, checked together."""
    if change.fas_level is None and change.faskey is None:
        return {}
    level = nas.fas_level if change.fas_level is None else change.fas_level
    faskey = change.faskey or nas.faskey
    check_fas(nas.vendor, level, faskey, production)
    check_secret(faskey or "", production, "faskey")
    return {"fas_level": level, "faskey": faskey}


def update_nas(db: DbSession, name: str, change: NasChange, production: bool = False) -> list[str]:
    """Change a NAS (every field checked before any is set); return the names of the fields that
    changed. The caller commits."""
    nas = db.scalar(select(Nas).where(Nas.name == name))
    if nas is None:
        raise InputError(N_("no existe el NAS %(name)r"), name=name[:80])
    new: dict = {}
    if change.nas_identifier is not None:
        new["nas_identifier"] = _check_identifier(db, change.nas_identifier.strip(), nas.id)
    if change.octets_direction is not None:
        new["octets_direction"] = _check_direction(change.octets_direction)
    if change.coa_port is not None:
        new["coa_port"] = check_coa_port(change.coa_port)
    if change.probe is not None:
        new["probe"] = str(probes.parse_probe(change.probe, nas.ip))
    if change.uam_secret is not None:
        if change.uam_secret:
            check_secret(change.uam_secret, production, gettext("el secreto UAM"))
        new["uam_secret"] = change.uam_secret or None
    if change.require_message_authenticator is not None:
        new["require_message_authenticator"] = change.require_message_authenticator
    if change.login_hosts is not None:
        new["login_hosts"] = check_login_hosts(change.login_hosts)
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
        raise InputError(N_("el sitio %(name)r aún tiene %(n)d NAS; quítalos primero"), name=name, n=n)
    if any(db.scalar(select(model.site_id).where(model.site_id == site.id).limit(1))
           for model in (UsageDaily, Session, FaultReport, NodeEvent)):
        raise InputError(N_("el sitio %(name)r tiene uso o reportes de fallas que los reportes necesitan; consérvalo"),
                         name=name)
    db.delete(site)


def nas_dependents(db: DbSession, nas: Nas) -> dict[str, int]:
    """What still refers to an access point: its open sessions (they block removal), and the sessions and
    fault reports that stay in the history without it."""
    def count(model: type, *where) -> int:  # noqa: ANN002 - SQL conditions
        return db.scalar(select(func.count()).select_from(model).where(*where)) or 0
    return {"open_sessions": count(Session, Session.nas_id == nas.id, Session.is_open.is_(True)),
            "sessions": count(Session, Session.nas_id == nas.id),
            "faults": count(FaultReport, FaultReport.nas_id == nas.id)}


def remove_nas(db: DbSession, name: str) -> None:
    """Remove an access point without open sessions; its sessions and usage stay for the figures. The
    caller commits."""
    nas = db.scalar(select(Nas).where(Nas.name == name))
    if nas is None:
        raise InputError(N_("no existe el NAS %(name)r"), name=name[:80])
    open_now = nas_dependents(db, nas)["open_sessions"]
    if open_now:
        raise InputError(N_("el NAS %(name)r tiene %(n)d sesiones abiertas; desconéctalas o espera a que terminen"),
                         name=name, n=open_now)
    db.delete(nas)
