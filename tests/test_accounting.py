"""Accounting into the record of truth: sessions, rollups, dedup, NAS reboots, counter rebuilds."""

from __future__ import annotations

from datetime import timedelta

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


def _generations(db_factory, sid: str) -> list[tuple]:
    with db_factory() as db:
        return db.execute(select(Session.generation, Session.is_open, Session.seconds, Session.bytes_out)
                          .where(Session.acct_session_id == sid).order_by(Session.generation)).all()


def test_a_reused_session_id_is_a_new_session_and_retransmissions_stay_one(radius_server, dictionary, db_factory,
                                                                          policies, clock):
    """A NAS may hand an Acct-Session-Id to a later session (CoovaChilli makes it from the second and the
    client's unit). Its retransmissions come byte for byte, 10 s later: past the reply cache."""
    uid = add_user(db_factory, policies, "ana", "anapass123")
    nas = Nas(radius_server, dictionary)
    reply = nas.auth("ana", "anapass123")

    def again(req) -> None:     # the same datagram once more, after the reply cache has let it go
        radius_server.cache.entries.clear()
        assert nas.client.SendPacket(req).code == packet.AccountingResponse

    start1 = nas.acct_packet("Start", "s-1", "ana", reply=reply)
    stop1 = nas.acct_packet("Stop", "s-1", "ana", seconds=60, bytes_in=100, bytes_out=1000, reply=reply)
    nas.client.SendPacket(start1)
    nas.client.SendPacket(stop1)
    clock.now += timedelta(seconds=10)
    again(start1)                                     # the first Start again, after its Stop
    settle(radius_server)
    assert _generations(db_factory, "s-1") == [(0, False, 60, 1000)]
    clock.now += timedelta(seconds=5)
    start2 = nas.acct_packet("Start", "s-1", "ana", reply=reply)      # the next session, the same id
    nas.client.SendPacket(start2)
    clock.now += timedelta(seconds=10)
    again(start2)                                     # its own Start again ...
    again(stop1)                                      # ... and the old session's Stop, late
    nas.acct("Interim-Update", "s-1", "ana", seconds=30, bytes_in=10, bytes_out=20, reply=reply)
    settle(radius_server)
    assert _generations(db_factory, "s-1") == [(0, False, 60, 1000), (1, True, 30, 20)]
    assert radius_server.redis.zcard(f"u:{uid}:open") == 1
    nas.acct("Stop", "s-1", "ana", seconds=40, bytes_in=15, bytes_out=25, reply=reply)
    settle(radius_server)
    assert _usage(db_factory, uid) == (2, 100, 1025, 115)
    assert radius_server.redis.zcard(f"u:{uid}:open") == 0


def test_which_session_a_record_with_a_known_id_belongs_to(radius_server, dictionary, db_factory, policies, clock):
    """A Start after its own Stop (the Start was lost and resent) is that session's; a Start from another
    device, or after the NAS rebooted (MikroTik's ids start again), is a new one."""
    uid = add_user(db_factory, policies, "ana", "anapass123")
    nas = Nas(radius_server, dictionary)
    reply = nas.auth("ana", "anapass123")
    nas.acct("Stop", "late", "ana", seconds=30, bytes_out=300, reply=reply)
    clock.now += timedelta(seconds=10)
    nas.acct("Start", "late", "ana", reply=reply)
    nas.acct("Start", "shared", "ana", reply=reply)
    nas.acct("Stop", "shared", "ana", seconds=5, bytes_out=50, reply=reply)
    nas.acct("Start", "shared", "ana", reply=reply, mac="AA-BB-CC-00-00-02")     # the same second
    nas.acct("Start", "boot", "ana", reply=reply, mac="AA-BB-CC-00-00-03")
    nas.acct("Accounting-On", "", mac=None)
    clock.now += timedelta(seconds=60)
    nas.acct("Start", "boot", "ana", reply=reply, mac="AA-BB-CC-00-00-03")
    settle(radius_server)
    assert _generations(db_factory, "late") == [(0, False, 30, 300)]
    assert _generations(db_factory, "shared") == [(0, False, 5, 50), (1, False, 0, 0)]   # the On closed it
    assert _generations(db_factory, "boot") == [(0, False, 0, 0), (1, True, 0, 0)]
    assert _usage(db_factory, uid)[0] == 5
    assert radius_server.redis.zcard(f"u:{uid}:open") == 1
