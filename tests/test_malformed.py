"""Bad input on the wire: every malformed datagram is dropped without a reply, logged (rate-limited),
and the server keeps answering valid requests afterwards.

Packets are built with scapy and sent over a plain UDP socket. Each malformed packet is otherwise
authentic (correct Message-Authenticator and Request Authenticator for the NAS secret), so without
the server's own structural check it would be answered: pyrad 2.6 decodes several of these forms
by itself (see test_pyrad_alone_would_answer).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from pyrad import packet

from radius.packets import ACCT_CODES, AUTH_CODES, check_structure
from tests.support.builders import add_user
from tests.support.packets import (
    ACCESS_ACCEPT,
    ACCESS_REQUEST,
    ACCOUNTING_REQUEST,
    KEY,
    MA,
    PASSWORD,
    STATUS_SERVER,
    USER,
    access_request,
    assert_no_reply,
    assert_serves,
    attr,
    build,
    drop_lines,
    expect_dropped,
    ma_attr,
    over_4096,
    pending,
    port_of,
    sign,
    sync,
    udp,
)

pytestmark = pytest.mark.engine_neutral   # malformed datagrams refused before any database work


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


def _access_request_to_acct_port() -> bytes:
    # Authentic by accounting rules (Request Authenticator), with what an accounting Start carries.
    return sign(build(ACCESS_REQUEST, [attr(1, b"ana"), attr(40, (1).to_bytes(4, "big")), attr(44, b"sess-1")]),
                acct_authenticator=True)


HEADER = [
    Case("19 bytes", "auth", lambda: access_request()[:19]),
    Case("Length longer than the datagram", "auth", lambda: _longer_length(access_request())),
    Case("Length under 20", "auth", lambda: _with_length(access_request(), 19)),
    Case("Length shorter, cutting an attribute", "auth", _length_cuts_last_attribute, pyrad_answers=True),
    Case("over 4096 bytes", "auth", over_4096, pyrad_answers=True),
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
