"""CoovaChilli as it really behaves (issue 14), through its simulator (tests/support/chilli.py), the portal
and the real RADIUS server: the redirect of each `res`, its octet direction, per-client /capport behind
its NAT, its reused session ids, its ports and Disconnect-ACK, and the NAS found by its HS_NASID."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select

from portal.core import board, reports, sites
from portal.core.model import CoaRequest, Disconnect, Session, UsageDaily, User
from tests.support.builders import wait_until
from tests.support.nassim import COOVA_NAS, COOVA_NASID
from tests.support.portal import PORTAL, back_to_portal, chilli_logon, fetch, query_of
from tests.support.web import page

DAY = date(2026, 11, 25)                 # the test clock's local day in Mexico City
FRIENDLY = "No pudimos reconocer el punto de acceso"


def _usage(db_factory) -> tuple[int, int, int, int]:
    with db_factory() as db:
        row = db.execute(select(func.sum(UsageDaily.sessions), func.sum(UsageDaily.seconds),
                                func.sum(UsageDaily.bytes_down), func.sum(UsageDaily.bytes_up))).one()
    return tuple(int(v or 0) for v in row)


def test_each_res_of_chilli_lands_where_it_should(client, coova):
    coova.version = "1.8"            # its res=failed after an Access-Reject (1.9 closes the connection)
    status, headers, _ = chilli_logon(client, coova)
    success = back_to_portal(headers["Location"])
    q = query_of(success)
    assert q["res"] == "success" and "challenge" not in q       # no challenge: the logon is done
    assert q["uid"].startswith("c-") and q["timeleft"] == "3600" and q["nasid"] == COOVA_NASID
    back = client.get(success)
    assert back.status_code == 302 and back.headers["Location"] == "/status"
    html = page(client.get("/status"))
    assert "Ya estás en línea." in html and f'<a href="{coova.origin()}" id="onward">' in html
    for forged in (success.replace("timeleft=3600", "timeleft=86400"), success.split("&md=")[0]):
        resp = client.get(forged)                                # md is checked on every res
        assert resp.status_code == 400 and FRIENDLY in page(resp)

    status, headers, _ = fetch("GET", coova.base + coova.logons[-1])     # online already
    q = query_of(headers["Location"])
    assert q["res"] == "already" and "challenge" not in q
    assert client.get(headers["Location"]).headers["Location"] == "/status"

    coova.account("Start")
    status, headers, _ = fetch("GET", coova.base + "/logoff")
    q = query_of(headers["Location"])
    assert q["res"] == "logoff" and len(q["challenge"]) == 32
    resp = client.get(headers["Location"])
    assert resp.status_code == 200 and "Conectarme" in page(resp)
    assert "Ya estás en línea." not in page(client.get("/status"))

    status, headers, _ = fetch("GET", coova.base + coova.logons[-1])     # a used credential: Access-Reject
    q = query_of(headers["Location"])
    assert (q["res"], q["reason"], len(q["challenge"])) == ("failed", "reject", 32) and q["reply"]
    resp = client.get(headers["Location"])
    assert resp.status_code == 200 and "No se pudo conectar" in page(resp)


def test_a_download_through_chilli_is_counted_as_download(client, coova, radius_server, db_factory):
    chilli_logon(client, coova)
    coova.account("Start")
    # What the real access point reported after a 2 MB download.
    coova.account("Stop", seconds=120, bytes_in=72_821, bytes_out=2_075_381, cause="User-Request")
    assert coova.last_acct["Acct-Input-Octets"] == [2_075_381]          # chilli: input = sent to the client
    with db_factory() as db:
        assert db.execute(select(Session.bytes_in, Session.bytes_out)).one() == (72_821, 2_075_381)
        (total,) = reports.usage(db, DAY, DAY, [])
    assert (total["bytes_down"], total["bytes_up"]) == (2_075_381, 72_821)
    # An access point with HS_SWAPOCTETS=on, registered with the RFC's direction.
    coova.swapoctets = True
    with db_factory() as db:
        assert sites.update_nas(db, COOVA_NAS, sites.NasChange(octets_direction="input-is-upload")) == \
            ["octets_direction"]
        db.commit()
    radius_server.registry.load()
    chilli_logon(client, coova)
    coova.account("Start")
    coova.account("Stop", seconds=60, bytes_in=1_000, bytes_out=500_000, cause="User-Request")
    assert coova.last_acct["Acct-Input-Octets"] == [1_000]
    assert _usage(db_factory) == (2, 180, 2_575_381, 73_821)


def test_capport_behind_the_access_points_nat(client, coova):
    wan = {"REMOTE_ADDR": "127.0.0.2"}     # every client behind the AP's NAT comes from its uplink address
    now = [1_764_100_000.0]
    coova.clock = lambda: now[0]
    coova.client_ip = "10.1.0.77"
    # captiveportalapi_uri=https://PORTAL/capport/%{s}-%{M}, expanded into the DHCP lease before login
    api = urlsplit(coova.dhcp_capport_uri(PORTAL + "capport/%{s}-%{M}")).path
    assert api == "/capport/176410000000000001-AABBCC102030"

    def state(path: str, environ: dict = wan) -> dict:
        resp = client.get(path, environ_base=environ)
        assert resp.mimetype == "application/captive+json" and resp.headers["Cache-Control"] == "private, no-store"
        return resp.get_json(force=True)

    assert state(api)["captive"] is True
    chilli_logon(client, coova)
    coova.account("Start")
    coova.account("Interim-Update", seconds=600, bytes_in=50_000_000, bytes_out=150_000_000)
    body = state(api)
    assert body["captive"] is False
    assert body["seconds-remaining"] == 3600 - 600               # this session's 10 minutes are gone
    assert "bytes-remaining" not in body                          # parque's spent GB only slows down
    assert state("/capport")["captive"] is True                  # by address: the AP's, nobody's Framed-IP
    assert state("/capport", {"REMOTE_ADDR": "10.1.0.77"})["captive"] is False   # routed: the client's own
    for other in (api.replace("AABBCC102030", "AABBCC102031"), "/capport/176410000000000001",
                  "/capport/-AABBCC102030", "/capport/" + "9" * 70 + "-AABBCC102030"):
        assert state(other)["captive"] is True                   # another device, or no token at all

    now[0] += 30                               # logout, then a new login within the same DHCP lease
    fetch("GET", coova.base + "/logoff")
    assert state(api)["captive"] is True
    chilli_logon(client, coova)
    coova.account("Start")
    assert coova.sessions[coova.mac].session_id == "176410003000000001"   # the lease still has the old one
    assert state(api)["captive"] is False


def test_a_reused_session_id_is_a_new_session_charged_once(client, coova, db_factory, clock, redis_client,
                                                           radius_server):
    coova.clock = lambda: 1_764_100_000.0      # chilli's clock in one second: the next id is the same
    chilli_logon(client, coova)
    sid = coova.sessions[coova.mac].session_id
    assert sid == "176410000000000001"
    coova.account("Start")
    coova.account("Stop", seconds=0, bytes_in=1_200, bytes_out=3_400, cause="User-Request")
    assert coova.conn().session_id == sid      # handed on to the client's next session
    clock.now += timedelta(seconds=20)
    chilli_logon(client, coova)                # one tap: the remembered phone again
    assert coova.sessions[coova.mac].session_id == sid
    coova.account("Start")
    coova.account("Interim-Update", seconds=300, bytes_in=10_000, bytes_out=90_000)
    with db_factory() as db:
        rows = db.execute(select(Session.generation, Session.is_open, Session.terminate_cause, Session.seconds)
                          .where(Session.acct_session_id == sid).order_by(Session.generation)).all()
        uid = db.scalar(select(User.id))
        online = board.overview(db, DAY)["online"]
    assert rows == [(0, False, "User-Request", 0), (1, True, None, 300)]
    assert online == 1                                            # on the live console
    assert redis_client.zcard(f"u:{uid}:open") == 1               # and against the device limit
    # The day's GB runs out: parque slows the session down with a CoA-Request to chilli's CoA port (where
    # its accounting comes from), answered without Message-Authenticator; it names the second generation.
    coova.account("Interim-Update", seconds=600, bytes_in=100_000_000, bytes_out=950_000_000)

    def slowed() -> CoaRequest | None:
        with db_factory() as db:
            return db.scalar(select(CoaRequest).where(CoaRequest.result != "pending"))
    coa = wait_until(slowed, what="the CoA-Request outcome")
    with db_factory() as db:
        second = db.scalar(select(Session).where(Session.generation == 1))
        first_slow = db.scalar(select(Session.slow_since).where(Session.generation == 0))
        slow_sessions = db.scalar(select(func.sum(UsageDaily.slow_sessions)))
    assert (coa.result, coa.session_id) == ("ack", second.id) and second.slow_since is not None
    assert first_slow is None and slow_sessions == 1
    assert coova.sessions[coova.mac].rate_down == 256_000 and coova.coa.log[-1].request["Acct-Session-Id"] == [sid]
    # Staff cut it off (the console's button): a Disconnect-Request, answered without Message-Authenticator.
    radius_server.disconnector.disconnect_session(second.id, "staff")

    def outcome() -> str | None:
        with db_factory() as db:
            return db.scalar(select(Disconnect.result).where(Disconnect.result != "pending"))
    assert wait_until(outcome, what="the Disconnect outcome") == "ack"
    assert coova.disconnected == [sid]

    def closed() -> str | None:
        with db_factory() as db:
            return db.scalar(select(Session.terminate_cause).where(Session.generation == 1))
    assert wait_until(closed, what="chilli's Stop") == "Admin-Reset"
    assert _usage(db_factory) == (2, 600, 3_400 + 950_000_000, 1_200 + 100_000_000)
    assert redis_client.zcard(f"u:{uid}:open") == 0


def test_chilli_ports(client, coova):
    """Portal logons come from a port of their own (chilli forks for them); MAC authentication and
    accounting from its CoA port. Conecta answers each where it came from."""
    chilli_logon(client, coova)
    assert coova.auth_log[-1].accepted and coova.auth_log[-1].source_port != coova.coa_port
    assert coova.account("Start") == 5
    assert coova.account("Stop", seconds=60, cause="User-Request") == 5
    mac_auth = coova.access_request(coova.mac, coova.mac, pap="macpasswd")    # HS_MACAUTH: remembered
    assert mac_auth.accepted and mac_auth.source_port == coova.coa_port


def test_the_access_point_is_found_by_its_nas_identifier(client, coova, fleet_ids):
    """chilli names itself by HS_NASID; its uamip is the hotspot address and, routed, the browser comes
    from its own address: neither is the address Conecta knows the access point by."""
    routed = {"REMOTE_ADDR": "10.1.0.77"}
    url = coova.portal_redirect("notyet", coova.origin())
    assert query_of(url)["nasid"] == COOVA_NASID != COOVA_NAS
    resp = client.get(url, environ_base=routed)
    assert resp.status_code == 200 and 'action="/register"' in page(resp)
    with client.session_transaction() as s:
        assert s["arrival"]["nas_id"] == fleet_ids["coova"]
    coova.nasid = "nas02"                       # an HS_NASID nobody registered
    resp = client.get(coova.portal_redirect("notyet", coova.origin()), environ_base=routed)
    assert resp.status_code == 400 and FRIENDLY in page(resp)
