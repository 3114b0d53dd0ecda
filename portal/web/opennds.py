"""openNDS gateways: letting a person in (levels 0-3), their BinAuth reports and authmon's polls."""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import timezone

from flask import Blueprint, Response, redirect, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import or_, select
from sqlalchemy.orm import sessionmaker

from policies import evaluate
from portal.core import counters, ndsgrants, ndsreport
from portal.core.arrival import Arrival
from portal.core.model import Nas, Site, User
from portal.core.opennds import gateway_name, handoff_url
from portal.web.extensions import csrf, db, limiter, now, policies, redis_client, settings

bp = Blueprint("opennds", __name__)
log = logging.getLogger("conecta.portal")
TEXT = {"Content-Type": "text/plain; charset=utf-8"}


def go_online(user: User, arrival: Arrival, onward: str) -> Response | tuple[str, int]:
    """Evaluate the person's policy as RADIUS would, leave the gateway its answer, send the browser
    back to the gateway (levels 0-2) or tell it to wait for authmon (level 3)."""
    site = db.session.get(Site, arrival.site_id)
    policy = policies().get(user.policy or "") or policies().get(site.policy if site else "")
    if policy is None:
        log.error("openNDS site %s: no policy loaded for it", arrival.site_id)
        return render_template("error.html", message=_("El servicio no está disponible en este momento.")), 503
    local = now().astimezone(settings().tz)
    stale = {user.id: 2 * policy.interim_interval + 60}
    usage = counters.read_usage(redis_client(), sessionmaker(db.engine), [user.id], local, stale)[user.id]
    decision = evaluate(policy, usage, local, str(get_locale() or "es"))
    if not decision.accept:
        return render_template("error.html", message=decision.message), 403
    ndsgrants.offer(redis_client(), arrival, user.id, decision)
    if arrival.extra["level"] == 3:
        return render_template("error.html", message=_(
            "Listo: en unos segundos tendrás Internet. Si no, vuelve a abrir cualquier página.")), 200
    return redirect(handoff_url(arrival, onward))


def _gateway(name: str) -> Nas | None:
    """The openNDS NAS a report names (its GatewayName, with or without the Node suffix)."""
    name = gateway_name(name)[:80]
    if not name:
        return None
    return db.session.scalars(select(Nas).where(or_(Nas.nas_identifier == name, Nas.name == name),
                                                Nas.vendor == "opennds").limit(1)).first()


@bp.post("/opennds/binauth")
@csrf.exempt          # a gateway's script, signed with its faskey; no browser
@limiter.limit("600/minute")
def binauth() -> tuple[str, int, dict]:
    """A gateway's BinAuth script: may this client in (auth_client), or a session began or ended."""
    try:
        signed, sig, fields = ndsreport.split_signed(request.get_data(as_text=True))
        nas = _gateway(fields.get("gw", ""))
        if nas is None or not nas.faskey:
            raise ndsreport.ReportError("report from a gateway not registered as openNDS")
        if not ndsreport.verify(signed, sig, nas.faskey):
            raise ndsreport.ReportError(f"report from {nas.name} with a bad signature")
        report = ndsreport.read(fields)
    except ndsreport.ReportError as exc:
        log.warning("openNDS report refused: %s", exc)
        return "refused\n", 403, TEXT
    nas.last_seen = now().astimezone(timezone.utc).replace(tzinfo=None)   # the board's "last heard of"
    if report.method == "auth_client":
        figures = ndsgrants.claim(redis_client(), nas.id, report.token, report.mac)
        db.session.commit()
        if figures is None:
            log.warning("openNDS %s: a client asked in with a token Conecta did not give it", nas.name)
            return "DENY\n", 200, TEXT
        return "OK " + " ".join(str(f) for f in figures) + "\n", 200, TEXT
    uid = redis_client().get(ndsgrants.who_key(nas.id, report.mac))
    user = db.session.get(User, int(uid)) if uid else None
    e = ndsreport.event(report, nas.id, nas.site_id, user.id if user else None,
                        user.username if user else report.mac, settings().tz, now())
    ndsreport.ingest(db.session, redis_client(), e, now(), settings().tz)
    return "OK\n", 200, TEXT


@bp.post("/")         # authmon posts to the FAS URL itself (fasremotefqdn:fasport/faspath)
@bp.post("/opennds/authmon")
@csrf.exempt          # openNDS's authmon (post-request.php); only from the gateway's own address
@limiter.limit("600/minute")
def authmon() -> tuple[str, int, dict]:
    """Level 3: authmon fetches the clients to let in, and acknowledges those it did."""
    action, gatewayhash = request.form.get("auth_get", ""), request.form.get("gatewayhash", "")
    nas = db.session.scalars(select(Nas).where(Nas.ip == request.remote_addr, Nas.vendor == "opennds",
                                               Nas.fas_level == 3).limit(1)).first()
    r = redis_client()
    if nas is None or not r.sismember(ndsgrants.gatewayhash_key(nas.id), gatewayhash):
        log.warning("openNDS authmon refused: not a level-3 gateway's address or gatewayhash")
        return "", 403, TEXT
    try:
        payload = base64.b64decode(request.form.get("payload", ""), validate=True).decode()[:8192]
    except (binascii.Error, UnicodeDecodeError):
        payload = "none"
    if action == "clear":
        r.delete(ndsgrants.authlist_key(nas.id))
        return "", 200, TEXT
    if action in ("deauthed", "custom"):
        return "ack", 200, TEXT
    if action == "view" and payload != "none":   # the acknowledgement of what it let in (maybe nothing: "*")
        ndsgrants.acknowledge(r, nas.id, payload)
        return "ack", 200, TEXT
    listed = ndsgrants.authlist(r, nas.id)
    if action == "list":
        r.delete(ndsgrants.authlist_key(nas.id))
    return listed, 200, TEXT
