"""Live counters against a real Redis and SQL, step by step through the interleavings that race in
production: the applier commits usage to SQL and adds the same delta to Redis a moment later, while
the portal and the RADIUS server read (and seed) the same counters."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from portal.core import counters
from portal.core.model import Site, UsageDaily
from tests.support.builders import add_user

TZ = ZoneInfo("America/Mexico_City")


@pytest.fixture()
def person(db_factory, policies, nas_id) -> int:
    return add_user(db_factory, policies, "ana", "anapass123")


def commit_usage(db_factory, uid: int, now, seconds: int, nbytes: int) -> None:
    """What the applier's SQL transaction does for one record: add to today's rollup row."""
    with db_factory() as db, db.begin():
        site = db.scalar(select(Site.id))
        row = db.scalar(select(UsageDaily).where(UsageDaily.user_id == uid, UsageDaily.day == now.date()))
        if row is None:
            db.add(UsageDaily(day=now.date(), user_id=uid, site_id=site, sessions=1, seconds=seconds,
                              bytes_down=nbytes, bytes_up=0))
        else:
            row.seconds += seconds
            row.bytes_down += nbytes


def add(r, uid: int, now, seconds: int, nbytes: int) -> list[int]:
    day, month = counters.period_keys(now)
    return counters.add_usage(r, {(uid, day, month): (seconds, nbytes, seconds, nbytes)}, {uid})[(uid, day, month)]


def read(r, db_factory, uid: int, now) -> tuple[int, int, int, int]:
    usage = counters.read_usage(r, db_factory, [uid], now, {uid: 900})[uid]
    return usage.day_seconds, usage.day_bytes, usage.month_seconds, usage.month_bytes


def stored(r, uid: int, now) -> dict:
    return r.hgetall(counters.keys(uid, now)[0])


def test_a_read_between_commit_and_add_does_not_seed(redis_client, db_factory, person, clock):
    now = clock().astimezone(TZ)
    counters.hold(redis_client, [person])
    commit_usage(db_factory, person, now, 1500, 250_000_000)
    # The portal reads here: it sees SQL (the truth) but must not seed what the applier will add.
    assert read(redis_client, db_factory, person, now) == (1500, 250_000_000, 1500, 250_000_000)
    assert stored(redis_client, person, now) == {}
    *totals, generation = add(redis_client, person, now, 1500, 250_000_000)
    assert totals == [-1, -1, -1, -1]
    # The applier found the counter missing and seeds it itself, its guard released.
    counters.seed_missing(redis_client, {person: (1500, 250_000_000, 1500, 250_000_000)}, {person: generation}, now)
    assert read(redis_client, db_factory, person, now) == (1500, 250_000_000, 1500, 250_000_000)


def test_a_seed_read_before_a_commit_and_written_after_it_is_refused(redis_client, db_factory, person, clock):
    now = clock().astimezone(TZ)
    with db_factory() as db:
        stale = counters.sql_usage(db, [person], now)       # the reader reads SQL: nothing yet
    counters.hold(redis_client, [person])
    commit_usage(db_factory, person, now, 600, 1000)
    assert add(redis_client, person, now, 600, 1000)[:4] == [-1, -1, -1, -1]
    counters.seed_missing(redis_client, stale, {person: 0}, now)   # generation seen before the write
    assert stored(redis_client, person, now) == {}
    assert read(redis_client, db_factory, person, now) == (600, 1000, 600, 1000)
    assert stored(redis_client, person, now) == {b"s": b"600", b"b": b"1000"}


def test_existing_counters_take_every_delta_once(redis_client, db_factory, person, clock):
    now = clock().astimezone(TZ)
    assert read(redis_client, db_factory, person, now) == (0, 0, 0, 0)   # seeds zeros
    for seconds in (300, 300, 600):
        counters.hold(redis_client, [person])
        commit_usage(db_factory, person, now, seconds, 10)
        before = read(redis_client, db_factory, person, now)[0]
        add(redis_client, person, now, seconds, 10)
        assert read(redis_client, db_factory, person, now)[0] == before + seconds
    assert read(redis_client, db_factory, person, now) == (1200, 30, 1200, 30)


def test_a_failed_commit_lets_go_of_the_guard(redis_client, db_factory, person, clock):
    now = clock().astimezone(TZ)
    counters.hold(redis_client, [person])
    counters.hold(redis_client, [person], step=-1)     # the SQL commit failed; the batch is retried
    assert read(redis_client, db_factory, person, now) == (0, 0, 0, 0)
    assert stored(redis_client, person, now) == {b"s": b"0", b"b": b"0"}


def test_a_batch_sent_again_after_its_reply_was_lost_counts_once(redis_client, person, clock):
    """Redis stopping (or a timeout) can lose the reply of an add that was done: the client's retry sends
    the same batch again. Found by bench/faults_bench.py (Redis stopped for 20 s: live counters above SQL)."""
    now = clock().astimezone(TZ)
    day, month = counters.period_keys(now)
    redis_client.hset(counters.keys(person, now)[0], mapping={"s": 0, "b": 0})
    redis_client.hset(counters.keys(person, now)[1], mapping={"s": 0, "b": 0})
    counters.hold(redis_client, [person])
    deltas = {(person, day, month): (60, 1000, 60, 1000)}
    first = counters.add_usage(redis_client, deltas, {person}, batch="b1")
    again = counters.add_usage(redis_client, deltas, {person}, batch="b1")
    assert first == again
    assert first[(person, day, month)][:4] == [60, 1000, 60, 1000]
    assert redis_client.hget(counters.guard_key(person), "n") == b"0"      # the guard let go once
    counters.add_usage(redis_client, deltas, set(), batch="b2")             # another batch adds
    assert stored(redis_client, person, now) == {b"s": b"120", b"b": b"2000"}
