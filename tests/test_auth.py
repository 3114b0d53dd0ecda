"""Access-Request paths over real UDP: PAP, CHAP (both forms), MAC auth, one-time credentials."""

from __future__ import annotations

import hashlib
import os
import time

from pyrad import packet

from portal.core import credentials
from portal.core.model import Device
from tests.support.builders import add_user
from tests.support.radiusclient import Nas


def test_pap_accept_carries_the_policy(radius_server, dictionary, db_factory, policies):
    uid = add_user(db_factory, policies, "ana", "anapass123", gender="female", age_band="18-29")
    reply = Nas(radius_server, dictionary).auth("ana", "anapass123")
    assert reply.code == packet.AccessAccept
    assert reply["Session-Timeout"] == [3600]          # parque: 1 h sessions, 2 h a day, open till 23:00
    assert reply["Idle-Timeout"] == [600]
    assert reply["Acct-Interim-Interval"] == [300]
    assert "ChilliSpot-Max-Total-Octets" not in reply   # parque's data pools slow down, so the NAS gets no cap
    assert "Reply-Message" not in reply
    assert reply["WISPr-Bandwidth-Max-Down"] == [5_000_000]
    assert reply["ChilliSpot-Bandwidth-Max-Down"] == [5000]
    assert reply["Class"] == [f"conecta:{uid}".encode()]


def test_wrong_password_and_unknown_user_are_rejected_in_spanish(radius_server, dictionary, db_factory, policies):
    add_user(db_factory, policies, "ana", "anapass123")
    nas = Nas(radius_server, dictionary)
    for name, password in (("ana", "wrong-one"), ("nadie", "anapass123"), ("ana", "")):
        reply = nas.auth(name, password)
        assert reply.code == packet.AccessReject
        assert "contraseña incorrectos" in reply["Reply-Message"][0]


def test_chap_with_challenge_attribute_and_authenticator_form(radius_server, dictionary, db_factory, policies):
    add_user(db_factory, policies, "beto", "betopass99")
    nas = Nas(radius_server, dictionary)
    assert nas.auth("beto", "betopass99", chap=True).code == packet.AccessAccept
    assert nas.auth("beto", "wrongpass", chap=True).code == packet.AccessReject
    # RFC 2865 2.2: without CHAP-Challenge the Request Authenticator is the challenge.
    req = nas.auth_packet("beto")
    req.authenticator = os.urandom(16)
    chap_id = b"\x2a"
    req["CHAP-Password"] = chap_id + hashlib.md5(chap_id + b"betopass99" + req.authenticator).digest()
    req.add_message_authenticator()
    assert nas.client.SendPacket(req).code == packet.AccessAccept


def test_disabled_account_is_rejected(radius_server, dictionary, db_factory, policies):
    from portal.core.model import User
    uid = add_user(db_factory, policies, "carla", "carlapass1")
    with db_factory.begin() as db:
        db.get(User, uid).disabled = True
    reply = Nas(radius_server, dictionary).auth("carla", "carlapass1")
    assert reply.code == packet.AccessReject
    assert "suspendida" in reply["Reply-Message"][0]


def test_mac_authentication_of_a_remembered_device(radius_server, dictionary, db_factory, policies):
    uid = add_user(db_factory, policies, "dora", "dorapass12")
    with db_factory.begin() as db:
        db.add(Device(user_id=uid, mac="aa:bb:cc:00:00:09"))
    nas = Nas(radius_server, dictionary)
    # CoovaChilli sends the MAC as User-Name with its macpasswd; MikroTik sends it with colons.
    for name in ("AA-BB-CC-00-00-09", "aa:bb:cc:00:00:09"):
        reply = nas.auth(name, "password", mac="AA-BB-CC-00-00-09")
        assert reply.code == packet.AccessAccept
        assert reply["Class"] == [f"conecta:{uid}".encode()]
    # The MAC must be the one the NAS saw: a User-Name naming another device is refused.
    assert nas.auth("AA-BB-CC-00-00-09", "password", mac="AA-BB-CC-00-00-10").code == packet.AccessReject
    unknown = nas.auth("AA-BB-CC-00-00-11", "password", mac="AA-BB-CC-00-00-11")
    assert unknown.code == packet.AccessReject
    assert "no está registrado" in unknown["Reply-Message"][0]


def test_one_time_credential_single_use_bound_to_mac_and_nas(radius_server, dictionary, db_factory, policies,
                                                            redis_client, nas_id):
    uid = add_user(db_factory, policies, "eva", "evapass123")
    nas = Nas(radius_server, dictionary)
    name, password = credentials.issue(redis_client, uid, nas_id, "aa:bb:cc:00:00:01")
    assert nas.auth(name, password, chap=True).code == packet.AccessAccept
    assert nas.auth(name, password, chap=True).code == packet.AccessReject      # replay: consumed
    name, password = credentials.issue(redis_client, uid, nas_id, "aa:bb:cc:00:00:01")
    assert nas.auth(name, password, mac="AA-BB-CC-00-00-02").code == packet.AccessReject  # another MAC
    name, password = credentials.issue(redis_client, uid, nas_id + 1, "aa:bb:cc:00:00:01")
    assert nas.auth(name, password).code == packet.AccessReject                 # another NAS
    name, password = credentials.issue(redis_client, uid, nas_id, "aa:bb:cc:00:00:01", ttl=1)
    redis_client.delete(credentials.PREFIX + name)                               # as if expired
    assert nas.auth(name, password).code == packet.AccessReject


def test_retransmission_gets_the_same_reply_byte_for_byte(radius_server, dictionary, db_factory, policies,
                                                          redis_client, nas_id):
    """RFC 5080: a NAS that lost the Accept for a single-use credential must get it again."""
    import socket
    uid = add_user(db_factory, policies, "fede", "fedepass12")
    nas = Nas(radius_server, dictionary)
    name, password = credentials.issue(redis_client, uid, nas_id, "aa:bb:cc:00:00:01")
    raw = nas.auth_packet(name, password).RequestPacket()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(raw, ("127.0.0.1", radius_server.ports[0]))
        first = sock.recv(4096)
        sock.sendto(raw, ("127.0.0.1", radius_server.ports[0]))
        second = sock.recv(4096)
    assert first[0] == packet.AccessAccept
    assert second == first
    assert radius_server.stats["auth"] == 1


def test_status_server_is_answered_and_marks_the_nas_seen(radius_server, dictionary, nas_id, redis_client):
    radius_server.registry.flush_seen(redis_client, to_db=False)
    assert redis_client.hgetall("nas:seen") == {}                 # not seen before the Status-Servers
    started = time.time()
    nas = Nas(radius_server, dictionary)
    req = nas.client.CreateAuthPacket(code=packet.StatusServer)
    req.add_message_authenticator()
    reply = nas.client.SendPacket(req)
    assert reply.code == packet.AccessAccept
    acct = nas.client.CreateAcctPacket(code=packet.StatusServer)
    acct.add_message_authenticator()
    assert nas.client._SendPacket(acct, nas.client.acctport).code == packet.AccountingResponse
    radius_server.registry.flush_seen(redis_client, to_db=False)
    seen = redis_client.hgetall("nas:seen")
    assert list(seen) == [str(nas_id).encode()]
    assert started - 1 <= int(seen[str(nas_id).encode()]) <= time.time() + 1     # when, in whole seconds
