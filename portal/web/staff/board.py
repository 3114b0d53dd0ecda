"""The network now: dashboard and node board, live sessions with disconnect, fault reports, audit log."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime

import redis
from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from sqlalchemy import select

from policies.messages import N_
from portal.core import board, refusals
from portal.core.errors import InputError
from portal.core.macs import pseudonym
from portal.core.model import (
    FAULT_STATUSES,
    AuditEntry,
    CoaRequest,
    Disconnect,
    FaultReport,
    Nas,
    Session,
    Site,
    utcnow,
)
from portal.web.extensions import db, disconnector, now, policies, redis_client, settings
from portal.web.staff.access import record, role

bp = Blueprint("board", __name__)
REQUEST = re.compile(r"request (\d+)$")


def person_pseudonym(user_id: int | None, key: str) -> str:
    """A person as the console shows them beside a session: a keyed hash, stable, not their username."""
    return pseudonym(f"person:{user_id}", key)[:10] if user_id else "—"


def _nodes() -> list[board.Node]:
    interim_of = {name: p.interim_interval for name, p in policies().items()}
    return board.node_board(db.session, redis_client(), interim_of, settings().node_down_after, utcnow())


@bp.get("/")
@role("admin", "analyst")
def dashboard() -> str:
    """People online now, today's sessions and data, and the node board (it reloads itself)."""
    today = datetime.now(settings().tz).date()
    nodes = _nodes()
    counts = Counter(n.state for n in nodes)
    return render_template("staff/dashboard.html", stats=board.overview(db.session, today), nodes=nodes,
                           counts=counts, monitor=board.monitor_health(db.session, utcnow()),
                           confirmations=settings().monitor_confirmations,
                           auto=request.args.get("refresh") == "30")   # opt-in: WCAG 2.2.1, a wall screen asks


@bp.get("/sessions")
@role("admin")
def sessions() -> str:
    """Live sessions, newest first, which of them are in the slow lane, with a disconnect button; below,
    the latest speed changes (CoA-Requests) and Disconnect-Requests with their outcomes."""
    rows = db.session.execute(select(Session, Nas.name, Site.name).join(Nas, Nas.id == Session.nas_id)
                              .outerjoin(Site, Site.id == Session.site_id)
                              .where(Session.is_open.is_(True)).order_by(Session.updated_at.desc()).limit(500)).all()
    recent = db.session.execute(select(Disconnect, Nas.name).outerjoin(Nas, Nas.id == Disconnect.nas_id)
                                .order_by(Disconnect.id.desc()).limit(20)).all()
    changes = db.session.execute(select(CoaRequest, Nas.name).outerjoin(Nas, Nas.id == CoaRequest.nas_id)
                                 .order_by(CoaRequest.id.desc()).limit(20)).all()
    sent = request.args.get("sent", "")
    asked = db.session.get(Disconnect, int(sent)) if sent.isdigit() and len(sent) < 12 else None
    key = settings().secret_key
    return render_template("staff/sessions.html", rows=rows, recent=recent, changes=changes, asked=asked,
                           people={s.id: person_pseudonym(s.user_id, key) for s, _n, _s in rows},
                           slow=sum(s.slow_since is not None for s, _n, _s in rows))


@bp.post("/sessions/<int:session_id>/disconnect")
@role("admin")
def disconnect(session_id: int) -> Response:
    """Ask the session's NAS to disconnect it (RFC 5176); the answer is recorded when it arrives, so the
    page returns at once and the sessions page shows the outcome."""
    target = db.session.get(Session, session_id) or abort(404)
    nas = db.session.get(Nas, target.nas_id) or abort(404)
    record_id = disconnector().disconnect_session(session_id, "staff")
    # "sent", not "ok": the NAS's answer comes later and the audit page shows it beside this entry.
    record("disconnect", f"session {session_id} on {nas.name}: request {record_id}", "sent")
    db.session.commit()
    return redirect(url_for("staff.board.sessions", sent=record_id))


@bp.get("/faults")
@role("admin", "analyst")
def faults() -> str:
    """Fault reports, filtered by site and status, newest first."""
    status = request.args.get("status", "")
    site = request.args.get("site", "")
    query = select(FaultReport, Site.name).join(Site, Site.id == FaultReport.site_id)
    if status in FAULT_STATUSES:
        query = query.where(FaultReport.status == status)
    if site.isdigit():
        query = query.where(FaultReport.site_id == int(site))
    rows = db.session.execute(query.order_by(FaultReport.created_at.desc()).limit(500)).all()
    sites = db.session.execute(select(Site.id, Site.name).order_by(Site.name)).all()
    return render_template("staff/faults.html", rows=rows, statuses=FAULT_STATUSES, status=status, sites=sites,
                           site=int(site) if site.isdigit() else None)


@bp.post("/faults/<int:fault_id>")
@role("admin")
def update_fault(fault_id: int) -> Response:
    """Change a report's status and notes."""
    fault = db.session.get(FaultReport, fault_id) or abort(404)
    status = request.form.get("status", "")
    notes = request.form.get("notes", "")
    if status not in FAULT_STATUSES:
        raise InputError(N_("estado desconocido %(status)r"), status=status[:40])
    if len(notes) > 2000:
        raise InputError(N_("las notas pueden tener hasta 2000 caracteres"))
    fault.status, fault.notes, fault.updated_at = status, notes, utcnow()
    record("fault", f"{fault_id} -> {status}")
    db.session.commit()
    return redirect(url_for("staff.board.faults"))


@bp.get("/audit")
@role("admin")
def audit() -> str:
    """The audit log, newest first, after the citizens' refused sign-ins of the last days."""
    rows = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(500)).all()
    asked = {r.id: int(m.group(1)) for r in rows if r.action == "disconnect" and (m := REQUEST.search(r.target or ""))}
    results = dict(db.session.execute(select(Disconnect.id, Disconnect.result)
                                      .where(Disconnect.id.in_(list(asked.values())))).all())
    # The NAS's answer to a disconnect (it arrives after the entry is written): pending, ack, nak, timeout...
    answers = {entry: results.get(request_id) or "pending" for entry, request_id in asked.items()}
    try:
        refused = refusals.recent(redis_client(), now().astimezone(settings().tz).date())
    except redis.RedisError:
        refused = None
    return render_template("staff/audit.html", rows=rows, answers=answers, refused=refused)
