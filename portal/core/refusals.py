"""Citizens' sign-ins the portal refused, counted per local day in Redis for the console, and each
rate-limit breach logged once per limit, key and window (never the PIN, the username or the address)."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import redis

KEEP_DAYS = 40
# What is counted: (path, reason) as the console names it.
COUNTED = (("/login", "wrong"), ("/login", "limited"), ("/connect", "limited"), ("/register", "limited"))


def count(r: redis.Redis, day: date, path: str, reason: str) -> None:
    """One more refusal of `path` for `reason` ("wrong" credentials, rate-"limited") on the local `day`."""
    key = f"refusals:{day.isoformat()}"
    pipe = r.pipeline(transaction=False)
    pipe.hincrby(key, f"{path}|{reason}", 1)
    pipe.expire(key, KEEP_DAYS * 86400)
    pipe.execute()


def recent(r: redis.Redis, today: date, days: int = 7) -> list[tuple[date, list[int]]]:
    """The counts of the last `days` local days, newest first, in the order of COUNTED."""
    wanted = [today - timedelta(days=n) for n in range(days)]
    pipe = r.pipeline(transaction=False)
    for day in wanted:
        pipe.hgetall(f"refusals:{day.isoformat()}")
    rows = []
    for day, found in zip(wanted, pipe.execute()):
        found = {k.decode(): int(v) for k, v in found.items()}
        rows.append((day, [found.get(f"{path}|{reason}", 0) for path, reason in COUNTED]))
    return rows


def first_breach(r: redis.Redis, limit_key: str, window: int) -> bool:
    """True the first time a limit's key is found breached in its window (then log it); False after."""
    digest = hashlib.blake2b(limit_key.encode(), digest_size=12).hexdigest()   # no username in Redis keys
    return bool(r.set(f"breach:{digest}", 1, nx=True, ex=max(1, window)))
