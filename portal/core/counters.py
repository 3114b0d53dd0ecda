"""Per-person live counters in Redis, rebuilt from the SQL rollup when missing or on demand.

Keys: u:{uid}:d:{YYYYMMDD} and u:{uid}:m:{YYYYMM} are hashes {s: seconds, b: bytes};
u:{uid}:open is a sorted set of open sessions ("nas_id:acct_session_id") scored by last update;
u:{uid}:w is the write guard that keeps readers from seeding a counter a write is about to move.
"""

from __future__ import annotations

import time as _time
import uuid
from datetime import datetime

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from policies import Usage, period_keys
from portal.core.model import UsageDaily

DAY_TTL = 3 * 86400
MONTH_TTL = 40 * 86400

# Why the write guard u:{uid}:w {g: generation, n: writes in flight}: the applier commits usage to
# SQL and adds the same delta to Redis a moment later. A reader that seeded a missing counter from
# SQL in between would count that delta twice; one that read SQL just before a commit and seeded
# just after would miss it. So every write bumps g and n before its SQL commit and drops n after its
# Redis add, and a seed is written only where the key is still missing, no write is in flight and g
# is the value seen before SQL was read.

# Per person: KEYS day, month, active set, guard; ARGV day s, day b, month s, month b, person, held.
# The last KEY names the batch: a batch whose reply was lost (Redis stopping, a timeout) is sent again
# by the client's retry, and must not be added twice. Adds only where the key exists (a missing key is
# seeded from SQL, the truth); returns per person the day and month totals (-1 where missing) and the
# generation. One call for a whole batch.
_INCR = """
local first = redis.call('SET', KEYS[#KEYS], '1', 'NX', 'EX', 3600)
local out = {}
for i = 1, #KEYS - 1, 4 do
  local a = (i - 1) / 4 * 6
  if first then
    redis.call('SADD', KEYS[i + 2], ARGV[a + 5])
    if ARGV[a + 6] == '1' then redis.call('HINCRBY', KEYS[i + 3], 'n', -1) end
  end
  for j = 0, 1 do
    if redis.call('EXISTS', KEYS[i + j]) == 0 then
      out[#out + 1] = -1
      out[#out + 1] = -1
    elseif first then
      out[#out + 1] = redis.call('HINCRBY', KEYS[i + j], 's', ARGV[a + 2 * j + 1])
      out[#out + 1] = redis.call('HINCRBY', KEYS[i + j], 'b', ARGV[a + 2 * j + 2])
    else
      out[#out + 1] = tonumber(redis.call('HGET', KEYS[i + j], 's') or '0')
      out[#out + 1] = tonumber(redis.call('HGET', KEYS[i + j], 'b') or '0')
    end
  end
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[i + 3], 'g') or '0')
end
return out
"""
# Before a SQL commit: per person KEYS guard; bump generation and in-flight count.
_HOLD = """
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'g', 1)
  redis.call('HINCRBY', KEYS[i], 'n', ARGV[1])
  redis.call('EXPIRE', KEYS[i], 86400)
end
return 1
"""
# Read a whole batch in one command: per person the day and month hashes, the open-session count and
# the guard (generation, or -1 while a write is in flight: do not seed).
# One EVALSHA with 4 keys per person costs far less client CPU than four commands per person.
# KEYS[1], KEYS[2]: this month's set of people with any usage, and the flag saying it is complete.
# Someone missing from a complete set has used nothing this month: zeros, without asking SQL.
_READ = """
local built = redis.call('EXISTS', KEYS[2]) == 1
local out = {}
for i = 3, #KEYS, 4 do
  local n = (i - 3) / 4
  local d = redis.call('HMGET', KEYS[i], 's', 'b')
  local m = redis.call('HMGET', KEYS[i + 1], 's', 'b')
  local unknown = -1
  if built and redis.call('SISMEMBER', KEYS[1], ARGV[2 * n + 2]) == 0 then unknown = 0 end
  out[#out + 1] = d[1] and tonumber(d[1]) or unknown
  out[#out + 1] = d[2] and tonumber(d[2]) or unknown
  out[#out + 1] = m[1] and tonumber(m[1]) or unknown
  out[#out + 1] = m[2] and tonumber(m[2]) or unknown
  out[#out + 1] = redis.call('ZCOUNT', KEYS[i + 2], ARGV[2 * n + 1], '+inf')
  local w = redis.call('HMGET', KEYS[i + 3], 'g', 'n')
  if tonumber(w[2] or '0') > 0 then out[#out + 1] = -1 else out[#out + 1] = tonumber(w[1] or '0') end
end
return table.concat(out, ',')
"""
# Seed missing keys, per person KEYS day, month, guard; ARGV day s, b, ttl, month s, b, ttl, generation.
_SEED = """
for i = 1, #KEYS, 3 do
  local a = (i - 1) / 3 * 7
  local w = redis.call('HMGET', KEYS[i + 2], 'g', 'n')
  if tonumber(w[2] or '0') <= 0 and (w[1] or '0') == ARGV[a + 7] then
    for j = 0, 1 do
      if redis.call('EXISTS', KEYS[i + j]) == 0 then
        redis.call('HSET', KEYS[i + j], 's', ARGV[a + 3 * j + 1], 'b', ARGV[a + 3 * j + 2])
        redis.call('EXPIRE', KEYS[i + j], ARGV[a + 3 * j + 3])
      end
    end
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
    return f"u:{uid}:d:{day}", f"u:{uid}:m:{month}", open_key(uid)


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


def open_key(uid: int) -> str:
    """The sorted set of a person's open sessions ("nas_id:acct_session_id" by last update)."""
    return f"u:{uid}:open"


def guard_key(uid: int) -> str:
    """The write guard of a person (see the comment above _INCR)."""
    return f"u:{uid}:w"


def read_usage(r: redis.Redis, db_factory, uids: list[int], now: datetime,
               stale_after: dict[int, int]) -> dict[int, Usage]:
    """Usage per person in one Redis command; persons missing from Redis are seeded from SQL."""
    epoch = _time.time()
    day, month = period_keys(now)
    all_keys = [active_key(month), active_key(month) + ":built"]
    args: list[int] = []
    for uid in uids:
        all_keys += [f"u:{uid}:d:{day}", f"u:{uid}:m:{month}", open_key(uid), guard_key(uid)]
        args += [int(epoch - stale_after.get(uid, 900)), uid]
    # One comma-joined string: parsing thousands of RESP elements costs more than the lookups.
    values = [int(v) for v in r.register_script(_READ)(keys=all_keys, args=args).split(b",")]
    usage, generations = {}, {}
    for i, uid in enumerate(uids):
        ds, db_, ms, mb, n_open, generation = values[6 * i: 6 * i + 6]
        if ds < 0 or ms < 0:
            generations[uid] = generation
        usage[uid] = (max(ds, 0), max(db_, 0), max(ms, 0), max(mb, 0), n_open)
    if generations:
        with db_factory() as db:
            fresh = sql_usage(db, list(generations), now)
        seed_missing(r, fresh, generations, now)
        for uid, values in fresh.items():
            usage[uid] = (*values, usage[uid][4])
    return {uid: Usage(*values) for uid, values in usage.items()}


def seed_missing(r: redis.Redis, values: dict[int, tuple[int, int, int, int]], generations: dict[int, int],
                 now: datetime) -> None:
    """Write the missing day and month counters read from SQL, for persons whose guard still shows
    the generation seen before that read and no write in flight (-1: skip)."""
    flat_keys, flat_args = [], []
    for uid, (ds, db_, ms, mb) in values.items():
        if generations.get(uid, -1) < 0:
            continue
        dkey, mkey, _ = keys(uid, now)
        flat_keys += [dkey, mkey, guard_key(uid)]
        flat_args += [ds, db_, DAY_TTL, ms, mb, MONTH_TTL, generations[uid]]
    if flat_keys:   # one command for the whole batch
        r.register_script(_SEED)(keys=flat_keys, args=flat_args)


def overwrite(r: redis.Redis, values: dict[int, tuple[int, int, int, int]], now: datetime) -> None:
    """Set day and month counters to the given values, present or not (a rebuild from SQL)."""
    pipe = r.pipeline(transaction=False)
    for uid, (ds, db_, ms, mb) in values.items():
        dkey, mkey, _ = keys(uid, now)
        for key, s, b, ttl in ((dkey, ds, db_, DAY_TTL), (mkey, ms, mb, MONTH_TTL)):
            pipe.hset(key, mapping={"s": s, "b": b})
            pipe.expire(key, ttl)
    pipe.execute()


def hold(r: redis.Redis, uids: list[int], step: int = 1) -> None:
    """Mark writes in flight for these persons before their usage is committed to SQL (step=-1: a
    commit that failed lets go)."""
    if uids:
        r.register_script(_HOLD)(keys=[guard_key(uid) for uid in uids], args=[step])


def add_usage(r: redis.Redis, deltas: dict[tuple[int, str, str], tuple[int, int, int, int]],
              held: set[int], batch: str | None = None) -> dict:
    """Add (day s, day b, month s, month b) per (uid, day key, month key) and let go of the held
    persons, once per `batch` (a name unique to it: sent again, it adds nothing); return per key
    [day s, day b, month s, month b, generation], -1 where a key is missing."""
    order = list(deltas)
    flat_keys, flat_args = [], []
    for uid, day, month in order:
        flat_keys += [f"u:{uid}:d:{day}", f"u:{uid}:m:{month}", active_key(month), guard_key(uid)]
        flat_args += [*deltas[(uid, day, month)], uid, int(uid in held)]
    flat_keys.append(f"batch:{batch or uuid.uuid4().hex}")
    values = r.register_script(_INCR)(keys=flat_keys, args=flat_args)
    return {k: values[5 * i: 5 * i + 5] for i, k in enumerate(order)}


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
        overwrite(r, sql_usage(db, chunk, now), now)
    build_active_set(r, db, now)
    return len(uids)
