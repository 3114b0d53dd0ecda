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


def read_many(r: redis.Redis, usernames: list[str]) -> dict[str, tuple[bytes, dict] | None]:
    """Each credential as stored (raw) and parsed, without using it up; None when there is none."""
    raws = r.mget([PREFIX + name for name in usernames])
    return {name: (raw, json.loads(raw)) if raw else None for name, raw in zip(usernames, raws)}


# Deletes each key only if it still holds what was read: of two requests that passed the checks
# with the same credential, exactly one gets it; a wrong attempt never gets here, so it burns nothing.
_TAKE = """
local taken = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then
    redis.call('DEL', key)
    taken[#taken + 1] = i
  end
end
return taken
"""


def take(r: redis.Redis, checked: list[tuple[str, bytes]]) -> list[bool]:
    """Use up credentials that passed every check, atomically: (username, raw as read) in, whether
    each was still there (and is now gone) out."""
    if not checked:
        return []
    script = r.register_script(_TAKE)     # EVALSHA, loading the script once per server
    taken = set(script(keys=[PREFIX + name for name, _ in checked], args=[raw for _, raw in checked]))
    return [i + 1 in taken for i in range(len(checked))]
