"""What a fault did: acknowledged records checked one by one in SQL, charges counted twice (in SQL and
in the live Redis counters), requests left unanswered, and how long until authentication answered again."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import packets
import redis
from sqlalchemy import Engine, func, select, text

from portal.core import counters
from portal.core.model import AcctRecord, Session, UsageDaily

TZ = ZoneInfo("America/Mexico_City")
STATUS = {0: "start", packets.STEPS - 1: "stop"}
Trace = list[tuple[int, float, float | None, int]]   # (request index, sent, answered or None, code)


@dataclass
class Outcome:
    """One row of the table."""

    fault: str
    acked: int = 0
    lost: int = 0
    charged_twice: int = 0
    redis_over: int = 0
    redis_under: int = 0
    auth_sent: int = 0
    auth_unanswered: int = 0
    acct_unanswered: int = 0
    auth_back_s: float = 0.0
    outage_s: float = 0.0
    note: str = ""


def record_of(item: tuple, seconds_per_step: int = 300) -> tuple[str, str, int]:
    """(Acct-Session-Id suffix, status, Acct-Session-Time) of a planned accounting request."""
    _user, _u, session, step = item
    return f"{session:06d}", STATUS.get(step, "interim"), seconds_per_step * step


def acknowledged(trace: Trace, plan: list[tuple], tag: str) -> set[tuple[str, str, int]]:
    """The records the server acknowledged, as (Acct-Session-Id, status, seconds)."""
    out = set()
    for j, _sent, answered, code in trace:
        if answered is not None and code == 5:
            sid, status, seconds = record_of(plan[j])
            out.add((f"{tag}-{sid}", status, seconds))
    return out


def stored(engine: Engine, tag: str) -> list[tuple[str, str, int]]:
    """Every stored record of this run (duplicates included)."""
    with engine.connect() as conn:
        rows = conn.execute(select(AcctRecord.acct_session_id, AcctRecord.status, AcctRecord.seconds)
                            .where(AcctRecord.acct_session_id.like(f"{tag}-%"))).all()
    return [tuple(r) for r in rows]


def wait_stored(engine: Engine, tag: str, acked: set, timeout: float) -> set:
    """Poll until every acknowledged record is in SQL (or the time is up); return what is stored."""
    deadline = time.monotonic() + timeout
    while True:
        found = set(stored(engine, tag))
        if acked <= found or time.monotonic() > deadline:
            return found
        time.sleep(1.0)


_OVERCHARGED_SESSIONS = text("""
SELECT count(*) FROM sessions s JOIN (
  SELECT nas_id, acct_session_id, max(seconds) AS seconds, max(bytes_in) AS bytes_in, max(bytes_out) AS bytes_out
  FROM acct_records WHERE acct_session_id LIKE :tag GROUP BY 1, 2) r USING (nas_id, acct_session_id)
WHERE (s.seconds, s.bytes_in, s.bytes_out) IS DISTINCT FROM (r.seconds, r.bytes_in, r.bytes_out)
""")


def charged_twice(engine: Engine, tag: str) -> tuple[int, int]:
    """(records stored twice + sessions whose totals are not their highest record's, people whose
    rollup differs from their sessions' totals) — all zero when everything was charged once."""
    with engine.connect() as conn:
        dupes = conn.execute(text(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM acct_records WHERE acct_session_id "
            "LIKE :tag GROUP BY nas_id, acct_session_id, status, seconds, bytes_in, bytes_out) d"),
            {"tag": f"{tag}-%"}).scalar()
        sessions = conn.execute(_OVERCHARGED_SESSIONS, {"tag": f"{tag}-%"}).scalar()
        rollup = dict(conn.execute(select(UsageDaily.user_id, func.sum(UsageDaily.bytes_down + UsageDaily.bytes_up))
                                   .group_by(UsageDaily.user_id)).all())
        truth = dict(conn.execute(select(Session.user_id, func.sum(Session.bytes_in + Session.bytes_out))
                                  .where(Session.user_id.is_not(None)).group_by(Session.user_id)).all())
    people = sum(1 for uid in set(rollup) | set(truth) if rollup.get(uid, 0) != truth.get(uid, 0))
    return int(dupes) + int(sessions), people


def redis_against_sql(engine: Engine, r: redis.Redis, now: datetime) -> tuple[int, int]:
    """People whose live day counter in Redis is above / below SQL's usage for the local day
    (a missing counter is re-read from SQL, so only present ones are compared)."""
    from sqlalchemy.orm import Session as DbSession
    with engine.connect() as conn:
        uids = [u for (u,) in conn.execute(select(UsageDaily.user_id).where(UsageDaily.day == now.date())
                                           .distinct())]
    if not uids:
        return 0, 0
    day_keys = [counters.keys(uid, now)[0] for uid in uids]
    pipe = r.pipeline(transaction=False)
    for key in day_keys:
        pipe.hget(key, "b")
    live = pipe.execute()
    with DbSession(engine) as db:
        sql = counters.sql_usage(db, uids, now)
    over = under = 0
    for uid, value in zip(uids, live):
        if value is None:
            continue
        want = sql.get(uid, (0, 0, 0, 0))[1]
        over += int(value) > want
        under += int(value) < want
        if int(value) != want and over + under <= 3:
            print(f"   person {uid}: Redis {int(value):,} bytes today, SQL {want:,}; "
                  f"guard {r.hgetall(counters.guard_key(uid))}", flush=True)
    return over, under


def timing(auth: Trace, fault_at: float, back_at: float) -> tuple[int, float, float]:
    """(Access-Requests unanswered, seconds from the service being back to the last unanswered one,
    seconds from the fault to it)."""
    unanswered = [sent for _, sent, answered, _ in auth if answered is None]
    during = [sent for sent in unanswered if sent >= fault_at - 1]   # (a request in flight when it began)
    last = max(during, default=fault_at)
    return len(unanswered), max(0.0, last - back_at), max(0.0, last - fault_at)
