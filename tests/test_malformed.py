"""Bad input on the wire: every malformed datagram is dropped without a reply, logged (rate-limited),
and the server keeps answering valid requests afterwards.

Packets are built with scapy and sent over a plain UDP socket. Each malformed packet is otherwise
authentic (correct Message-Authenticator and Request Authenticator for the NAS secret), so without
the server's own structural check it would be answered: pyrad 2.6 decodes several of these forms
by itself (see test_pyrad_alone_would_answer).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from pyrad import packet
from scapy.layers.radius import Radius, RadiusAttribute

from radius.packets import ACCT_CODES, AUTH_CODES, check_structure
from tests.support.builders import SECRET, add_user
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


# --- talking to the server ------------------------------------------------------------------------

def udp(source: str = "127.0.0.1", timeout: float = 3.0) -> socket.socket:
    """A UDP socket bound to `source` (loopback accepts any 127/8 source address)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.settimeout(timeout)
    return sock


def port_of(server, kind: str) -> int:
    auth, acct = server.ports
    return auth if kind == "auth" else acct


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
    return [r.getMessage() for r in caplog.records[since:]
            if r.levelno >= logging.WARNING and "dropped" in r.getMessage()]


def expect_dropped(server, caplog, kind: str, data: bytes, words: tuple[str, ...] = (), source: str = "127.0.0.1",
                   what: str = "") -> socket.socket:
    """Send `data`; assert it was counted as dropped and logged. Returns the sending socket, to be
    checked for replies (there must be none) once the server has surely answered everything."""
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
    answered = {what: pending(sock) for what, sock in socks.items()}
    assert not {what: got for what, got in answered.items() if got}, "malformed packets were answered"
    for sock in socks.values():
        sock.close()


@pytest.fixture()
def user(db_factory, policies) -> int:
    return add_user(db_factory, policies, USER, PASSWORD)


# --- the malformed packets ------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    kind: str                       # the port it is sent to: "auth" or "acct"
    make: Callable[[], bytes]
    pyrad_answers: bool = False     # pyrad decodes it and it passes the authenticity checks

    @property
    def codes(self) -> frozenset[int]:
        return AUTH_CODES if self.kind == "auth" else ACCT_CODES


def _with_length(data: bytes, length: int) -> bytes:
    return data[:2] + length.to_bytes(2, "big") + data[4:]


def _longer_length(data: bytes) -> bytes:
    return sign(_with_length(data, len(data) + 10))


def _length_cuts_last_attribute() -> bytes:
    full = build(ACCESS_REQUEST, [ma_attr(), attr(1, b"ana"), attr(31, b"AA-BB-CC-00-00-01")])
    return sign(_with_length(full, len(full) - 5))  # the datagram goes on: the Length lies short


def _lone_octet_at_end() -> bytes:
    data = build(ACCESS_REQUEST, [ma_attr(), attr(1, b"ana")]) + b"\x1f"  # one octet: half a header
    return sign(_with_length(data, len(data)))


def _over_4096() -> bytes:
    data = access_request(*[attr(33, bytes([i]) * 253) for i in range(16)])
    assert len(data) > 4096
    return data


def _access_request_to_acct_port() -> bytes:
    # Authentic by accounting rules (Request Authenticator), with what an accounting Start carries.
    return sign(build(ACCESS_REQUEST, [attr(1, b"ana"), attr(40, (1).to_bytes(4, "big")), attr(44, b"sess-1")]),
                acct_authenticator=True)


HEADER = [
    Case("19 bytes", "auth", lambda: access_request()[:19]),
    Case("Length longer than the datagram", "auth", lambda: _longer_length(access_request())),
    Case("Length under 20", "auth", lambda: _with_length(access_request(), 19)),
    Case("Length shorter, cutting an attribute", "auth", _length_cuts_last_attribute, pyrad_answers=True),
    Case("over 4096 bytes", "auth", _over_4096, pyrad_answers=True),
]
ATTRIBUTES = [
    Case("attribute length 0", "auth", lambda: access_request(attr(31, b"x", length=0))),
    Case("attribute length 1", "auth", lambda: access_request(attr(31, b"", length=1))),
    Case("attribute running past the end", "auth", lambda: access_request(attr(30, b"called", length=20)),
         pyrad_answers=True),
    Case("attribute header past the end", "auth", _lone_octet_at_end),
    Case("201 attributes", "auth", lambda: access_request(*[attr(33, b"p")] * 200), pyrad_answers=True),
]
def _ma_of_length(length: int) -> Callable[[], bytes]:
    return lambda: sign(build(ACCESS_REQUEST, [ma_attr(length - 2), attr(1, b"ana")]))


MESSAGE_AUTHENTICATOR = [
    Case("Message-Authenticator of length 2", "auth", _ma_of_length(2)),
    Case("Message-Authenticator of length 17", "auth", _ma_of_length(17)),
    Case("Message-Authenticator of length 19", "auth", _ma_of_length(19)),
    Case("two Message-Authenticators", "auth", lambda: access_request(attr(MA, os.urandom(16))), pyrad_answers=True),
    Case("Message-Authenticator on accounting, length 19", "acct",
         lambda: sign(build(ACCOUNTING_REQUEST, [ma_attr(17), attr(40, (1).to_bytes(4, "big")), attr(44, b"s")]))),
]
CODES = [
    Case("Access-Accept sent to the server", "auth",
         lambda: sign(build(ACCESS_ACCEPT, [ma_attr(), attr(1, b"ana")])), pyrad_answers=True),
    Case("Accounting-Request on the auth port", "auth",
         lambda: sign(build(ACCOUNTING_REQUEST, [ma_attr(), attr(1, b"ana")])), pyrad_answers=True),
    Case("Disconnect-Request (40)", "auth", lambda: sign(build(40, [ma_attr(), attr(1, b"ana")])), pyrad_answers=True),
    Case("unknown code 255", "auth", lambda: sign(build(255, [ma_attr(), attr(1, b"ana")])), pyrad_answers=True),
    Case("Access-Request on the accounting port", "acct", _access_request_to_acct_port, pyrad_answers=True),
]
GROUPS = {"header": HEADER, "attributes": ATTRIBUTES, "message-authenticator": MESSAGE_AUTHENTICATOR,
          "codes": CODES}
ALL = [case for group in GROUPS.values() for case in group]


# --- tests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_structure_check_refuses(case):
    assert check_structure(case.make(), case.codes)


@pytest.mark.parametrize("case", [c for c in ALL if c.pyrad_answers], ids=[c.name for c in ALL if c.pyrad_answers])
def test_pyrad_alone_would_answer(case, dictionary):
    """Why the server checks the structure itself: pyrad decodes these and they pass its checks."""
    data = case.make()
    kind = packet.AuthPacket if case.kind == "auth" else packet.AcctPacket
    pkt = kind(packet=data, secret=KEY, dict=dictionary)
    if pkt.message_authenticator:
        assert pkt.verify_message_authenticator()
    else:
        assert pkt.VerifyAcctRequest()


@pytest.mark.parametrize("group", list(GROUPS))
def test_malformed_dropped_and_logged(group, radius_server, caplog, user, dictionary):
    # At most five of one kind per server: the drop log is rate-limited to five lines a minute.
    socks = {case.name: expect_dropped(radius_server, caplog, case.kind, case.make(), ("malformed",), what=case.name)
             for case in GROUPS[group]}
    assert_serves(radius_server, dictionary)
    assert_no_reply(socks)


def test_length_shorter_than_datagram_dropped(radius_server, caplog, user, dictionary):
    sock = expect_dropped(radius_server, caplog, "auth", access_request() + b"\x00" * 12, what="padded")
    assert_serves(radius_server, dictionary)
    assert_no_reply({"padded": sock})


def test_invalid_utf8_user_name_dropped(radius_server, caplog, user, dictionary):
    sock = expect_dropped(radius_server, caplog, "auth", access_request(user=b"an\xff\xfe\xc3("), what="utf-8")
    assert_serves(radius_server, dictionary)
    assert_no_reply({"utf-8": sock})


def _noise(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.6:  # anything, mostly too short
        return rng.randbytes(rng.randrange(0, 64))
    if roll < 0.95:  # a plausible header, garbage after it
        body = rng.randbytes(rng.randrange(0, 300))
        code = rng.choice([ACCESS_REQUEST, ACCOUNTING_REQUEST, STATUS_SERVER, 0, 2, 5])
        length = 20 + len(body) if rng.random() < 0.8 else rng.randrange(0, 65536)
        return bytes([code, rng.randrange(256)]) + length.to_bytes(2, "big") + rng.randbytes(16) + body
    return rng.randbytes(rng.randrange(4097, 6000))


def test_random_flood_dropped_with_bounded_logging(radius_server, caplog, user, dictionary):
    rng = random.Random(20261126)
    sent, started = 0, time.monotonic()
    with udp() as sock:
        for chunk in range(30):
            kind = "auth" if chunk % 2 == 0 else "acct"
            for _ in range(100):
                sock.sendto(_noise(rng), ("127.0.0.1", port_of(radius_server, kind)))
                sent += 1
            sync(radius_server, kind)  # paced by chunks, so no datagram is lost to a full buffer
        elapsed = time.monotonic() - started
        assert radius_server.stats["dropped"] == sent == 3000
        assert elapsed < 20, f"{sent} junk datagrams took {elapsed:.1f}s"
        lines = drop_lines(caplog)
        assert 1 <= len(lines) <= 40, f"{len(lines)} log lines for {sent} junk datagrams"
        assert_serves(radius_server, dictionary)
        assert pending(sock, wait=0.1) == []
