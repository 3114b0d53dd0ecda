"""The splash page: arrive from an access point, register once or come back, and get online."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import generate_csrf
from sqlalchemy import or_, select

from policies import Usage, evaluate
from portal.core import credentials, ndsgrants, opennds, people, quota
from portal.core.arrival import (
    COOVA_ONLINE,
    Arrival,
    ArrivalError,
    NasView,
    allowed_destination,
    handoff,
    parse_arrival,
)
from portal.core.model import AGE_BANDS, GENDERS, Nas, Site, User
from portal.web import city
from portal.web.cache import expiring
from portal.web.extensions import db, limiter, now, redis_client, settings
from portal.web.opennds import go_online as nds_online
from portal.web.security import account_key, failed, ip_limit, mac_key
from portal.web.standing import hours_of, site_policy, standing_of

bp = Blueprint("splash", __name__)
log = logging.getLogger("conecta.portal")
TOKEN_SLOT = "@@csrf-token@@"   # noqa: S105 - a placeholder in the cached page, not a secret
NAS_PARAMS = {"uamip", "challenge", "link-login-only", "tok", "nasid", "nas", "zone", "login_url", "res", "fas",
              "authaction"}
NDS_PARAMS = {"fas", "authaction"}


@expiring(10.0)   # every splash page asks; a NAS added or changed shows within 10 s
def _lookup(name: str | None, host: str | None) -> NasView | None:
    """A NAS by the NAS-Identifier registered for it or its name (one NAS at most: an identifier may
    name no other NAS), or else by its address."""
    if name:
        query = select(Nas).where(or_(Nas.nas_identifier == name, Nas.name == name))
    elif host:
        query = select(Nas).where(Nas.ip == host)
    else:
        return None
    nas = db.session.scalars(query.limit(1)).first()
    return _view(nas) if nas is not None else None


def _view(nas: Nas) -> NasView:
    hosts = tuple(h.strip() for h in (nas.login_hosts or "").split(",") if h.strip())
    return NasView(nas.id, nas.name, nas.ip, nas.vendor, nas.site_id, nas.uam_secret, hosts, nas.nas_identifier,
                   nas.fas_level, nas.faskey)


@expiring(10.0)
def _keyed() -> list[NasView]:
    """openNDS gateways whose redirects are encrypted (levels 2 and 3): one of their faskeys opens a redirect."""
    rows = db.session.scalars(select(Nas).where(Nas.vendor == "opennds", Nas.fas_level.in_((2, 3)))).all()
    return [_view(nas) for nas in rows]


def _arrive() -> Arrival:
    """The checked redirect of this request (openNDS's apart: they name their gateway inside)."""
    if NDS_PARAMS & set(request.args):
        arrival = opennds.parse(request.args, _lookup, request.remote_addr, _keyed)
        if arrival.extra["level"] == 3 and "gateway" in arrival.extra:
            ndsgrants.remember_gateway_name(redis_client(), arrival.nas_id, arrival.extra.pop("gateway"))
        return arrival
    return parse_arrival(request.args, _lookup, _raw_urls(), request.remote_addr)


def _raw_urls() -> list[str]:
    """The redirect URL as the NAS built it (for CoovaChilli's md), as http and as https: the path and
    query exactly as received, before any decoding."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    if "?" not in raw:  # a server that keeps the query out of RAW_URI
        raw = (raw or request.path) + "?" + request.environ.get("QUERY_STRING", "")
    if "://" in raw:    # absolute-form request line
        raw = "/" + raw.split("://", 1)[1].partition("/")[2]
    return [f"{scheme}://{request.host}{raw}" for scheme in ("http", "https")]


def current_arrival() -> Arrival | None:
    """The checked redirect stored in the session."""
    data = session.get("arrival")
    return Arrival(**data) if data else None


def current_person() -> User | None:
    """The remembered person of this browser, if still registered."""
    uid = session.get("uid")
    return db.session.get(User, uid) if isinstance(uid, int) else None


@expiring(10.0)
def _communities(site_id: int | None) -> tuple[str, ...]:
    site = db.session.get(Site, site_id) if site_id else None
    return tuple(c.strip() for c in (site.communities or "").splitlines() if c.strip()) if site else ()


@expiring(10.0)
def _uam_secret(nas_id: int) -> str:
    nas = db.session.get(Nas, nas_id)
    return nas.uam_secret or "" if nas else ""


def _page(arrival: Arrival | None, error: str | None = None, status: int = 200, **extra) -> tuple[str, int]:
    """The splash page: registration for a new visitor, one tap for a remembered person (with what they
    have left and whether they may connect now), the opening hours; `extra` names the field an error
    concerns (errors={field: text}), the form as sent, show_login."""
    person = current_person()
    communities = _communities(arrival.site_id if arrival else None)
    if person is not None and arrival is not None:
        return _returning(person, arrival, error, status, **extra)
    hours = hours_of(site_policy(arrival.site_id)) if arrival else None
    if arrival is not None and error is None and not extra and request.path == "/":
        # Every new phone in a park gets this page: rendered once per language, communities and hours.
        key = tuple(hours.values()) if hours else None
        return _fresh_form(str(get_locale()), communities, key).replace(TOKEN_SLOT, generate_csrf()), status
    return render_template("splash.html", arrival=arrival, person=None, error=error, genders=GENDERS,
                           age_bands=AGE_BANDS, communities=communities, hours=hours,
                           errors=extra.pop("errors", {}), **extra), status


def _returning(person: User, arrival: Arrival, error: str | None, status: int, **extra) -> tuple[str, int]:
    """The remembered person's page: the decision RADIUS would make for a new session now, what is left
    today, and the privacy notice again when a new version was published since they accepted one."""
    standing = standing_of(person, arrival.site_id, running=False)
    today = quota.today(quota.left(standing.policy, standing.usage)) if standing else None
    refusal = standing.decision.message if standing and not standing.decision.accept else None
    return render_template("splash.html", arrival=arrival, person=person, error=error, standing=standing,
                           today=today, refusal=refusal, hours=hours_of(standing.policy if standing else None),
                           reconsent=person.consent_version != city.current().notice_version,
                           errors=extra.pop("errors", {}), **extra), status


@expiring(10.0)
def _fresh_form(locale: str, communities: tuple[str, ...], hours: tuple | None) -> str:
    """The registration page for a newly arrived visitor, the same for all but the CSRF token: rendering
    it (~1 ms of Jinja and gettext) is most of a splash request, so it is done once per language,
    communities and opening hours (and whether open now), and each visitor's token is put in its slot."""
    shown = dict(zip(("open", "close", "closed"), hours)) if hours else None
    return render_template("splash.html", arrival=True, person=None, error=None, genders=GENDERS,
                           age_bands=AGE_BANDS, communities=communities, hours=shown, errors={},
                           csrf_token=lambda: TOKEN_SLOT)


@bp.get("/")
@limiter.exempt       # no limit applies to it; exempt, the limiter does not even look (~0.1 ms a page)
def index() -> Response | tuple[str, int]:
    """Arrive from an access point (its redirect parameters) or come back to the splash page."""
    if NAS_PARAMS & set(request.args):
        try:
            arrival = _arrive()
        except ArrivalError as exc:
            log.warning("access point redirect refused: %s", exc)   # no address, no MAC: personal data
            return render_template("error.html", message=_(
                "No pudimos reconocer el punto de acceso. Desconéctate de la red Wi-Fi y vuelve a conectarte.")), 400
        session["arrival"] = arrival.to_dict()
        session.pop("online", None)
        result = request.args.get("res")
        if result in COOVA_ONLINE:
            # Online: the status page says so once, with the page they asked for as a link (never a redirect).
            session["online"] = True
            return redirect(url_for("status.index"))
        if result == "failed" or (arrival.vendor == "mikrotik" and request.args.get("error")):
            # The access point's own words are not shown (a link could carry any text): the page for a
            # remembered person says why RADIUS refused, from the same decision.
            person = current_person()
            standing = standing_of(person, arrival.site_id, running=False) if person else None
            if standing is None or standing.decision.accept:
                return _page(arrival, _("No se pudo conectar. Vuelve a intentarlo en un momento."))
            return _page(arrival)
    return _page(current_arrival())


def _onward(arrival: Arrival) -> str:
    """Where the access point sends the browser after the login: the page asked for when its host is on
    the allowlist, else the status page (where it is a link): no open redirect through the NAS."""
    if allowed_destination(arrival.userurl, settings().redirect_hosts):
        return arrival.userurl or ""
    return url_for("status.index", back=1, _external=True)


def _go_online(user: User) -> Response | tuple[str, int]:
    arrival = current_arrival()
    if arrival is None:
        return _page(None, _("Abre esta página desde la red Wi-Fi «%(ssid)s» para conectarte.",
                              ssid=city.current().ssid), 400)
    if arrival.vendor == "coova" and not arrival.challenge:   # chilli said success or already: online
        return redirect(url_for("status.index"))
    standing = standing_of(user, arrival.site_id, running=False)
    if standing is not None and not standing.decision.accept:
        # What RADIUS would answer: say it here, beside the button, instead of a hand-off it would refuse.
        return _page(arrival, None, 400, errors={"connect": standing.decision.message})
    if arrival.vendor == "opennds":
        return nds_online(user, arrival, _onward(arrival))
    username, password = credentials.issue(redis_client(), user.id, arrival.nas_id, arrival.mac)
    target = handoff(arrival, username, password, _uam_secret(arrival.nas_id) or None, _onward(arrival))
    if target.method == "GET":
        return redirect(target.url)
    return render_template("handoff.html", target=target), 200


def _closed_for_newcomers(arrival: Arrival) -> str | None:
    """Why a new person could not connect here now (opening hours: their counters are all zero)."""
    policy = site_policy(arrival.site_id)
    if policy is None:
        return None
    decision = evaluate(policy, Usage(), now().astimezone(settings().tz), str(get_locale() or "es"))
    return None if decision.accept else decision.message


@bp.post("/register")
@limiter.limit(ip_limit)
@limiter.limit("5/minute", key_func=mac_key)
def register() -> Response | tuple[str, int]:
    """Register once: gender, age band, community and consent; then go online."""
    arrival = current_arrival()
    if arrival is None:   # store nothing for a browser that did not come through an access point
        return _page(None, _("Abre esta página desde la red Wi-Fi «%(ssid)s» para conectarte.",
                              ssid=city.current().ssid), 400)
    form = request.form
    reg = people.Registration(
        gender=form.get("gender", ""), age_band=form.get("age_band", ""),
        community=form.get("community") or None, accepted_terms=form.get("terms") == "yes",
        accepted_privacy=form.get("privacy") == "yes", guardian_consent=form.get("guardian") == "yes")
    fault = people.check_registration(reg, _communities(arrival.site_id))
    if fault:
        return _page(arrival, None, 400, form=form, errors={fault: _error_text(fault)})
    closed = _closed_for_newcomers(arrival)
    if closed:   # nothing is stored for a visit that cannot go online now
        return _page(arrival, closed, 400, form=form)
    user = people.register(db.session, reg, arrival.mac, now(), city.current().notice_version)
    db.session.commit()
    session.permanent = True
    session["uid"] = user.id
    return _go_online(user)


def _error_text(fault: str) -> str:
    return {
        "gender": _("Elige una opción de género (puedes elegir «Prefiero no decir»)."),
        "age_band": _("Elige tu grupo de edad (puedes elegir «Prefiero no decir»)."),
        "community": _("Elige tu colonia o comunidad de la lista."),
        "consent": _("Para conectarte, acepta las condiciones de uso y el aviso de privacidad."),
        "guardian": _("Si tienes menos de 18 años, tu madre, padre o tutor debe autorizar el registro."),
    }[fault]


@bp.post("/connect")
@limiter.limit(ip_limit)
@limiter.limit("10/minute", key_func=mac_key)
def connect() -> Response | tuple[str, int]:
    """Come back with one tap on a remembered device (accepting a new privacy notice when there is one)."""
    user = current_person()
    if user is None or user.disabled:
        session.pop("uid", None)
        return _page(current_arrival(), _("No encontramos tu registro. Regístrate de nuevo, toma un minuto."), 400)
    arrival = current_arrival()
    version = city.current().notice_version
    if user.consent_version != version:
        if request.form.get("privacy") != "yes":
            return _page(arrival, None, 400, errors={"privacy": _(
                "Para seguir conectándote, lee el aviso de privacidad y marca la casilla.")})
        people.consent(user, version, now())
    people.remember_device(db.session, user.id, arrival.mac if arrival else None)
    db.session.commit()
    return _go_online(user)


@bp.post("/login")
@limiter.limit(ip_limit)
@limiter.limit("5/minute", key_func=mac_key)
# A MikroTik redirect carries no signature, so a MAC is cheap to invent: the account itself is guarded too.
@limiter.limit("10/hour", key_func=account_key, deduct_when=failed)
def login() -> Response | tuple[str, int]:
    """Use an account (username + PIN or password) on another device."""
    username = request.form.get("username", "").strip()
    user = people.check_account(db.session, username, request.form.get("pin", ""))
    if user is None:
        # Beside the PIN, the username kept, the login form first: not above an emptied form.
        return _page(current_arrival(), None, 400, show_login=True, username=username[:64],
                     errors={"pin": _("Usuario o PIN incorrectos.")})
    arrival = current_arrival()
    people.remember_device(db.session, user.id, arrival.mac if arrival else None)
    db.session.commit()
    session.permanent = True
    session["uid"] = user.id
    if user.consent_version != city.current().notice_version and arrival is not None:
        return _page(arrival)    # the one-tap page, with the new notice to accept first
    return _go_online(user)


@bp.get("/terms")
def terms() -> str:
    """Conditions of use."""
    return render_template("terms.html")


@bp.get("/privacy")
def privacy() -> str:
    """Aviso de privacidad (privacy notice)."""
    return render_template("privacy.html")
