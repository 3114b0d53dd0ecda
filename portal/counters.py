"""Per-person live counters in Redis, rebuilt from the SQL rollup when missing or on demand.

Keys: u:{uid}:d:{YYYYMMDD} and u:{uid}:m:{YYYYMM} are hashes {s: seconds, b: bytes};
u:{uid}:open is a sorted set of open sessions ("nas_id:acct_session_id") scored by last update.
"""

from __future__ import annotations

import time as _time
from datetime import datetime

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from policies import Usage, period_keys
from portal.model import UsageDaily

DAY_TTL = 3 * 86400
MONTH_TTL = 40 * 86400

# Add to both counters only where they exist: a missing key is re-seeded from SQL, the truth.
# Per person: KEYS day, month, active set; ARGV seconds, bytes, person. One call for a whole batch.
_INCR = """
local out = {}
for i = 1, #KEYS, 3 do
  local a = i - 1
  redis.call('SADD', KEYS[i + 2], ARGV[a + 3])
  for j = 0, 1 do
    if redis.call('EXISTS', KEYS[i + j]) == 1 then
      out[#out + 1] = redis.call('HINCRBY', KEYS[i + j], 's', ARGV[a + 1])
      out[#out + 1] = redis.call('HINCRBY', KEYS[i + j], 'b', ARGV[a + 2])
    else
      out[#out + 1] = -1
      out[#out + 1] = -1
    end
  end
end
return out
"""
# Read a whole batch in one command: per person the day and month hashes and the open-session count.
# One EVALSHA with 3 keys per person costs far less client CPU than three commands per person.
# KEYS[1], KEYS[2]: this month's set of people with any usage, and the flag saying it is complete.
# Someone missing from a complete set has used nothing this month: zeros, without asking SQL.
_READ = """
local built = redis.call('EXISTS', KEYS[2]) == 1
local out = {}
for i = 3, #KEYS, 3 do
  local n = (i - 3) / 3
  local d = redis.call('HMGET', KEYS[i], 's', 'b')
  local m = redis.call('HMGET', KEYS[i + 1], 's', 'b')
  local unknown = -1
  if built and redis.call('SISMEMBER', KEYS[1], ARGV[2 * n + 2]) == 0 then unknown = 0 end
  out[#out + 1] = d[1] and tonumber(d[1]) or unknown
  out[#out + 1] = d[2] and tonumber(d[2]) or unknown
  out[#out + 1] = m[1] and tonumber(m[1]) or unknown
  out[#out + 1] = m[2] and tonumber(m[2]) or unknown
  out[#out + 1] = redis.call('ZCOUNT', KEYS[i + 2], ARGV[2 * n + 1], '+inf')
end
return table.concat(out, ',')
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


def active_key(month: str) -> str:
    """The set of people with any usage in a month ('202611')."""
    return f"active:{month}"


def build_active_set(r: redis.Redis, db: DbSession, now: datetime) -> int:
    """Fill this month's active set from usage_daily and mark it complete; return its size."""
    first = now.date().replace(day=1)
    key = active_key(period_keys(now)[1])
    uids = list(db.scalars(select(UsageDaily.user_id).where(UsageDaily.day >= first).distinct()))
    for start in range(0, len(uids), 5000):
        r.sadd(key, *uids[start:start + 5000])
    r.expire(key, MONTH_TTL)
    r.set(key + ":built", 1, ex=MONTH_TTL)
    return len(uids)


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
    day, month = period_keys(now)
    all_keys = [active_key(month), active_key(month) + ":built"]
    args: list[int] = []
    for uid in uids:
        all_keys += [f"u:{uid}:d:{day}", f"u:{uid}:m:{month}", f"u:{uid}:open"]
        args += [int(epoch - stale_after.get(uid, 900)), uid]
    # One comma-joined string: parsing thousands of RESP elements costs more than the lookups.
    values = [int(v) for v in r.register_script(_READ)(keys=all_keys, args=args).split(b",")]
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
    order = list(deltas)
    flat_keys, flat_args = [], []
    for uid, day, month in order:
        s, b = deltas[(uid, day, month)]
        flat_keys += [f"u:{uid}:d:{day}", f"u:{uid}:m:{month}", active_key(month)]
        flat_args += [s, b, uid]
    values = r.register_script(_INCR)(keys=flat_keys, args=flat_args)
    return {k: values[4 * i: 4 * i + 4] for i, k in enumerate(order)}


def ensure_active_set(r: redis.Redis, db_factory, now: datetime) -> None:  # noqa: ANN001 - sessionmaker
    """Build this month's active set unless it is already complete (at start, after a Redis restart,
    and on the first of the month)."""
    if not r.exists(active_key(period_keys(now)[1]) + ":built"):
        with db_factory() as db:
            build_active_set(r, db, now)


def rebuild(r: redis.Redis, db: DbSession, now: datetime) -> int:
    """Restore every person's day and month counters from usage_daily; return how many persons."""
    first = now.date().replace(day=1)
    uids = [uid for (uid,) in db.execute(
        select(UsageDaily.user_id).where(UsageDaily.day >= first).distinct())]
    for start in range(0, len(uids), 1000):
        chunk = uids[start:start + 1000]
        seed(r, sql_usage(db, chunk, now), now, nx=False)
    build_active_set(r, db, now)
    return len(uids)
