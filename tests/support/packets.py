"""RADIUS packets on the wire: raw datagrams of any shape built with scapy and signed as a NAS would,
and the exchanges that check what the server drops, logs and still answers."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import random
import socket
import time

from pyrad import packet
from scapy.layers.radius import Radius, RadiusAttribute

from tests.support.builders import SECRET
from tests.support.radiusclient import Nas

KEY = SECRET.encode()
ACCESS_REQUEST, ACCESS_ACCEPT, ACCOUNTING_REQUEST, ACCOUNTING_RESPONSE, STATUS_SERVER = 1, 2, 4, 5, 12
MA = 80
ZERO_VECTOR_CODES = {ACCOUNTING_REQUEST, 40, 43}  # MA over a zero authenticator (RFC 3579, RFC 5176)
USER, PASSWORD = "ana", "anapass123"


# --- building packets -----------------------------------------------------------------------------

def attr(attr_type: int, value: bytes = b"", length: int | None = None) -> RadiusAttribute:
    """An attribute; `length` overrides the Length octet (to make it lie)."""
    return RadiusAttribute(type=attr_type, value=value, len=length)


def ma_attr(value_len: int = 16) -> RadiusAttribute:
    """A Message-Authenticator placeholder, filled in by sign()."""
    return attr(MA, bytes(value_len))


def build(code: int, attrs: list, ident: int = 7) -> bytes:
    """Raw bytes of a RADIUS packet (scapy) with a random Request Authenticator."""
    return bytes(Radius(code=code, id=ident, authenticator=os.urandom(16), attributes=attrs))


def attributes(data: bytes):
    """(offset, type, length) of each attribute inside the Length field, stopping at the first bad one."""
    end = min(int.from_bytes(data[2:4], "big"), len(data))
    pos = 20
    while pos + 2 <= end and data[pos + 1] >= 2:
        yield pos, data[pos], data[pos + 1]
        pos += data[pos + 1]


def sign(data: bytes, secret: bytes = KEY, acct_authenticator: bool | None = None) -> bytes:
    """Make `data` authentic as a NAS holding `secret` would, whatever its shape.

    Fills the first Message-Authenticator (HMAC-MD5 over the packet up to its Length, RFC 3579) and,
    for Accounting-Request (or when asked), the Request Authenticator (RFC 2866 section 3).
    """
    buf = bytearray(data)
    end = min(int.from_bytes(data[2:4], "big"), len(data))
    for pos, attr_type, length in attributes(data):
        if attr_type == MA:
            buf[pos + 2:pos + length] = bytes(length - 2)
            vector = bytes(16) if data[0] in ZERO_VECTOR_CODES else bytes(buf[4:20])
            digest = hmac.new(secret, bytes(buf[:4]) + vector + bytes(buf[20:end]), hashlib.md5).digest()
            buf[pos + 2:pos + length] = (digest * 2)[:length - 2]
            break
    if acct_authenticator or (acct_authenticator is None and data[0] == ACCOUNTING_REQUEST):
        buf[4:20] = hashlib.md5(bytes(buf[:4]) + bytes(16) + bytes(buf[20:end]) + secret).digest()
    return bytes(buf)


def access_request(*extra, user: bytes = USER.encode()) -> bytes:
    """An authentic Access-Request with a Message-Authenticator first (as a careful NAS sends it)."""
    return sign(build(ACCESS_REQUEST, [ma_attr(), attr(1, user), attr(31, b"AA-BB-CC-00-00-01"), *extra]))


def status_server(ident: int) -> bytes:
    """An authentic Status-Server (RFC 5997): random authenticator, Message-Authenticator."""
    return sign(build(STATUS_SERVER, [ma_attr()], ident=ident))


def over_4096() -> bytes:
    """An authentic Access-Request longer than RADIUS allows (16 Proxy-States of 253 octets)."""
    data = access_request(*[attr(33, bytes([i]) * 253) for i in range(16)])
    assert len(data) > 4096
    return data


# --- talking to the server ------------------------------------------------------------------------

def udp(source: str = "127.0.0.1", timeout: float = 3.0) -> socket.socket:
    """A UDP socket bound to `source` (loopback accepts any 127/8 source address)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.settimeout(timeout)
    return sock


def port_of(server, kind: str) -> int:
    """The server's UDP port for `kind`: "auth" or "acct"."""
    auth, acct = server.ports
    return auth if kind == "auth" else acct


def exchange(server, kind: str, data: bytes, source: str = "127.0.0.1") -> bytes:
    """Send one datagram and return the reply."""
    with udp(source) as sock:
        sock.sendto(data, ("127.0.0.1", port_of(server, kind)))
        return sock.recv(65535)


def pending(sock: socket.socket, wait: float = 0.0) -> list[bytes]:
    """Datagrams waiting on `sock`, after up to `wait` seconds for the first."""
    got: list[bytes] = []
    sock.settimeout(wait)  # 0: non-blocking
    try:
        while True:
            got.append(sock.recv(65535))
            sock.settimeout(0)
    except (BlockingIOError, TimeoutError):
        pass
    finally:
        sock.settimeout(3.0)
    return got


def sync(server, kind: str) -> None:
    """Wait until the server has read everything sent to its `kind` port so far.

    One thread reads each socket in order, so once a Status-Server sent now is answered, every
    datagram queued before it has been checked (and a drop counted).
    """
    ident = random.randrange(256)
    with udp() as sock:
        sock.sendto(status_server(ident), ("127.0.0.1", port_of(server, kind)))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            reply = sock.recv(65535)
            if reply[1] == ident:
                return
    raise AssertionError("the server did not answer a valid Status-Server")


def drop_lines(caplog, since: int = 0) -> list[str]:
    """The drop warnings logged from record `since` on."""
    return [r.getMessage() for r in caplog.records[since:]
            if r.levelno >= logging.WARNING and "dropped" in r.getMessage()]


def expect_dropped(server, caplog, kind: str, data: bytes, words: tuple[str, ...] = (), source: str = "127.0.0.1",
                   what: str = "") -> socket.socket:
    """Send `data`; assert it was counted as dropped and logged (from `source`, with `words`).

    Returns the sending socket, to be checked for replies (there must be none) once the server has
    surely answered everything.
    """
    before, lines = server.stats["dropped"], len(caplog.records)
    sock = udp(source)
    sock.sendto(data, ("127.0.0.1", port_of(server, kind)))
    sync(server, kind)
    assert server.stats["dropped"] == before + 1, f"{what}: not dropped"
    logged = drop_lines(caplog, lines)
    assert logged, f"{what}: drop not logged"
    assert any(source in line and all(w in line for w in words) for line in logged), (what, logged)
    return sock


def assert_serves(server, dictionary) -> None:
    """A valid Access-Request for a real user is accepted, and accounting is answered."""
    nas = Nas(server, dictionary)
    reply = nas.auth(USER, PASSWORD)
    assert reply.code == packet.AccessAccept
    assert nas.acct("Start", f"s-{os.urandom(4).hex()}", USER, reply=reply).code == packet.AccountingResponse


def assert_no_reply(socks: dict[str, socket.socket]) -> None:
    """None of the sockets got an answer; they are closed."""
    answered = {what: pending(sock) for what, sock in socks.items()}
    assert not {what: got for what, got in answered.items() if got}, "malformed packets were answered"
    for sock in socks.values():
        sock.close()
