"""Pre-encoded RADIUS requests (pyrad): PAP Access-Requests and Start/3×Interim/Stop accounting.

Request j of a load is sent on socket j % nsock with RADIUS ID (j // nsock) % 256, so the load
generator can match replies by (socket, ID). Encoding is CPU-heavy in pyrad (~100 µs a packet),
so it runs in a process pool before the timed part of a measurement.
"""

from __future__ import annotations

import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from pyrad import packet
from pyrad.dictionary import Dictionary

from portal.core.radiusdict import DICTIONARY

INTERIMS = 3
STEPS = 2 + INTERIMS            # Start, Interim-Update × 3, Stop
CHUNK = 2000
_DICT: Dictionary | None = None


@dataclass(frozen=True)
class Spec:
    """What to encode: a kind, a secret, the users to draw from, and how IDs are laid out."""

    kind: str                   # "auth" or "acct"
    secret: bytes
    tag: str                    # makes Acct-Session-Ids (and the random draw) unique per run
    nsock: int
    acct_ma: bool = True        # Message-Authenticator on Accounting-Requests too (radclient does)


def _dictionary() -> Dictionary:
    global _DICT
    if _DICT is None:
        _DICT = Dictionary(str(DICTIONARY))
    return _DICT


def _mac(u: int, i: int) -> str:
    return "-".join(f"{b:02X}" for b in (2, u >> 8 & 255, u & 255, i >> 16 & 255, i >> 8 & 255, i & 255))


def _common(p: packet.Packet, user: str, u: int, i: int) -> None:
    p["User-Name"] = user
    p["NAS-IP-Address"] = "127.0.0.1"
    p["NAS-Identifier"] = "hotspot-1"
    p["NAS-Port"] = i % 4096
    p["NAS-Port-Type"] = "Wireless-802.11"
    p["Called-Station-Id"] = "00-11-22-33-44-55:hotspot"
    p["Calling-Station-Id"] = _mac(u, i)


def auth_packet(spec: Spec, j: int, user: str, password: str, u: int) -> bytes:
    """Access-Request j: PAP User-Password and a Message-Authenticator."""
    p = packet.AuthPacket(code=packet.AccessRequest, id=(j // spec.nsock) % 256, secret=spec.secret,
                          dict=_dictionary(), authenticator=os.urandom(16))
    _common(p, user, u, j)
    p["User-Password"] = p.PwCrypt(password)
    p["Service-Type"] = "Login-User"
    p.add_message_authenticator()
    return p.RequestPacket()


def acct_packet(spec: Spec, j: int, user: str, u: int, session: int, step: int) -> bytes:
    """Accounting-Request j: step 0 Start, 1..3 Interim-Update, 4 Stop, with increasing counters."""
    p = packet.AcctPacket(code=packet.AccountingRequest, id=(j // spec.nsock) % 256, secret=spec.secret,
                          dict=_dictionary())
    _common(p, user, u, session)
    p["Acct-Session-Id"] = f"{spec.tag}-{session:06d}"
    p["Framed-IP-Address"] = f"127.2.{session // 250 % 250}.{session % 250 + 1}"
    p["Acct-Authentic"] = "RADIUS"
    p["Acct-Delay-Time"] = 0
    status = "Start" if step == 0 else "Stop" if step == STEPS - 1 else "Interim-Update"
    p["Acct-Status-Type"] = status
    if step:
        octets = step * (1_000_000 + session * 37)
        p["Acct-Session-Time"] = 300 * step
        p["Acct-Input-Octets"] = octets
        p["Acct-Output-Octets"] = octets * 4
        p["Acct-Input-Packets"] = octets // 1000
        p["Acct-Output-Packets"] = octets // 250
    if status == "Stop":
        p["Acct-Terminate-Cause"] = "User-Request"
    if spec.acct_ma:
        p.add_message_authenticator()
    return p.RequestPacket()


def _encode_chunk(spec: Spec, start: int, items: list[tuple]) -> list[bytes]:
    if spec.kind == "auth":
        return [auth_packet(spec, start + k, *item) for k, item in enumerate(items)]
    return [acct_packet(spec, start + k, *item) for k, item in enumerate(items)]


def plan(spec: Spec, users: list[tuple[str, str]], count: int) -> list[tuple]:
    """The per-request inputs: random users; accounting ordered phase by phase (all Starts first)."""
    rnd = random.Random(f"{spec.kind}-{spec.tag}")
    if spec.kind == "auth":
        picks = (rnd.randrange(len(users)) for _ in range(count))
        return [(users[u][0], users[u][1], u + 1) for u in picks]
    sessions = max(1, count // STEPS)
    who = [rnd.randrange(len(users)) for _ in range(sessions)]
    return [(users[who[s]][0], who[s] + 1, s, step) for step in range(STEPS) for s in range(sessions)]


def encode(spec: Spec, users: list[tuple[str, str]], count: int,
           pool: ProcessPoolExecutor | None = None) -> list[bytes]:
    """`count` requests (accounting: rounded down to whole sessions), encoded in the pool if given."""
    items = plan(spec, users, count)
    starts = range(0, len(items), CHUNK)
    if pool is None:
        chunks = [_encode_chunk(spec, s, items[s:s + CHUNK]) for s in starts]
    else:
        chunks = list(pool.map(_encode_chunk, [spec] * len(starts), starts,
                               [items[s:s + CHUNK] for s in starts]))
    return [raw for chunk in chunks for raw in chunk]


def read_users(path: str) -> list[tuple[str, str]]:
    """`user password` lines (FreeRADIUS serve-users.txt format)."""
    with open(path) as f:
        return [(a, b) for a, b in (line.split()[:2] for line in f if line.strip())]


def bench_users(n: int) -> list[tuple[str, str]]:
    """user00001/pass00001 ... the naming of the FreeRADIUS reference (extended to n)."""
    return [(f"user{i:05d}", f"pass{i:05d}") for i in range(1, n + 1)]
