"""openNDS at each FAS level through the portal: the hand-off back to the gateway, the grant its BinAuth
script claims (once, for that device), level 3's auth list for authmon, and the signed usage reports
(counted once, forgeries refused). The real gateway is tests/test_opennds_real.py's."""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import datetime
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from sqlalchemy import func, select

from portal.core import sites
from portal.core.accounting import close_stale
from portal.core.model import Nas, Session, UsageDaily
from tests.support.ndsfas import (
    CLIENT_MAC,
    FASKEY,
    NDS_IP,
    NDS_NAME,
    SUFFIX,
    level0_url,
    level1_url,
    level2_url,
    nds_quote,
    signed,
    token,
)
from tests.support.portal import register
from tests.support.web import page

URLS = {0: level0_url, 1: level1_url, 2: level2_url, 3: level2_url}
# parque at 18:00: a 1 h session, 1/5 Mbit/s, no data cap (its daily GB only slows down).
PARQUE = "3600 1000 5000 0 0"


def _level(app, db_factory, level: int) -> None:  # noqa: ANN001
    with db_factory() as db:
        sites.update_nas(db, NDS_NAME, sites.NasChange(fas_level=level))
        db.commit()
    app.extensions.get("conecta_cache", {}).clear()


def _binauth(client, fields: dict, faskey: str = FASKEY, body: str | None = None):  # noqa: ANN001, ANN202
    data = body if body is not None else signed({"gw": NDS_NAME + SUFFIX, **fields}, faskey)
    return client.post("/opennds/binauth", data=data, content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("level", [0, 1, 2])
def test_each_level_hands_back_and_the_grant_is_claimed_once(app, client, db_factory, level) -> None:
    _level(app, db_factory, level)
    tok = token()
    resp = client.get(URLS[level](tok))
    assert resp.status_code == 200 and 'action="/register"' in page(resp)
    resp = register(client, page(resp))
    assert resp.status_code == 302
    target = urlsplit(resp.headers["Location"])
    hid = hashlib.sha256(tok.encode()).hexdigest()
    expected = tok if level == 0 else hashlib.sha256((hid + FASKEY).encode()).hexdigest()
    assert (target.netloc, target.path) == ("10.77.0.1:2050", "/opennds_auth/")
    assert parse_qs(target.query)["tok"] == [expected]
    other = _binauth(client, {"method": "auth_client", "mac": "02:00:00:00:00:99", "tok": tok})
    if level > 0:   # the redirect named the device: the token is no good on another one
        assert other.get_data(as_text=True) == "DENY\n"
    else:           # level 0 names no device: the first to come back with the token gets the grant
        assert other.get_data(as_text=True) == f"OK {PARQUE}\n"
        return
    first = _binauth(client, {"method": "auth_client", "mac": CLIENT_MAC, "tok": tok})
    again = _binauth(client, {"method": "auth_client", "mac": CLIENT_MAC, "tok": tok})
    assert (first.get_data(as_text=True), again.get_data(as_text=True)) == (f"OK {PARQUE}\n", "DENY\n")


def test_a_guessed_token_gets_nobody_in(client) -> None:
    # openNDS takes any token of 8 characters or fewer as the clear one: BinAuth asks Conecta, which gave none.
    resp = _binauth(client, {"method": "auth_client", "mac": CLIENT_MAC, "tok": token()})
    assert resp.status_code == 200 and resp.get_data(as_text=True) == "DENY\n"


def test_reports_enter_accounting_once_with_the_gateways_bytes(app, client, db_factory, caplog) -> None:
    tok = token()
    register(client, page(client.get(level2_url(tok))))
    assert _binauth(client, {"method": "auth_client", "mac": CLIENT_MAC, "tok": tok}).status_code == 200
    start = {"method": "client_auth", "mac": CLIENT_MAC, "down": "0", "up": "0", "start": "1796232694",
             "end": "1796319094", "tok": tok}
    stop = {**start, "method": "idle_deauth", "down": "402432", "up": "1908", "end": "1796233294"}
    for fields in (start, stop, stop, start):       # duplicates, as a retrying script sends them
        assert _binauth(client, fields).get_data(as_text=True) == "OK\n"
    with db_factory() as db:
        session = db.scalar(select(Session))
        usage = db.execute(select(func.sum(UsageDaily.bytes_down), func.sum(UsageDaily.bytes_up),
                                  func.sum(UsageDaily.sessions), func.sum(UsageDaily.seconds))).one()
    assert (session.bytes_out, session.bytes_in, session.seconds, session.is_open) == (402432, 1908, 600, False)
    assert session.user_id is not None and session.terminate_cause == "Idle-Timeout"
    assert tuple(usage) == (402432, 1908, 1, 600)
    with db_factory() as db:   # the node board hears of the gateway through its reports
        assert db.scalar(select(Nas.last_seen).where(Nas.name == NDS_NAME)) is not None
    # Forgeries: refused with a line in the log that holds neither the key nor the signature.
    caplog.set_level(logging.WARNING, logger="conecta.portal")
    forged = {**stop, "down": "999999999", "tok": token()}
    refused = [_binauth(client, forged, faskey="NotTheRightKey99"),
               _binauth(client, {**forged, "gw": "ap-nadie"}),
               _binauth(client, {**forged, "method": "rm -rf"}),
               _binauth(client, {}, body="gw=ap-opennds&method=idle_deauth&mac=b6:99:df:e3:cf:a0&tok=x"),
               _binauth(client, {**forged, "down": "12e9"})]
    assert [r.status_code for r in refused] == [403] * 5
    assert FASKEY not in caplog.text and "sig=" not in caplog.text and len(caplog.records) == 5
    with db_factory() as db:
        assert db.scalar(select(func.sum(UsageDaily.bytes_down))) == 402432


def test_a_session_closed_for_silence_takes_its_late_report(client, db_factory) -> None:
    # openNDS reports only a session's start and end: the sweep of silent sessions may close it first.
    tok = token()
    start = {"method": "client_auth", "mac": CLIENT_MAC, "start": "1796232694", "end": "1796232694", "tok": tok}
    assert _binauth(client, start).status_code == 200
    with db_factory() as db:
        assert len(close_stale(db, datetime(2099, 1, 1))) == 1
        db.commit()
    stop = {**start, "method": "timeout_deauth", "down": "5000", "up": "700", "end": "1796236294"}
    assert _binauth(client, stop).status_code == 200
    with db_factory() as db:
        rows = db.execute(select(Session.generation, Session.bytes_out, Session.bytes_in, Session.seconds)).all()
    assert [tuple(r) for r in rows] == [(0, 5000, 700, 3600)]


def test_level_3_hands_the_policy_to_authmon(app, client, db_factory) -> None:
    _level(app, db_factory, 3)
    tok = token()
    resp = register(client, page(client.get(level2_url(tok))))
    assert resp.status_code == 200 and "Listo" in page(resp)
    gatewayhash = hashlib.sha256(nds_quote(NDS_NAME + SUFFIX).encode()).hexdigest()   # as authmon sends it

    def authmon(action: str, payload: str, address: str = NDS_IP, gwhash: str = gatewayhash) -> tuple[int, str]:
        form = {"auth_get": action, "gatewayhash": gwhash, "payload": base64.b64encode(payload.encode()).decode()}
        resp = client.post("/opennds/authmon", data=form, environ_base={"REMOTE_ADDR": address})
        return resp.status_code, resp.get_data(as_text=True)

    # minutes for authmon (ndsctl auth), kbit/s, kB; the line URL-encoded as authmon decodes it
    assert authmon("view", "none") == (200, "* " + quote(f"{CLIENT_MAC} 60 1000 5000 0 0 conecta", safe=""))
    assert authmon("view", "none", address="10.9.0.99")[0] == 403
    assert authmon("view", "none", gwhash="0" * 64)[0] == 403
    assert authmon("view", f"* {CLIENT_MAC}") == (200, "ack")
    assert authmon("view", "none") == (200, "*")
