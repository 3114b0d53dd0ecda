"""The slow lane ([after_quota] throttle in the park policy): a spent data pool slows the session down
with a CoA-Request instead of cutting it off, and every way an access point can answer badly."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
from pyrad import packet
from sqlalchemy import select, update

from portal.core import accounting
from portal.core.model import CoaRequest, Disconnect, Session, UsageDaily
from portal.core.model import Nas as NasRow
from tests.support.builders import SECRET, add_site_and_nas, settle
from tests.support.coanas import FakeCoaNas
from tests.support.slowlane import finished, integer, outcomes, read_request, serving, spend_the_day, wait_rows
from tests.support.web import metric

GB = 10**9
MAC = "AA-BB-CC-00-00-01"


@pytest.fixture()
def fake_nas(db_factory, nas_id, dictionary, radius_server):
    """A fake access point's RFC 5176 port, registered as the CoA port of the test's NAS; answers as told."""
    made = []

    def make(**answers) -> FakeCoaNas:
        coa = FakeCoaNas(dictionary, **answers)
        made.append(coa)
        with db_factory.begin() as db:
            db.execute(update(NasRow).where(NasRow.id == nas_id).values(coa_port=coa.port))
        return coa
    yield make
    for coa in made:
        coa.close()


def session_row(db_factory) -> Session:
    with db_factory() as db:
        return db.scalars(select(Session)).one()


def usage_row(db_factory) -> UsageDaily:
    with db_factory() as db:
        return db.scalars(select(UsageDaily)).one()


def lines(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_a_spent_pool_slows_the_session_with_a_coa_request(fake_nas, radius_server, dictionary, db_factory,
                                                            policies, client):
    coa = fake_nas(coa="ack")
    acks = metric(client, "conecta_coa_requests_total", action="slow", result="ack")   # counted since start-up
    nas, reply = spend_the_day(radius_server, dictionary, db_factory, policies)
    coas, cuts = outcomes(db_factory)
    assert [(c.action, c.reason, c.result, c.attempts, c.disconnect_id) for c in coas] == \
        [("slow", "daily_data", "ack", 1, None)]
    assert cuts == [] and coa.of(packet.DisconnectRequest) == []
    # The bytes on the wire, checked by hand: Request Authenticator and Message-Authenticator with the
    # NAS's secret, the session named, the slow lane in CoovaChilli's and WISPr's attributes.
    code, attrs = read_request(coa.raw[0], SECRET.encode())
    assert code == packet.CoARequest == 43
    got = dict(attrs)
    assert (got[1], got[44], got[31], got[8]) == (b"ana", b"s1", MAC.encode(), bytes([10, 1, 0, 7]))
    assert integer(got[(14559, 5)]) == 256 and integer(got[(14559, 4)]) == 128          # kbit/s
    assert integer(got[(14122, 8)]) == 256_000 and integer(got[(14122, 7)]) == 128_000  # bit/s
    assert (14559, 3) not in got                                # no data cap: the NAS must not end it
    assert session_row(db_factory).slow_since is not None
    # More traffic in the slow lane: counted once, and as slow-lane traffic; no second CoA.
    nas.acct("Interim-Update", "s1", "ana", seconds=900, bytes_in=20_000_000, bytes_out=1_300_000_000, reply=reply)
    nas.acct("Interim-Update", "s1", "ana", seconds=900, bytes_in=20_000_000, bytes_out=1_300_000_000, reply=reply,
             Acct_Delay_Time=3)                                   # a retransmission
    settle(radius_server)
    wait_rows(db_factory, CoaRequest, finished)
    assert len(coa.received) == 1 and all(coa.verified)
    usage = usage_row(db_factory)
    assert (usage.sessions, usage.bytes_down, usage.bytes_up) == (1, 1_300_000_000, 20_000_000)
    assert (usage.slow_sessions, usage.slow_bytes) == (1, 200_000_000 + 10_000_000)
    assert metric(client, "conecta_sessions_slow_lane") == 1
    assert metric(client, "conecta_coa_requests_total", action="slow", result="ack") == acks + 1
    # A second device logs in: straight into the slow lane, in plain Spanish, with no data cap.
    again = nas.auth("ana", "anapass123", mac="AA-BB-CC-00-00-02")
    assert again.code == packet.AccessAccept
    assert again["Reply-Message"] == ["Usaste tu giga de hoy: sigues conectado a velocidad reducida hasta las 00:00."]
    assert again["ChilliSpot-Bandwidth-Max-Down"] == [256] and "ChilliSpot-Max-Total-Octets" not in again
    assert again["Class"][0].endswith(b":slow")


@pytest.mark.parametrize(("cause", "name"), [(503, "Session-Context-Not-Found"), (404, "Invalid-Request")])
def test_a_coa_nak_with_error_cause_falls_back_to_disconnect(cause, name, fake_nas, radius_server, dictionary,
                                                              db_factory, policies, caplog):
    coa = fake_nas(coa="nak", disconnect="ack", error_cause=cause)
    with caplog.at_level(logging.INFO):
        spend_the_day(radius_server, dictionary, db_factory, policies)
        (request,), (cut,) = outcomes(db_factory)
    assert (request.result, request.error_cause, request.disconnect_id) == ("nak", cause, cut.id)
    assert (cut.result, cut.reason) == ("ack", "daily_data")
    assert [p.code for p in coa.received] == [packet.CoARequest, packet.DisconnectRequest]
    logged = lines(caplog, "CoA-Request (slow")
    assert len(logged) == 1 and f"Error-Cause {cause} {name}" in logged[0] and "falling back" in logged[0]
    assert session_row(db_factory).slow_since is None


@pytest.mark.parametrize("answer", ["silent", "forged", "bad-ma"])
def test_silence_or_a_forged_ack_falls_back_to_disconnect(answer, fake_nas, radius_server, dictionary, db_factory,
                                                          policies, caplog):
    """A NAS that answers nothing, or whose ACK fails verification (wrong secret, or only a spoiled
    Message-Authenticator, BlastRADIUS): the session is not marked slow on its word, the
    Disconnect-Request follows, and the whole story is one log line."""
    coa = fake_nas(coa=answer, disconnect="ack")
    with caplog.at_level(logging.INFO):
        spend_the_day(radius_server, dictionary, db_factory, policies)
        (request,), (cut,) = outcomes(db_factory)
    assert (request.result, request.attempts, request.disconnect_id) == ("timeout", 2, cut.id)
    assert cut.result == "ack"
    assert len(coa.of(packet.CoARequest)) == 2                  # retried once, as Disconnect-Requests are
    logged = lines(caplog, "CoA-Request (slow")
    assert len(logged) == 1 and ("failed verification" in logged[0]) == (answer != "silent")
    assert session_row(db_factory).slow_since is None


def test_nobody_is_left_at_full_speed_silently_when_nothing_answers(fake_nas, radius_server, dictionary, db_factory,
                                                                    policies, caplog, client):
    fake_nas(coa="silent", disconnect="silent")
    before = (metric(client, "conecta_coa_requests_total", action="slow", result="timeout"),
              metric(client, "conecta_disconnect_requests_total", result="timeout"))
    with caplog.at_level(logging.INFO):
        spend_the_day(radius_server, dictionary, db_factory, policies)
        (request,), (cut,) = outcomes(db_factory)
    assert (request.result, cut.result) == ("timeout", "timeout")
    assert [r.levelno for r in caplog.records if "session" in r.getMessage()] == [logging.WARNING] * 2
    assert (metric(client, "conecta_coa_requests_total", action="slow", result="timeout"),
            metric(client, "conecta_disconnect_requests_total", result="timeout")) == (before[0] + 1, before[1] + 1)


def test_a_duplicate_ack_counts_the_slow_session_once(fake_nas, radius_server, dictionary, db_factory, policies,
                                                      clock):
    coa = fake_nas(coa="twice")
    spend_the_day(radius_server, dictionary, db_factory, policies)
    (request,), _ = outcomes(db_factory)
    assert request.result == "ack" and len(coa.received) == 1
    session = session_row(db_factory)
    # The ACK's effect, applied again (as a second copy would): nothing changes, nothing is counted twice.
    with db_factory.begin() as db:
        assert accounting.enter_slow_lane(db, session.id, clock().replace(tzinfo=None), session.started_at.date()) \
            is False
    assert session_row(db_factory).slow_since == session.slow_since
    assert usage_row(db_factory).slow_sessions == 1


def test_a_nas_without_a_coa_port_is_recorded_once_and_the_next_login_is_slow(fake_nas, radius_server, dictionary,
                                                                             db_factory, policies, nas_id, caplog):
    with db_factory.begin() as db:
        db.execute(update(NasRow).where(NasRow.id == nas_id).values(coa_port=0))
    with caplog.at_level(logging.INFO):
        nas, reply = spend_the_day(radius_server, dictionary, db_factory, policies)
        wait_rows(db_factory, CoaRequest, finished)
        nas.acct("Interim-Update", "s1", "ana", seconds=900, bytes_out=1_200_000_000, reply=reply)
        settle(radius_server)
        (request,) = wait_rows(db_factory, CoaRequest, finished)
    assert (request.result, request.attempts) == ("no-coa", 0)
    assert len(lines(caplog, "CoA-Request (slow")) == 1
    assert session_row(db_factory).slow_since is None       # still at full speed, and the records say so
    with db_factory() as db:
        assert db.scalars(select(Disconnect)).all() == []         # a Disconnect-Request could not go either
    assert nas.auth("ana", "anapass123", mac="AA-BB-CC-00-00-02")["Reply-Message"][0].startswith("Usaste tu giga")


def test_pfsense_gets_the_slow_lane_at_its_next_reauthentication(settings, policies, db_factory, redis_client,
                                                                 dictionary, clock):
    """pfSense has no CoA: it re-authenticates every minute, and that Access-Accept carries the slow lane."""
    add_site_and_nas(db_factory, policies, vendor="pfsense", ip="127.0.0.1", site="Plaza")
    with serving(settings, policies, db_factory, redis_client, clock) as server:
        nas, _ = spend_the_day(server, dictionary, db_factory, policies)
        (request,) = wait_rows(db_factory, CoaRequest, finished)
        again = nas.auth("ana", "anapass123")
    assert request.result == "no-coa"
    # pfSense applies it within the minute: the session counts as in the slow lane from now on.
    assert session_row(db_factory).slow_since is not None and usage_row(db_factory).slow_sessions == 1
    assert again.code == packet.AccessAccept
    assert (again["pfSense-Bandwidth-Max-Down"], again["pfSense-Bandwidth-Max-Up"]) == ([256_000], [128_000])
    assert "pfSense-Max-Total-Octets" not in again


@pytest.mark.parametrize(("vendor", "expected"), [
    ("mikrotik", {"Mikrotik-Rate-Limit": ["128k/256k"]}),
    ("generic", {"WISPr-Bandwidth-Max-Up": [128_000], "WISPr-Bandwidth-Max-Down": [256_000]}),
    ("unifi", {"WISPr-Bandwidth-Max-Up": [128_000], "WISPr-Bandwidth-Max-Down": [256_000]}),
])
def test_the_slow_lane_accept_in_each_vendors_attributes(vendor, expected, settings, policies, db_factory,
                                                         redis_client, dictionary, clock):
    add_site_and_nas(db_factory, policies, vendor=vendor, ip="127.0.0.1", site="Plaza", coa_port=0)
    with serving(settings, policies, db_factory, redis_client, clock) as server:
        nas, _ = spend_the_day(server, dictionary, db_factory, policies)
        reply = nas.auth("ana", "anapass123", mac="AA-BB-CC-00-00-02")
    for name, value in expected.items():
        assert reply[name] == value
    assert "Mikrotik-Total-Limit" not in reply and "ChilliSpot-Max-Total-Octets" not in reply
    assert reply["Session-Timeout"] == [3600] and reply["Reply-Message"][0].startswith("Usaste tu giga de hoy")


def test_full_speed_comes_back_when_the_pool_resets(fake_nas, radius_server, dictionary, db_factory, policies,
                                                    clock, redis_client):
    coa = fake_nas(coa="ack")
    spend_the_day(radius_server, dictionary, db_factory, policies)
    outcomes(db_factory)
    sweep = radius_server.applier.on_sweep
    sweep()                                                   # still the same day: nothing to restore
    assert len(coa.received) == 1
    clock.now = datetime(2026, 11, 27, 13, 0, tzinfo=timezone.utc)      # 07:00 the next local day
    sweep()
    restored = wait_rows(db_factory, CoaRequest, lambda rows: len(rows) == 2 and finished(rows))[1]
    assert (restored.action, restored.result) == ("restore", "ack")
    _, attrs = read_request(coa.raw[1], SECRET.encode())
    got = dict(attrs)
    assert integer(got[(14559, 5)]) == 5000 and integer(got[(14559, 4)]) == 1000       # the park's 5/1 Mbit
    assert session_row(db_factory).slow_since is None
    sweep()
    assert len(coa.received) == 2                             # back at full speed: nothing more to ask
