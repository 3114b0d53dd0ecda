"""The slow lane end to end, with the park policy as shipped (after_quota throttle): the CoovaChilli- and
MikroTik-like simulators are driven through interims until the day's gigabyte is spent; the CoA-Request
on the wire, the fallback to Disconnect-Request on a NAK, the slow-lane Access-Accept at the next login,
/status, /capport and the report's slow-lane figures."""

from __future__ import annotations

from datetime import timedelta

from pyrad import packet

from portal.core import reports
from tests.support.builders import SECRET, add_user
from tests.support.portal import arrive_and_register, fetch
from tests.support.slowlane import integer, outcomes, read_request
from tests.support.web import page

INTERIMS = (400_000_000, 800_000_000, 1_050_000_000)     # bytes down so far: the third is over the GB


def drive(sim, start_seconds: int = 0) -> None:
    """Start, then interims every five minutes until the day's gigabyte is spent."""
    assert sim.account("Start") == packet.AccountingResponse
    for i, down in enumerate(INTERIMS, start=1):
        assert sim.account("Interim-Update", seconds=start_seconds + 300 * i, bytes_in=down // 20,
                           bytes_out=down) == packet.AccountingResponse


def test_the_slow_lane_with_coovachilli_and_mikrotik(client, coova, mikrotik, db_factory, policies, clock):
    local = clock().astimezone(client.application.config["CONECTA"].tz)
    reset = local.replace(hour=0, minute=0) + timedelta(days=1)      # the next local midnight
    # A citizen registers at the CoovaChilli (the hand-off logs her in), and browses past her gigabyte.
    coova.client_ip = "10.1.0.7"
    resp = arrive_and_register(client, coova.portal_redirect("notyet", coova.origin()))
    fetch("GET", resp.headers["Location"])
    (login,) = coova.accepted()
    assert "ChilliSpot-Max-Total-Octets" not in login.attributes            # the NAS must not cut at the GB
    assert coova.sessions[coova.mac].rate_down == 5_000_000
    drive(coova)
    (slowed,), cuts = outcomes(db_factory)
    assert (slowed.action, slowed.reason, slowed.result, cuts) == ("slow", "daily_data", "ack", [])
    session = coova.sessions[coova.mac]
    assert (session.rate_down, session.rate_up) == (256_000, 128_000)       # the NAS obeyed
    exchange = coova.coa.log[0]
    code, attrs = read_request(exchange.raw, SECRET.encode())
    got = dict(attrs)
    assert (code, exchange.reply_code) == (packet.CoARequest, packet.CoAACK)
    assert got[1] == session.username.encode() and got[44] == session.session_id.encode()
    assert got[8] == bytes([10, 1, 0, 7]) and got[31] == coova.mac.encode()
    assert (integer(got[(14559, 5)]), integer(got[(14559, 4)])) == (256, 128)

    # A staff-made account at the MikroTik, whose router refuses rate changes: Disconnect-Request instead.
    add_user(db_factory, policies, "beto", "betopass123", gender="male", age_band="30-44")
    mikrotik.client_ip, mikrotik.refuse_coa = "10.5.50.7", 405                # Unsupported-Service
    assert mikrotik.access_request("beto", mikrotik.mac, pap="betopass123").accepted
    assert mikrotik.sessions[mikrotik.mac].rate_down == 5_000_000
    drive(mikrotik)
    coas, (cut,) = outcomes(db_factory, count=2)
    assert (coas[1].result, coas[1].error_cause, coas[1].disconnect_id) == ("nak", 405, cut.id)
    assert (cut.result, cut.reason) == ("ack", "daily_data")
    assert [e.request.code for e in mikrotik.coa.log] == [packet.CoARequest, packet.DisconnectRequest]
    code, attrs = read_request(mikrotik.coa.log[0].raw, SECRET.encode())
    assert dict(attrs)[(14988, 8)] == b"128k/256k"                          # Mikrotik-Rate-Limit rx/tx
    assert read_request(mikrotik.coa.log[1].raw, SECRET.encode())[0] == packet.DisconnectRequest
    assert mikrotik.acct_log[-1] == ("Stop", packet.AccountingResponse) and not mikrotik.sessions
    # He logs in again: accepted in the slow lane, told so in Spanish, and the router is given the rate.
    again = mikrotik.access_request("beto", mikrotik.mac, pap="betopass123")
    assert again.accepted and again.attributes["Mikrotik-Rate-Limit"] == ["128k/256k"]
    assert again.reply_message == "Usaste tu giga de hoy: sigues conectado a velocidad reducida hasta las 00:00."
    assert "Mikrotik-Total-Limit" not in again.attributes
    assert mikrotik.sessions[mikrotik.mac].rate_down == 256_000
    assert mikrotik.account("Start") == packet.AccountingResponse
    assert mikrotik.account("Interim-Update", seconds=300, bytes_out=30_000_000) == packet.AccountingResponse

    # Both phones learn it from /capport; the citizen reads it on /status.
    for address in ("10.1.0.7", "10.5.50.7"):
        body = client.get("/capport", environ_base={"REMOTE_ADDR": address}).get_json(force=True)
        assert body["captive"] is False and body["conecta-slow-lane"] is True
        assert body["conecta-full-speed-at"] == reset.isoformat() and "bytes-remaining" not in body
    html = page(client.get("/status"))
    assert "Usaste tu giga de hoy: sigues conectado a velocidad reducida hasta las 00:00." in html
    assert "256 kbit/s de bajada y 128 kbit/s de subida" in html
    assert f"La velocidad normal vuelve el {reset:%Y-%m-%d %H:%M} (hora de America/Mexico_City)" in html
    english = page(client.get("/status", headers={"Accept-Language": "en"}))
    assert "you stay online at reduced speed until 00:00." in english

    # The report: who reached the slow lane, their sessions in it and the bytes used there.
    day = local.date()
    with client.application.app_context():
        from portal.web.extensions import db
        rows = reports.usage(db.session, day, day, ["site", "gender", "age_band"], 0, "slow-lane")
        hidden = reports.usage(db.session, day, day, ["site", "gender", "age_band"], 5, "slow-lane")
    cells = {(r["gender"], r["age_band"]): (r["users"], r["sessions"], r["bytes"]) for r in rows if r["row"] == "cell"}
    # Her bytes after the CoA-ACK are not known yet (no interim since); his whole second session is.
    assert cells == {("female", "18-29"): (1, 1, 0), ("male", "30-44"): (1, 1, 30_000_000)}
    assert rows[-1]["row"] == "total" and (rows[-1]["users"], rows[-1]["sessions"]) == (2, 2)
    assert all(r["suppressed"] and r["users"] is None for r in hidden)       # two people: fewer than five
