"""One-time credentials the portal issues and the RADIUS server consumes: random, single use,
bound to the client's MAC and the NAS, short-lived, kept in Redis (never logged)."""

from __future__ import annotations

import json
import secrets

import redis

PREFIX = "otc:"
USERNAME_PREFIX = "c-"
DEFAULT_TTL = 120


def is_one_time(username: str) -> bool:
    """True for usernames the portal issued as one-time credentials."""
    return username.startswith(USERNAME_PREFIX) and len(username) == 18


def issue(r: redis.Redis, user_id: int, nas_id: int, mac: str, ttl: int = DEFAULT_TTL) -> tuple[str, str]:
    """Store a new credential for (user, NAS, MAC) and return (username, password)."""
    username = USERNAME_PREFIX + secrets.token_hex(8)
    password = secrets.token_urlsafe(12)
    record = json.dumps({"u": user_id, "n": nas_id, "m": mac, "p": password})
    r.set(PREFIX + username, record, ex=ttl)
    return username, password


def consume_many(r: redis.Redis, usernames: list[str]) -> dict[str, dict | None]:
    """Atomically take each credential out of the store (GETDEL): a second use finds nothing."""
    pipe = r.pipeline(transaction=False)
    for name in usernames:
        pipe.getdel(PREFIX + name)
    out = {}
    for name, raw in zip(usernames, pipe.execute()):
        out[name] = json.loads(raw) if raw else None
    return out
