"""What Conecta lets an openNDS gateway do for a client, and how the gateway learns it.

When a person is let online through an openNDS gateway the portal evaluates their policy (the same
`policies.evaluate` RADIUS NAS get) and leaves the answer in Redis:
- levels 0-2: a grant under the client's hid, which the gateway's BinAuth script claims when the
  browser comes back with the token (`auth_client`); without it the script refuses the client, so a
  guessed or forged token gets nobody in. Grants are single use and live two minutes.
- level 3: an entry in the gateway's auth list, which openNDS's authmon fetches (`auth_get=view`) and
  acknowledges once the client is let in (portal/web/opennds.py).
Either way the gateway gets the session length, the rates and the data left as its own quotas.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote

import redis

from policies import Decision
from portal.core.arrival import Arrival
from portal.core.opennds import hid_of

GRANT_TTL = 120
WHO_TTL = 2 * 86400
AUTHLIST_TTL = 600


def terms(decision: Decision) -> tuple[int, int, int, int, int]:
    """openNDS's five figures: session seconds, upload and download rate (kbit/s), upload and download
    quota (its "kB", which its counters count in 1,024 bytes); 0 is "no limit". openNDS keeps separate
    quotas per direction: each gets the data left (down and up together), and the reports count the rest."""
    seconds = decision.session_timeout or 0
    up = (decision.rate_up or 0) // 1000
    down = (decision.rate_down or 0) // 1000
    quota = max(1, decision.data_left // 1024) if decision.data_left else 0
    return seconds, up, down, quota, quota


def _grant_key(nas_id: int, hid: str) -> str:
    return f"nds:grant:{nas_id}:{hid}"


def who_key(nas_id: int, mac: str) -> str:
    """Who is behind a MAC on a gateway, for its reports."""
    return f"nds:who:{nas_id}:{mac}"


def authlist_key(nas_id: int) -> str:
    """A level-3 gateway's auth list: client MAC -> authmon's line."""
    return f"nds:authlist:{nas_id}"


def gatewayhash_key(nas_id: int) -> str:
    """The gatewayhash values a level-3 gateway's authmon may present (sha256 of its GatewayName)."""
    return f"nds:gwhash:{nas_id}"


def offer(r: redis.Redis, arrival: Arrival, user_id: int, decision: Decision) -> None:
    """Let this client in at its gateway with the decision's terms."""
    figures = terms(decision)
    extra = arrival.extra
    if extra["level"] == 3:
        seconds, up, down, upq, downq = figures
        minutes = -(-seconds // 60)            # authmon's `ndsctl auth` takes minutes
        # The client by its MAC (ndsctl auth takes a MAC, an address or a token; openNDS 9.10 did not
        # let a client in by the rhid its example FAS sends); authmon acknowledges by the same field.
        line = f"{arrival.mac} {minutes} {up} {down} {upq} {downq} conecta"
        pipe = r.pipeline(transaction=False)
        pipe.hset(authlist_key(arrival.nas_id), arrival.mac, line)
        pipe.expire(authlist_key(arrival.nas_id), AUTHLIST_TTL)
        if arrival.mac:
            pipe.set(who_key(arrival.nas_id, arrival.mac), user_id, ex=WHO_TTL)
        pipe.execute()
        return
    grant = {"uid": user_id, "mac": arrival.mac, "terms": figures}
    r.set(_grant_key(arrival.nas_id, extra["hid"]), json.dumps(grant), ex=GRANT_TTL)


def claim(r: redis.Redis, nas_id: int, token: str, mac: str) -> tuple[int, ...] | None:
    """The gateway's BinAuth asks to let a client in: the terms of its grant (used up), or None when
    Conecta let nobody in with this token from this device."""
    key = _grant_key(nas_id, hid_of(token))
    raw = r.get(key)
    if raw is None:
        return None
    grant = json.loads(raw)
    if grant["mac"] and grant["mac"] != mac:    # a token seen on another device: it may not burn the grant
        return None
    if not r.delete(key):                       # the same claim twice at once: one wins
        return None
    r.set(who_key(nas_id, mac), grant["uid"], ex=WHO_TTL)
    return tuple(grant["terms"])


def remember_gateway_name(r: redis.Redis, nas_id: int, raw_name: str) -> None:
    """Keep the gatewayhash a level-3 gateway's authmon will present: sha256 of its GatewayName as its
    redirects spell it (URL-encoded, Node suffix included; seen in openNDS 9.10's authmon command)."""
    digest = hashlib.sha256(raw_name.strip().encode()).hexdigest()
    r.sadd(gatewayhash_key(nas_id), digest)
    r.expire(gatewayhash_key(nas_id), 90 * 86400)


def authlist(r: redis.Redis, nas_id: int) -> str:
    """authmon's view of the clients waiting: `*` then each line URL-encoded."""
    lines = r.hvals(authlist_key(nas_id))
    return " ".join(["*", *(quote(line.decode(), safe="") for line in lines)])


def acknowledge(r: redis.Redis, nas_id: int, acklist: str) -> int:
    """authmon let these clients in: drop them from the list; return how many were waiting."""
    done = [item for item in acklist.replace("\n", " ").split(" ") if item and item != "*"]
    return r.hdel(authlist_key(nas_id), *done[:500]) if done else 0
