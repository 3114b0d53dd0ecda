"""Who may talk to the server: unknown addresses, wrong secrets and missing Message-Authenticators are
dropped and logged; replies to Access-Requests carry a verifiable Message-Authenticator as their
first attribute (BlastRADIUS, CVE-2024-3596); no password or secret is ever logged."""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest
from pyrad import packet

from tests.support.builders import SECRET, add_site_and_nas, add_user
from tests.support.packets import (
    KEY,
    MA,
    PASSWORD,
    USER,
    assert_no_reply,
    assert_serves,
    attributes,
    build,
    exchange,
    expect_dropped,
    status_server,
)
from tests.support.radiusclient import Nas

WRONG_SECRET = "not-the-shared-secret-987"
LAX_IP = "127.0.0.3"


@pytest.fixture()
def user(db_factory, policies) -> int:
    return add_user(db_factory, policies, USER, PASSWORD)


@pytest.fixture()
def logs(caplog):
    """Everything logged, down to DEBUG, so that a leaked secret cannot hide below WARNING."""
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_nothing_secret_logged(caplog, *extra: str) -> None:
    lines = [r.getMessage() for r in caplog.records]
    for secret in (SECRET, WRONG_SECRET, PASSWORD, *extra):
        for form in (secret, secret.encode().hex(), repr(secret.encode())):
            assert not [line for line in lines if form in line], f"{secret!r} appears in the log"


def auth_bytes(server, dictionary, secret: str = SECRET, password: str = PASSWORD, ma: bool = True) -> bytes:
    """An Access-Request as a NAS holding `secret` encodes it (pyrad's client)."""
    req = Nas(server, dictionary, secret=secret).auth_packet(USER, password, ma=ma)
    req.message_authenticator = ma  # pyrad's Client adds one unless told not to
    data = req.RequestPacket()
    assert (MA in {attr_type for _, attr_type, _ in attributes(data)}) == ma
    return data


def acct_bytes(server, dictionary, secret: str = SECRET, session: str = "sess-auth-1") -> bytes:
    """An Accounting-Request Start as a NAS holding `secret` encodes it."""
    client = Nas(server, dictionary, secret=secret).client
    req = client.CreateAcctPacket(User_Name=USER)
    req["Acct-Status-Type"] = "Start"
    req["Acct-Session-Id"] = session
    req["Calling-Station-Id"] = "AA-BB-CC-00-00-01"
    return req.RequestPacket()


def assert_signed_reply(reply: bytes, request: bytes, secret: bytes = KEY, ma_vector: bytes | None = None) -> None:
    """Message-Authenticator is the first attribute and verifies; so does the Response Authenticator."""
    assert reply[1] == request[1], "reply to another request"
    assert int.from_bytes(reply[2:4], "big") == len(reply)
    assert reply[20] == 80, f"first attribute is {reply[20]}, not Message-Authenticator"
    assert reply[21] == 18
    zeroed = reply[:4] + (request[4:20] if ma_vector is None else ma_vector) + reply[20:22] + bytes(16) + reply[38:]
    digest = hmac.new(secret, zeroed, hashlib.md5).digest()
    assert hmac.compare_digest(digest, reply[22:38]), "bad Message-Authenticator"
    expected = hashlib.md5(reply[:4] + request[4:20] + reply[20:] + secret).digest()
    assert hmac.compare_digest(expected, reply[4:20]), "bad Response Authenticator"


def test_unknown_address_dropped(radius_server, logs, user, dictionary):
    auth, acct = auth_bytes(radius_server, dictionary), acct_bytes(radius_server, dictionary)
    socks = {
        "auth": expect_dropped(radius_server, logs, "auth", auth, source="127.0.0.2", what="auth"),
        "acct": expect_dropped(radius_server, logs, "acct", acct, source="127.0.0.2", what="acct"),
    }
    # The very same datagrams from the registered address are answered.
    assert exchange(radius_server, "auth", auth)[0] == packet.AccessAccept
    reply = exchange(radius_server, "acct", acct)
    assert reply[0] == packet.AccountingResponse
    assert_signed_reply(reply, acct, ma_vector=bytes(16))   # signed too, over a zeroed vector (RFC 5176 3.3)
    assert_no_reply(socks)
    assert_nothing_secret_logged(logs)


def test_wrong_secret_dropped(radius_server, logs, user, dictionary):
    auth = auth_bytes(radius_server, dictionary, WRONG_SECRET)
    acct = acct_bytes(radius_server, dictionary, WRONG_SECRET)
    socks = {
        "auth": expect_dropped(radius_server, logs, "auth", auth, ("Message-Authenticator",), what="auth"),
        "acct": expect_dropped(radius_server, logs, "acct", acct, ("Request Authenticator",), what="acct"),
    }
    assert_serves(radius_server, dictionary)
    assert_no_reply(socks)
    assert_nothing_secret_logged(logs)


def test_access_request_without_message_authenticator_dropped(radius_server, logs, user, dictionary):
    bare = auth_bytes(radius_server, dictionary, ma=False)
    sock = expect_dropped(radius_server, logs, "auth", bare, ("Message-Authenticator",), what="no MA")
    assert_serves(radius_server, dictionary)
    assert_no_reply({"no MA": sock})
    assert_nothing_secret_logged(logs)


@pytest.fixture()
def lax_nas(radius_server, db_factory, policies) -> int:
    """A second NAS that does not send Message-Authenticator (require_message_authenticator=False)."""
    nas_id = add_site_and_nas(db_factory, policies, ip=LAX_IP, require_ma=False)
    radius_server.registry.load()  # what the server does every few seconds, done now
    return nas_id


def test_access_request_without_message_authenticator_answered_when_nas_allows(
        lax_nas, radius_server, logs, user, dictionary):
    for password, code in ((PASSWORD, packet.AccessAccept), ("wrong-password", packet.AccessReject)):
        request = auth_bytes(radius_server, dictionary, password=password, ma=False)
        reply = exchange(radius_server, "auth", request, source=LAX_IP)
        assert reply[0] == code
        assert_signed_reply(reply, request)
    assert radius_server.stats["dropped"] == 0
    assert_nothing_secret_logged(logs, "wrong-password")


def test_status_server_without_message_authenticator_dropped(radius_server, logs, user, dictionary):
    bare = {kind: build(12, [], ident=33) for kind in ("auth", "acct")}
    socks = {kind: expect_dropped(radius_server, logs, kind, data, ("Message-Authenticator",), what=f"{kind} port")
             for kind, data in bare.items()}
    for kind, code in (("auth", packet.AccessAccept), ("acct", packet.AccountingResponse)):
        request = status_server(34)
        reply = exchange(radius_server, kind, request)
        assert reply[0] == code
        assert_signed_reply(reply, request)  # RFC 5997: the answer is signed too
    assert_serves(radius_server, dictionary)
    assert_no_reply(socks)
    assert_nothing_secret_logged(logs)


REPLY_CASES = [
    (USER, PASSWORD, False, packet.AccessAccept),
    (USER, PASSWORD, True, packet.AccessAccept),
    (USER, "wrong-password", False, packet.AccessReject),
    ("nobody", PASSWORD, False, packet.AccessReject),
]


def test_replies_start_with_a_valid_message_authenticator(radius_server, logs, user, dictionary):
    nas = Nas(radius_server, dictionary)
    for username, password, chap, code in REPLY_CASES:
        req = nas.auth_packet(username, password, chap=chap, Proxy_State=b"proxy-1")
        # Message-Authenticator last in the request: the reply must still put it first.
        del req["Message-Authenticator"]
        req["Message-Authenticator"] = bytes(16)
        req.message_authenticator = True
        request = req.RequestPacket()
        assert request[20] != MA
        reply = exchange(radius_server, "auth", request)
        assert reply[0] == code, (username, password, chap)
        assert_signed_reply(reply, request)
        # and pyrad's client, enforcing Message-Authenticator, agrees
        assert req.VerifyReply(packet.AuthPacket(packet=reply, secret=KEY, dict=dictionary), reply, enforce_ma=True)
    assert_nothing_secret_logged(logs, "wrong-password")
