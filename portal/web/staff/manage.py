"""Staff console, admin pages: sites, NAS (secrets shown once), people and the policies in force."""

from __future__ import annotations

import re
import secrets

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, or_, select

from policies.messages import N_
from portal.core import labels, probes, sites
from portal.core.db import commit_or_explain
from portal.core.errors import InputError
from portal.core.macs import pseudonym
from portal.core.model import OCTETS_DIRECTIONS, SITE_KINDS, VENDORS, Device, Nas, Site, UsageDaily, User
from portal.web.extensions import db, policies, settings
from portal.web.filters import language
from portal.web.filters import said as said_error
from portal.web.staff.access import record, role
from portal.web.staff.alerts import windows_of
from portal.web.staff.board import person_pseudonym

SECRET_FIELDS = ("uam_secret", "faskey")
bp = Blueprint("manage", __name__)


def _form_float(name: str) -> float | None:
    value = request.form.get(name, "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InputError(_("%(field)s no es un número", field=name)) from None


def _site_form() -> sites.SiteSpec:
    communities = tuple(c.strip() for c in request.form.get("communities", "").splitlines() if c.strip())
    return sites.SiteSpec(request.form.get("name", "").strip(), request.form.get("kind", ""),
                          request.form.get("policy", ""), _form_float("planned_gb_month"), _form_float("lat"),
                          _form_float("lon"), communities)


@bp.route("/sites", methods=["GET", "POST"])
@role("admin")
def site_list() -> tuple[str, int] | str:
    """List sites; add one."""
    error = None
    if request.method == "POST":
        try:
            spec = _site_form()
            site = sites.add_site(db.session, policies(), spec.name, spec.kind, spec.policy, spec.planned_gb_month,
                                  spec.lat, spec.lon, spec.communities)
            record("site-add", site.name)
            commit_or_explain(db.session)
        except InputError as exc:
            db.session.rollback()
            error = said_error(exc)
    rows = db.session.execute(select(Site, func.count(Nas.id)).outerjoin(Nas, Nas.site_id == Site.id)
                              .group_by(Site.id).order_by(Site.name)).all()
    return render_template("staff/sites.html", rows=rows, kinds=SITE_KINDS, policies=sorted(policies()),
                           error=error), 400 if error else 200


@bp.route("/sites/<int:site_id>", methods=["GET", "POST"])
@role("admin")
def site_edit(site_id: int) -> tuple[str, int] | str | Response:
    """Edit a site's name, kind, policy, plan, location and communities."""
    site = db.session.get(Site, site_id) or abort(404)
    if request.method == "POST":
        try:
            changed = sites.update_site(db.session, policies(), site, _site_form())
            record("site-edit", f"{site.name}: {', '.join(changed) or 'no change'}")
            commit_or_explain(db.session)
            return redirect(url_for("staff.manage.site_list"))
        except InputError as exc:
            db.session.rollback()
            return _site_page(site_id, said_error(exc))
    return _site_page(site_id)


def _site_page(site_id: int, error: str | None = None) -> tuple[str, int]:
    """The edit page of a site, 400 with the error after a refused change."""
    return render_template("staff/site.html", site=db.session.get(Site, site_id), kinds=SITE_KINDS,
                           policies=sorted(policies()), error=error, windows=windows_of(site_id)), \
        400 if error else 200


@bp.post("/sites/<int:site_id>/remove")
@role("admin")
def site_remove(site_id: int) -> tuple[str, int] | Response:
    """Remove a site without NAS or history (reports keep what has been used)."""
    site = db.session.get(Site, site_id) or abort(404)
    try:
        name = site.name
        sites.remove_site(db.session, name)
        record("site-remove", name)
        commit_or_explain(db.session)
    except InputError as exc:
        db.session.rollback()
        return _site_page(site_id, said_error(exc))
    return redirect(url_for("staff.manage.site_list"))


@bp.route("/nas", methods=["GET", "POST"])
@role("admin")
def nas_list() -> tuple[str, int] | str:
    """List NAS; add one (its secret is generated and shown once)."""
    error, shown = None, None
    if request.method == "POST":
        secret = secrets.token_hex(16)
        vendor = request.form.get("vendor", "")
        # openNDS has no RADIUS: what it shares with Conecta is its faskey, generated here like a secret.
        faskey = secrets.token_hex(8) if vendor == "opennds" else None
        spec = sites.NasSpec(request.form.get("name", "").strip(), request.form.get("site", ""),
                             request.form.get("ip", ""), secret, vendor,
                             nas_identifier=request.form.get("nas_identifier", "").strip() or None,
                             octets_direction=request.form.get("octets_direction") or None,
                             fas_level=_level(request.form.get("fas_level")), faskey=faskey)
        try:
            row, _warnings = sites.add_nas(db.session, spec, settings().production)
            probes.set_probe(db.session, row.name, request.form.get("probe") or "icmp")
            record("nas-add", row.name)
            commit_or_explain(db.session)
            shown = (row.name, faskey or secret, "faskey" if faskey else "secret")
        except InputError as exc:
            db.session.rollback()
            error = said_error(exc)
    return _nas_page(error, shown), 400 if error else 200


def _nas_page(error: str | None = None, shown: tuple[str, str] | None = None) -> str:
    """The NAS list and the form to add one."""
    rows = db.session.execute(select(Nas, Site.name).join(Site, Site.id == Nas.site_id).order_by(Nas.name)).all()
    names = db.session.scalars(select(Site.name).order_by(Site.name)).all()
    return render_template("staff/nas.html", rows=rows, sites=names, vendors=VENDORS, directions=OCTETS_DIRECTIONS,
                           error=error, shown=shown)


@bp.route("/nas/<int:nas_id>", methods=["GET", "POST"])
@role("admin")
def nas_edit(nas_id: int) -> tuple[str, int] | Response:
    """Change what a NAS calls itself, how it counts octets, its CoA port (0: none), its probe, its UAM
    secret and whether it must sign Access-Requests; a field the form does not send stays as it is."""
    row = db.session.get(Nas, nas_id) or abort(404)
    if request.method == "POST":
        try:
            changed = sites.update_nas(db.session, row.name, _nas_change(), settings().production)
            if changed:   # secrets (UAM secret, faskey) are never written to the audit log: only that they changed
                said = (f if f in SECRET_FIELDS else f"{f}={'' if getattr(row, f) is None else getattr(row, f)}"
                        for f in changed)
                record("nas-edit", f"{row.name}: " + ", ".join(said))
            commit_or_explain(db.session)
            return redirect(url_for("staff.manage.nas_list", saved=row.name))
        except InputError as exc:
            db.session.rollback()
            return _nas_edit_page(db.session.get(Nas, nas_id), said_error(exc))
    return _nas_edit_page(row)


def _nas_change() -> sites.NasChange:
    """The NAS page's form as a change: blank UAM secret stays, the box to remove it clears it."""
    uam = request.form.get("uam_secret", "").strip() or ("" if request.form.get("uam_clear") else None)
    require = request.form.get("require_message_authenticator")
    return sites.NasChange(request.form.get("nas_identifier"), request.form.get("octets_direction") or None,
                           _port(request.form.get("coa_port")), request.form.get("probe"), uam,
                           None if require not in ("yes", "no") else require == "yes",
                           request.form.get("login_hosts"), _level(request.form.get("fas_level")),
                           request.form.get("faskey") or None)


def _level(text: str | None) -> int | None:
    """The FAS level field (openNDS): None when not sent or blank, InputError when not 0-3."""
    if text is None or not text.strip():
        return None
    if text.strip() not in ("0", "1", "2", "3"):
        raise InputError(N_("el nivel FAS debe ser 0, 1, 2 o 3"))
    return int(text)


def _port(text: str | None) -> int | None:
    """The CoA port field: None when not sent or blank (stays), InputError when not a number."""
    if text is None or not text.strip():
        return None
    if not text.strip().isdigit() or len(text.strip()) > 5:
        raise InputError(N_("el puerto CoA %(port)r no es un número de puerto (0: el NAS no acepta CoA)"),
                         port=text.strip()[:20])
    return int(text)


def _nas_edit_page(row: Nas, error: str | None = None) -> tuple[str, int]:
    """The edit page of a NAS, 400 with the error after a refused change."""
    site = db.session.get(Site, row.site_id)
    return render_template("staff/nas_edit.html", nas=row, site=site.name if site else "",
                           directions=OCTETS_DIRECTIONS, error=error), 400 if error else 200


@bp.route("/nas/<int:nas_id>/rotate", methods=["GET", "POST"])
@role("admin")
def rotate(nas_id: int) -> str | Response:
    """Replace a NAS's RADIUS secret after a confirmation step (the NAS is cut off until it has the new
    one); the new secret is shown once and never again."""
    row = db.session.get(Nas, nas_id) or abort(404)
    if request.method == "GET" or request.form.get("confirm") != "yes":
        return render_template("staff/nas_confirm.html", nas=row, action="rotate")
    secret = secrets.token_hex(16)
    row.secret = secret
    record("nas-rotate", row.name)
    db.session.commit()
    return _nas_page(shown=(row.name, secret))


@bp.route("/nas/<int:nas_id>/remove", methods=["GET", "POST"])
@role("admin")
def nas_remove(nas_id: int) -> tuple[str, int] | str | Response:
    """Remove an access point after showing what depends on it; refused while it has open sessions."""
    row = db.session.get(Nas, nas_id) or abort(404)
    depends = sites.nas_dependents(db.session, row)
    if request.method == "GET" or request.form.get("confirm") != "yes":
        return render_template("staff/nas_confirm.html", nas=row, action="remove", depends=depends)
    try:
        name = row.name
        sites.remove_nas(db.session, name)
        record("nas-remove", name)
        commit_or_explain(db.session)
    except InputError as exc:
        db.session.rollback()
        return render_template("staff/nas_confirm.html", nas=row, action="remove", depends=depends,
                               error=said_error(exc)), 400
    return redirect(url_for("staff.manage.nas_list", removed=name))


@bp.get("/people")
@role("admin")
def people() -> str:
    """Find people by part of their username or of a device's MAC; only the data needed is shown."""
    term = request.args.get("q", "").strip()[:64]
    found = db.session.scalars(_people_query(term).limit(MAX_FOUND + 1)).all() if len(term) >= 2 else []
    if term:
        record("people-search", "")
        db.session.commit()
    key = settings().secret_key
    usage = {}
    for person in found[:MAX_FOUND]:
        usage[person.id] = db.session.execute(
            select(func.sum(UsageDaily.sessions), func.sum(UsageDaily.seconds),
                   func.sum(UsageDaily.bytes_down + UsageDaily.bytes_up)).where(UsageDaily.user_id == person.id)).one()
    devices = {p.id: [pseudonym(m, key) for m in db.session.scalars(select(Device.mac).where(Device.user_id == p.id))]
               for p in found[:MAX_FOUND]}
    return render_template("staff/people.html", term=term, found=found[:MAX_FOUND], more=len(found) > MAX_FOUND,
                           usage=usage, devices=devices, short=0 < len(term) < 2,
                           person={p.id: person_pseudonym(p.id, key) for p in found[:MAX_FOUND]})


MAX_FOUND = 20


def _people_query(term: str):  # noqa: ANN202 - a select
    """People whose username contains `term` (any case), or with a device whose MAC contains its hex
    digits (any spelling: 'a4:5e', 'A4-5E', 'a45e')."""
    pattern = "%" + term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    match = func.lower(User.username).like(pattern, escape="\\")
    digits = re.sub(r"[-:.\s]", "", term.lower())
    if len(digits) >= 4 and re.fullmatch(r"[0-9a-f]+", digits):
        match = or_(match, func.replace(Device.mac, ":", "").like(f"%{digits}%"))
    return (select(User).outerjoin(Device, Device.user_id == User.id).where(match).distinct()
            .order_by(User.username))


@bp.get("/policies")
@role("admin", "analyst")
def policy_list() -> str:
    """The loaded policy files and which sites use them (read-only)."""
    used: dict[str, list[str]] = {}
    for name, policy in db.session.execute(select(Site.name, Site.policy)):
        used.setdefault(policy, []).append(name)
    return render_template("staff/policies.html", policies=sorted(policies().values(), key=lambda p: p.name),
                           used=used, limits=lambda limits: labels.limit_summary(limits, language()),
                           pools=lambda names: labels.pools(names, language()))
