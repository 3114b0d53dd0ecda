"""The staff console under /staff: one blueprint whose parts are blueprints of their own, registered
here: access (sign-in, roles, audit), board (the network now, sessions, faults, audit log), manage
(sites, NAS, people, policies), reports, health (availability, alerts, the node list) and identity
(the city's names, privacy notice and logo)."""

from __future__ import annotations

from flask import Blueprint

from portal.web.staff import access, alerts, board, health, identity, manage, reports

bp = Blueprint("staff", __name__, url_prefix="/staff")
bp.before_request(access.load_staff)
for _part in (access, board, manage, reports, health, alerts, identity):
    bp.register_blueprint(_part.bp)
