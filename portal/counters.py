"""Per-person live counters in Redis, rebuilt from the SQL rollup when missing or on demand.

Keys: u:{uid}:d:{YYYYMMDD} and u:{uid}:m:{YYYYMM} are hashes {s: seconds, b: bytes};
u:{uid}:open is a sorted set of open sessions ("nas_id:acct_session_id") scored by last update.
"""

from __future__ import annotations

import time as _time
from datetime import date, datetime, timedelta

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from policies import Usage, period_keys
from portal.model import UsageDaily

DAY_TTL = 3 * 86400
MONTH_TTL = 40 * 86400

# Add to both counters only where they exist: a missing key is re-seeded from SQL, the truth.
_INCR = """
local out = {}
for i = 1, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    out[2*i-1] = redis.call('HINCRBY', KEYS[i], 's', ARGV[1])
    out[2*i] = redis.call('HINCRBY', KEYS[i], 'b', ARGV[2])
  else
    out[2*i-1] = -1
    out[2*i] = -1
  end
end
return out
"""
# Read a whole batch in one command: per person the day and month hashes and the open-session count.
# One EVALSHA with 3 keys per person costs far less client CPU than three commands per person.
_READ = """
local out = {}
for i = 1, #KEYS, 3 do
  local d = redis.call('HMGET', KEYS[i], 's', 'b')
  local m = redis.call('HMGET', KEYS[i + 1], 's', 'b')
  out[#out + 1] = d[1] and tonumber(d[1]) or -1
  out[#out + 1] = d[2] and tonumber(d[2]) or -1
  out[#out + 1] = m[1] and tonumber(m[1]) or -1
  out[#out + 1] = m[2] and tonumber(m[2]) or -1
  out[#out + 1] = redis.call('ZCOUNT', KEYS[i + 2], ARGV[(i + 2) / 3], '+inf')
end
return out
"""
# Seed only a missing key: a concurrent writer's fresher value must win.
_SEED_NX = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local a = (i - 1) * 3
    redis.call('HSET', KEYS[i], 's', ARGV[a + 1], 'b', ARGV[a + 2])
    redis.call('EXPIRE', KEYS[i], ARGV[a + 3])
  end
end
return 1
"""


def keys(uid: int, now: datetime) -> tuple[str, str, str]:
    """The day, month and open-session keys of a person at local time `now`."""
    day, month = period_keys(now)
    return f"u:{uid}:d:{day}", f"u:{uid}:m:{month}", f"u:{uid}:open"


def sql_usage(db: DbSession, uids: list[int], now: datetime) -> dict[int, tuple[int, int, int, int]]:
    """(day_s, day_b, month_s, month_b) per person from usage_daily for the local day of `now`."""
    today = now.date()
    first = today.replace(day=1)
    out = {uid: (0, 0, 0, 0) for uid in uids}
    rows = db.execute(
        select(UsageDaily.user_id, UsageDaily.day, func.sum(UsageDaily.seconds),
               func.sum(UsageDaily.bytes_down + UsageDaily.bytes_up))
        .where(UsageDaily.user_id.in_(uids), UsageDaily.day >= first, UsageDaily.day <= today)
        .group_by(UsageDaily.user_id, UsageDaily.day)
    )
    for uid, day, seconds, nbytes in rows:
        ds, db_, ms, mb = out[uid]
        seconds, nbytes = int(seconds or 0), int(nbytes or 0)
        if day == today:
            ds, db_ = ds + seconds, db_ + nbytes
        out[uid] = (ds, db_, ms + seconds, mb + nbytes)
    return out


def read_usage(r: redis.Redis, db_factory, uids: list[int], now: datetime,
               stale_after: dict[int, int]) -> dict[int, Usage]:
    """Usage per person in one Redis command; persons missing from Redis are seeded from SQL."""
    epoch = _time.time()
    all_keys = [key for uid in uids for key in keys(uid, now)]
    floors = [int(epoch - stale_after.get(uid, 900)) for uid in uids]
    values = r.register_script(_READ)(keys=all_keys, args=floors)
    usage, missing = {}, []
    for i, uid in enumerate(uids):
        ds, db_, ms, mb, n_open = values[5 * i: 5 * i + 5]
        if ds < 0 or ms < 0:
            missing.append(uid)
        usage[uid] = (max(ds, 0), max(db_, 0), max(ms, 0), max(mb, 0), n_open)
    if missing:
        with db_factory() as db:
            fresh = sql_usage(db, missing, now)
        seed(r, fresh, now, nx=True)
        for uid, values in fresh.items():
            usage[uid] = (*values, usage[uid][4])
    return {uid: Usage(*values) for uid, values in usage.items()}


def seed(r: redis.Redis, values: dict[int, tuple[int, int, int, int]], now: datetime, nx: bool) -> None:
    """Write day and month counters; with nx only where the key is missing."""
    if nx:   # one command for the whole batch
        flat_keys, flat_args = [], []
        for uid, (ds, db_, ms, mb) in values.items():
            dkey, mkey, _ = keys(uid, now)
            flat_keys += [dkey, mkey]
            flat_args += [ds, db_, DAY_TTL, ms, mb, MONTH_TTL]
        r.register_script(_SEED_NX)(keys=flat_keys, args=flat_args)
        return
    pipe = r.pipeline(transaction=False)
    for uid, (ds, db_, ms, mb) in values.items():
        dkey, mkey, _ = keys(uid, now)
        for key, s, b, ttl in ((dkey, ds, db_, DAY_TTL), (mkey, ms, mb, MONTH_TTL)):
            pipe.hset(key, mapping={"s": s, "b": b})
            pipe.expire(key, ttl)
    pipe.execute()


def add_usage(r: redis.Redis, deltas: dict[tuple[int, str, str], tuple[int, int]]) -> dict:
    """Add (seconds, bytes) per (uid, day key, month key); return the new totals, -1 if missing."""
    script = r.register_script(_INCR)
    pipe = r.pipeline(transaction=False)
    order = list(deltas)
    for uid, day, month in order:
        s, b = deltas[(uid, day, month)]
        script(keys=[f"u:{uid}:d:{day}", f"u:{uid}:m:{month}"], args=[s, b], client=pipe)
    return dict(zip(order, pipe.execute()))


def rebuild(r: redis.Redis, db: DbSession, now: datetime) -> int:
    """Restore every person's day and month counters from usage_daily; return how many persons."""
    first = now.date().replace(day=1)
    uids = [uid for (uid,) in db.execute(
        select(UsageDaily.user_id).where(UsageDaily.day >= first).distinct())]
    for start in range(0, len(uids), 1000):
        chunk = uids[start:start + 1000]
        seed(r, sql_usage(db, chunk, now), now, nx=False)
    return len(uids)


def day_of(key: str) -> date:
    """The date of a day key '20261126'."""
    return datetime.strptime(key, "%Y%m%d").date()


def month_window(now: datetime) -> tuple[date, date]:
    """First and last local day of the month of `now`."""
    first = now.date().replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt - timedelta(days=1)
