"""Accounting into the record of truth: sessions, rollups, dedup, NAS reboots, counter rebuilds."""

from __future__ import annotations

from pyrad import packet
from sqlalchemy import func, select

from portal.core import counters, credentials
from portal.core.model import AcctRecord, Session, UsageDaily
from tests.support.builders import add_user, settle
from tests.support.radiusclient import Nas


def _usage(db_factory, uid: int) -> tuple[int, int, int, int]:
    with db_factory() as db:
        row = db.execute(select(func.sum(UsageDaily.sessions), func.sum(UsageDaily.seconds),
                                func.sum(UsageDaily.bytes_down), func.sum(UsageDaily.bytes_up))
                         .where(UsageDaily.user_id == uid)).one()
    return tuple(int(v or 0) for v in row)


def test_start_interim_stop_and_duplicates_count_once(radius_server, dictionary, db_factory, policies):
    uid = add_user(db_factory, policies, "ana", "anapass123")
    nas = Nas(radius_server, dictionary)
    reply = nas.auth("ana", "anapass123")
    sends = [("Start", 0, 0, 0), ("Interim-Update", 300, 1000, 50_000), ("Interim-Update", 300, 1000, 50_000),
             ("Interim-Update", 600, 3000, 5 * 2**32 + 7), ("Stop", 900, 4000, 5 * 2**32 + 9),
             ("Stop", 900, 4000, 5 * 2**32 + 9)]
    for status, seconds, up, down in sends:
        assert nas.acct(status, "sess-1", "ana", seconds, up, down, reply=reply).code == packet.AccountingResponse
    settle(radius_server)
    assert _usage(db_factory, uid) == (1, 900, 5 * 2**32 + 9, 4000)
    with db_factory() as db:
        s = db.scalars(select(Session)).one()
        assert (s.is_open, s.seconds, s.bytes_out, s.mac) == (False, 900, 5 * 2**32 + 9, "aa:bb:cc:00:00:01")
        assert db.scalar(select(func.count()).select_from(AcctRecord)) == 4 + 0  # duplicates stored once
    assert radius_server.redis.zcard(f"u:{uid}:open") == 0


def test_interim_without_start_and_without_class(radius_server, dictionary, db_factory, policies):
    """A lost Start or a NAS that drops Class still lands on the right person."""
    uid = add_user(db_factory, policies, "beto", "betopass99")
    nas = Nas(radius_server, dictionary)
    nas.acct("Interim-Update", "late-1", "beto", seconds=120, bytes_out=10_000)
    settle(radius_server)
    assert _usage(db_factory, uid) == (1, 120, 10_000, 0)


def test_one_time_credential_accounting_without_class(radius_server, dictionary, db_factory, policies,
                                                      redis_client, nas_id):
    uid = add_user(db_factory, policies, "eva", "evapass123")
    name, password = credentials.issue(redis_client, uid, nas_id, "aa:bb:cc:00:00:01")
    nas = Nas(radius_server, dictionary)
    assert nas.auth(name, password).code == packet.AccessAccept
    nas.acct("Start", "otc-1", name)
    nas.acct("Stop", "otc-1", name, seconds=60, bytes_out=777)
    settle(radius_server)
    assert _usage(db_factory, uid) == (1, 60, 777, 0)


def test_accounting_on_closes_the_nas_sessions(radius_server, dictionary, db_factory, policies):
    uid = add_user(db_factory, policies, "ana", "anapass123")
    nas = Nas(radius_server, dictionary)
    reply = nas.auth("ana", "anapass123")
    nas.acct("Start", "a", "ana", reply=reply)
    nas.acct("Start", "b", "ana", reply=reply, mac="AA-BB-CC-00-00-02")
    settle(radius_server)
    assert radius_server.redis.zcard(f"u:{uid}:open") == 2
    assert nas.acct("Accounting-On", "", mac=None).code == packet.AccountingResponse
    settle(radius_server)
    with db_factory() as db:
        causes = db.scalars(select(Session.terminate_cause).where(Session.is_open.is_(False))).all()
    assert causes == ["NAS-Reboot", "NAS-Reboot"]
    assert radius_server.redis.zcard(f"u:{uid}:open") == 0


def test_counters_rebuild_and_cold_redis(radius_server, dictionary, db_factory, policies, redis_client, clock):
    uid = add_user(db_factory, policies, "ana", "anapass123")
    nas = Nas(radius_server, dictionary)
    reply = nas.auth("ana", "anapass123")
    nas.acct("Stop", "s1", "ana", seconds=6000, bytes_out=123_456, reply=reply)
    settle(radius_server)
    now = clock().astimezone(radius_server.settings.tz)
    day_key, month_key, _ = counters.keys(uid, now)
    # Counted on the city's day: 00:00 UTC on the 26th is 18:00 on the 25th in Mexico City.
    assert (day_key, month_key) == (f"u:{uid}:d:20261125", f"u:{uid}:m:202611")
    before = redis_client.hgetall(day_key)
    assert before == {b"s": b"6000", b"b": b"123456"}
    redis_client.flushdb()                       # Redis restarted empty
    assert nas.auth("ana", "anapass123")["Session-Timeout"] == [7200 - 6000]   # re-read from SQL
    assert redis_client.hgetall(day_key) == before                             # ... and put back
    redis_client.flushdb()
    with db_factory() as db:
        assert counters.rebuild(redis_client, db, now) == 1
    assert redis_client.hgetall(day_key) == before
    assert redis_client.hgetall(month_key) == before


def test_sessions_of_a_silent_nas_are_closed(radius_server, dictionary, db_factory, policies, clock):
    from datetime import timedelta
    uid = add_user(db_factory, policies, "ana", "anapass123")
    nas = Nas(radius_server, dictionary)
    nas.acct("Start", "lost-stop", "ana", reply=nas.auth("ana", "anapass123"))
    settle(radius_server)
    assert radius_server.applier.sweep_stale() == 0
    clock.now += timedelta(minutes=30)                      # three interims missed, no Stop came
    assert radius_server.applier.sweep_stale() == 1
    with db_factory() as db:
        assert db.scalar(select(Session.terminate_cause)) == "Stale"
    assert radius_server.redis.zcard(f"u:{uid}:open") == 0
