"""Per-person quotas across devices, opening hours, midnight resets, vendor replies and cut-off."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from pyrad import packet
from sqlalchemy import select, update

from portal.core.model import Disconnect
from portal.core.model import Nas as NasRow
from tests.support.builders import add_site_and_nas, add_user, settle
from tests.support.coanas import FakeCoaNas
from tests.support.radiusclient import Nas
from tests.support.slowlane import serving

MEX = timedelta(hours=6)  # America/Mexico_City is UTC-6 in November


def local(hour: int, minute: int = 0, day: int = 26) -> datetime:
    """A UTC instant for a local Mexico City wall-clock time in November 2026."""
    return datetime(2026, 11, day, hour, minute, tzinfo=timezone.utc) + MEX


def test_time_left_today_across_devices(radius_server, dictionary, db_factory, policies):
    add_user(db_factory, policies, "ana", "anapass123")
    nas = Nas(radius_server, dictionary)
    phone = nas.auth("ana", "anapass123", mac="AA-BB-CC-00-00-01")
    laptop = nas.auth("ana", "anapass123", mac="AA-BB-CC-00-00-02")
    nas.acct("Start", "phone-1", "ana", reply=phone, mac="AA-BB-CC-00-00-01")
    nas.acct("Start", "laptop-1", "ana", reply=laptop, mac="AA-BB-CC-00-00-02")
    nas.acct("Stop", "phone-1", "ana", seconds=2400, bytes_out=10**6, reply=phone, mac="AA-BB-CC-00-00-01")
    nas.acct("Stop", "laptop-1", "ana", seconds=3000, bytes_out=10**6, reply=laptop, mac="AA-BB-CC-00-00-02")
    settle(radius_server)
    reply = nas.auth("ana", "anapass123")
    assert reply.code == packet.AccessAccept
    assert reply["Session-Timeout"] == [7200 - 5400]       # 2 h a day minus 90 min on two devices
    assert "ChilliSpot-Max-Total-Octets" not in reply      # parque's data pools slow down: no cap for the NAS


def test_daily_time_spent_rejects_until_local_midnight(radius_server, dictionary, db_factory, policies, clock):
    add_user(db_factory, policies, "ana", "anapass123")
    nas = Nas(radius_server, dictionary)
    clock.now = local(21, 0)
    reply = nas.auth("ana", "anapass123")
    nas.acct("Start", "s1", "ana", reply=reply)
    nas.acct("Stop", "s1", "ana", seconds=7200, reply=reply)
    settle(radius_server)
    rejected = nas.auth("ana", "anapass123")
    assert rejected.code == packet.AccessReject
    assert rejected["Reply-Message"] == ["Usaste tus 2 horas de hoy. Vuelve a partir de las 00:00."]
    clock.now = local(7, 0, day=27)                          # next local day, after opening
    assert nas.auth("ana", "anapass123").code == packet.AccessAccept


def test_opening_hours_and_time_to_closing(radius_server, dictionary, db_factory, policies, clock):
    add_user(db_factory, policies, "ana", "anapass123")
    nas = Nas(radius_server, dictionary)
    clock.now = local(22, 40)
    assert nas.auth("ana", "anapass123")["Session-Timeout"] == [20 * 60]    # parque closes at 23:00
    clock.now = local(23, 30)
    closed = nas.auth("ana", "anapass123")
    assert closed.code == packet.AccessReject
    assert "06:00" in closed["Reply-Message"][0] and "23:00" in closed["Reply-Message"][0]


def test_concurrent_devices_limit(radius_server, dictionary, db_factory, policies):
    add_user(db_factory, policies, "ana", "anapass123")                      # parque: 2 devices
    nas = Nas(radius_server, dictionary)
    for i in (1, 2):
        reply = nas.auth("ana", "anapass123", mac=f"AA-BB-CC-00-00-0{i}")
        nas.acct("Start", f"s{i}", "ana", reply=reply, mac=f"AA-BB-CC-00-00-0{i}")
    settle(radius_server)
    third = nas.auth("ana", "anapass123", mac="AA-BB-CC-00-00-03")
    assert third.code == packet.AccessReject
    assert "2 dispositivos" in third["Reply-Message"][0]
    nas.acct("Stop", "s1", "ana", seconds=60, mac="AA-BB-CC-00-00-01")
    settle(radius_server)
    assert nas.auth("ana", "anapass123", mac="AA-BB-CC-00-00-03").code == packet.AccessAccept


def test_monthly_pool_with_gigawords(radius_server, dictionary, db_factory, policies):
    add_user(db_factory, policies, "casa-7", "casa7pass", policy="ejido")    # 30 GB a month
    nas = Nas(radius_server, dictionary)
    reply = nas.auth("casa-7", "casa7pass")
    left = 30 * 10**9
    assert reply["ChilliSpot-Max-Total-Octets"] == [left % 2**32]
    assert reply["ChilliSpot-Max-Total-Gigawords"] == [left // 2**32]
    assert "Session-Timeout" in reply and reply["Session-Timeout"] == [12 * 3600]
    nas.acct("Start", "m1", "casa-7", reply=reply)
    nas.acct("Interim-Update", "m1", "casa-7", seconds=3600, bytes_in=2 * 10**9, bytes_out=20 * 10**9, reply=reply)
    nas.acct("Interim-Update", "m1", "casa-7", seconds=3600, bytes_in=2 * 10**9, bytes_out=20 * 10**9, reply=reply,
             Acct_Delay_Time=5)                                          # a retransmission counts once
    settle(radius_server)
    again = nas.auth("casa-7", "casa7pass", mac="AA-BB-CC-00-00-05")
    assert again["ChilliSpot-Max-Total-Octets"][0] + again["ChilliSpot-Max-Total-Gigawords"][0] * 2**32 \
        == 30 * 10**9 - 22 * 10**9
    nas.acct("Stop", "m1", "casa-7", seconds=7200, bytes_in=3 * 10**9, bytes_out=28 * 10**9, reply=reply)
    settle(radius_server)
    spent = nas.auth("casa-7", "casa7pass")
    assert spent.code == packet.AccessReject
    assert spent["Reply-Message"] == ["Usaste tus 30 GB de este mes. Vuelve a partir del 1 de diciembre."]


EJIDO_POOL = 30 * 10**9     # a monthly cap over 4 GiB: Gigawords where the vendor has them


@pytest.mark.parametrize(("vendor", "expected"), [
    ("mikrotik", {"Mikrotik-Rate-Limit": ["2000k/10000k"], "Mikrotik-Total-Limit": [EJIDO_POOL % 2**32],
                  "Mikrotik-Total-Limit-Gigawords": [EJIDO_POOL // 2**32]}),
    ("pfsense", {"pfSense-Bandwidth-Max-Up": [2 * 10**6], "pfSense-Bandwidth-Max-Down": [10 * 10**6],
                 "pfSense-Max-Total-Octets": [2**32 - 1]}),
    ("generic", {"WISPr-Bandwidth-Max-Up": [2 * 10**6], "WISPr-Bandwidth-Max-Down": [10 * 10**6]}),
])
def test_vendor_reply_attributes(vendor, expected, settings, policies, db_factory, redis_client, dictionary, clock):
    add_site_and_nas(db_factory, policies, vendor=vendor, ip="127.0.0.1", site="Plaza")
    add_user(db_factory, policies, "casa-7", "casa7pass", policy="ejido")       # a pool that ends the session
    with serving(settings, policies, db_factory, redis_client, clock) as server:
        reply = Nas(server, dictionary).auth("casa-7", "casa7pass")
    for name, value in expected.items():
        assert reply[name] == value
    assert "ChilliSpot-Max-Total-Octets" not in reply


@pytest.mark.parametrize("answer", [True, False])
def test_interim_over_a_limit_that_ends_sessions_sends_disconnect(answer, radius_server, dictionary, db_factory,
                                                                   policies, nas_id):
    coa = FakeCoaNas(dictionary, answer=answer)
    with db_factory.begin() as db:
        db.execute(update(NasRow).where(NasRow.id == nas_id).values(coa_port=coa.port))
    radius_server.registry.load()
    try:
        add_user(db_factory, policies, "ana", "anapass123")
        nas = Nas(radius_server, dictionary)
        reply = nas.auth("ana", "anapass123")
        nas.acct("Start", "s1", "ana", reply=reply, Framed_IP_Address="10.1.0.7")
        nas.acct("Interim-Update", "s1", "ana", seconds=7300, bytes_out=100_000_000, reply=reply)  # > 2 h/day
        deadline = time.time() + 5
        result = None
        while time.time() < deadline and result in (None, "pending"):
            time.sleep(0.1)
            with db_factory() as db:
                result = db.scalar(select(Disconnect.result))
        with db_factory() as db:
            row = db.scalars(select(Disconnect)).one()
        assert row.result == ("ack" if answer else "timeout")
        assert row.reason == "daily_time"
        assert row.attempts == (1 if answer else 2)
        sent = coa.received[0]
        assert sent["User-Name"] == ["ana"] and sent["Acct-Session-Id"] == ["s1"]
        assert sent["Calling-Station-Id"] == ["AA-BB-CC-00-00-01"]
        assert len(coa.received) == row.attempts and all(coa.verified)
        assert not coa.of(packet.CoARequest)        # time limits end the session: no slow lane
    finally:
        coa.close()
