"""What a person has left now: the same evaluation the RADIUS server makes, for the portal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import redis
from sqlalchemy.orm import sessionmaker

from policies import Decision, Policy, Usage, evaluate
from portal.core import counters


@dataclass(frozen=True)
class Standing:
    """Usage so far and the decision for a new session now."""

    usage: Usage
    decision: Decision
    policy: Policy


def standing(r: redis.Redis, db_factory: sessionmaker, user_id: int, policy: Policy, now: datetime,
             lang: str = "es", running: bool = True) -> Standing:
    """Read a person's counters (Redis, else SQL) and evaluate their policy at local time `now`.

    `running`: the question is about the session already running (the status page), so one open device
    is not a refusal; else about a new one (the splash, before the hand-off): RADIUS's own question."""
    stale = {user_id: 2 * policy.interim_interval + 60}
    usage = counters.read_usage(r, db_factory, [user_id], now, stale)[user_id]
    probe = Usage(usage.day_seconds, usage.day_bytes, usage.month_seconds, usage.month_bytes,
                  max(0, usage.open_sessions - 1) if running else usage.open_sessions)
    return Standing(usage, evaluate(policy, probe, now, lang), policy)


def left(policy: Policy, usage: Usage) -> dict[str, int | None]:
    """Seconds and bytes left today and this month (None where the policy sets no limit)."""
    lim = policy.limits

    def rest(cap: int | None, used: int) -> int | None:
        return None if cap is None else max(0, cap - used)

    return {"day_seconds": rest(lim.daily_time, usage.day_seconds), "day_bytes": rest(lim.daily_data, usage.day_bytes),
            "month_seconds": rest(lim.monthly_time, usage.month_seconds),
            "month_bytes": rest(lim.monthly_data, usage.month_bytes)}


def today(left_now: dict[str, int | None]) -> dict[str, int | None]:
    """What can still be used today: the day's rest, bounded by the month's (a spent monthly pool leaves
    nothing today, even under a policy without daily limits); None only where neither has a limit."""
    def least(*values: int | None) -> int | None:
        known = [v for v in values if v is not None]
        return min(known) if known else None

    return {"seconds": least(left_now["day_seconds"], left_now["month_seconds"]),
            "bytes": least(left_now["day_bytes"], left_now["month_bytes"])}
