"""Helpers for the slow-lane tests: a RADIUS server for one test, waiting for RFC 5176 outcomes, and an
independent reading of a CoA-Request's bytes (RFC 2865/5176 arithmetic by hand, not pyrad's)."""

from __future__ import annotations

import hashlib
import hmac
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pyrad import packet
from sqlalchemy import select

from portal.core.model import CoaRequest, Disconnect
from radius.server import RadiusServer
from tests.support.builders import add_user, settle
from tests.support.radiusclient import Nas

FAST = (0.3, 0.3)     # two tries, 0.3 s apart: "silence" is over in 0.6 s


@contextmanager
def serving(settings, policies, db_factory, redis_client, clock) -> Iterator[RadiusServer]:
    """A real RADIUS server on ephemeral ports, in a thread, with a short RFC 5176 back-off."""
    server = RadiusServer(settings, policies, db_factory, redis_client, clock=clock)
    server.slow_lane.backoff = FAST
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.running = False
        thread.join(5)
        server.shutdown()


def wait_rows(db_factory, model, done: Callable[[list], bool], timeout: float = 10.0) -> list:
    """The rows of `model` (CoaRequest, Disconnect) once `done(rows)` holds; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        with db_factory() as db:
            rows = db.scalars(select(model).order_by(model.id)).all()
        if done(rows):
            return rows
        assert time.monotonic() < deadline, f"{model.__tablename__} never settled: {[r.result for r in rows]}"
        time.sleep(0.05)


def finished(rows: list) -> bool:
    """Every request has an outcome (and there is at least one)."""
    return bool(rows) and all(r.result != "pending" for r in rows)


def outcomes(db_factory, count: int = 1, timeout: float = 10.0) -> tuple[list[CoaRequest], list[Disconnect]]:
    """The CoA-Requests once there are `count` and all are finished, and the Disconnect-Requests they
    fell back to, finished."""
    coas = wait_rows(db_factory, CoaRequest, lambda rows: len(rows) >= count and finished(rows), timeout)
    wanted = sum(c.disconnect_id is not None for c in coas)
    cuts = wait_rows(db_factory, Disconnect, lambda rows: len(rows) >= wanted and all(
        r.result != "pending" for r in rows), timeout)
    return coas, cuts


def read_request(raw: bytes, secret: bytes) -> tuple[int, list[tuple[object, bytes]]]:
    """Check a Disconnect-/CoA-Request as the NAS must (RFC 5176 3.3: Request Authenticator =
    MD5(Code+Identifier+Length+16 zero octets+Attributes+Secret); RFC 3579 3.2: Message-Authenticator =
    HMAC-MD5 over the packet with that authenticator field zeroed and its own value zeroed) and return
    (code, attributes in order); a vendor attribute is keyed (vendor id, type). AssertionError when wrong."""
    code, _ident, length = struct.unpack("!BBH", raw[:4])
    assert length == len(raw)
    attrs_raw = raw[20:]
    expected = hashlib.md5(raw[:4] + bytes(16) + attrs_raw + secret).digest()
    assert hmac.compare_digest(raw[4:20], expected), "bad Request Authenticator"
    attrs: list[tuple[object, bytes]] = []
    zeroed, pos = bytearray(attrs_raw), 0
    while pos < len(attrs_raw):
        kind, size = attrs_raw[pos], attrs_raw[pos + 1]
        value = attrs_raw[pos + 2:pos + size]
        if kind == 26:
            vendor, vtype, vsize = struct.unpack("!IBB", value[:6])
            attrs.append(((vendor, vtype), value[6:6 + vsize - 2]))
        else:
            attrs.append((kind, value))
        if kind == 80:
            zeroed[pos + 2:pos + size] = bytes(16)
        pos += size
    ma = [v for k, v in attrs if k == 80]
    assert len(ma) == 1, "no Message-Authenticator"
    digest = hmac.new(secret, raw[:4] + bytes(16) + bytes(zeroed), hashlib.md5).digest()
    assert hmac.compare_digest(ma[0], digest), "bad Message-Authenticator"
    return code, attrs


def integer(value: bytes) -> int:
    """A 32-bit RADIUS integer."""
    return struct.unpack("!I", value)[0]


def spend_the_day(radius_server, dictionary, db_factory, policies, down: int = 1_100_000_000) -> tuple[Nas, object]:
    """Ana logs in at the park, starts a session and an interim shows more than her gigabyte of the day."""
    add_user(db_factory, policies, "ana", "anapass123", gender="female", age_band="18-29")
    nas = Nas(radius_server, dictionary)
    reply = nas.auth("ana", "anapass123")
    assert reply.code == packet.AccessAccept and "Reply-Message" not in reply
    nas.acct("Start", "s1", "ana", reply=reply, Framed_IP_Address="10.1.0.7")
    nas.acct("Interim-Update", "s1", "ana", seconds=600, bytes_in=10_000_000, bytes_out=down, reply=reply)
    settle(radius_server)
    return nas, reply
