"""Issue 11, items 1-4: copies of a request in one batch, late retransmissions, wrong attempts at a
one-time credential, and Interim-Updates after a Stop; real UDP, Redis and SQL."""

from __future__ import annotations

import logging
import time

import pytest
from pyrad import packet
from sqlalchemy import func, select

from portal.core import credentials
from portal.core.model import Session, UsageDaily
from portal.core.settings import SettingsError, load_settings, settings_env
from radius.util import ReplyCache
from tests.support.builders import add_user, settle
from tests.support.packets import pending, sync, udp
from tests.support.paused import paused_server, read_batch
from tests.support.radiusclient import Nas

MAC = "aa:bb:cc:00:00:01"


def test_copies_of_a_request_in_one_batch_are_answered_once(settings, policies, db_factory, redis_client, nas_id,
                                                             dictionary, clock):
    """Three copies of a one-time credential's Access-Request read in one batch: one Accept, and the
    credential was used once (before: three GETDELs, the last empty one won, Access-Reject)."""
    uid = add_user(db_factory, policies, "ana", "anapass123")
    with paused_server(settings, policies, db_factory, redis_client, clock) as server:
        name, password = credentials.issue(redis_client, uid, nas_id, MAC)
        raw = Nas(server, dictionary).auth_packet(name, password).RequestPacket()
        with udp() as sock:
            for _ in range(3):
                sock.sendto(raw, ("127.0.0.1", server.ports[0]))
            read_batch(server, "auth")
            replies = pending(sock, wait=2)
            assert [r[0] for r in replies] == [packet.AccessAccept]
            sock.sendto(raw, ("127.0.0.1", server.ports[0]))        # a fourth copy, later: the same bytes
            read_batch(server, "auth")
            assert pending(sock, wait=2) == replies
        assert server.stats["auth"] == 1


class MovingClock:
    """time.monotonic(), moved forward on demand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def test_a_late_retransmission_of_a_one_time_login_gets_the_same_accept(radius_server, dictionary, db_factory,
                                                                       policies, redis_client, nas_id):
    """A NAS that lost the Accept and retries after 20 s gets it, byte for byte; after the retry
    window the reply is gone, and so is the credential."""
    moved = radius_server.cache.clock = MovingClock()
    uid = add_user(db_factory, policies, "bea", "beapass123")
    nas = Nas(radius_server, dictionary)
    name, password = credentials.issue(redis_client, uid, nas_id, MAC)
    raw = nas.auth_packet(name, password).RequestPacket()
    plain = nas.auth_packet("bea", "beapass123").RequestPacket()
    with udp() as sock:
        for data in (raw, plain):
            sock.sendto(data, ("127.0.0.1", radius_server.ports[0]))
        first = sock.recv(4096), sock.recv(4096)
        accept = next(r for r in first if r[1] == raw[1])
        assert accept[0] == packet.AccessAccept
        moved.offset = 20.0
        sync(radius_server, "auth")
        radius_server.cache.expire()
        assert len(radius_server.cache.entries) <= 1, "a reply that can be made again was kept past 5 s"
        sock.sendto(raw, ("127.0.0.1", radius_server.ports[0]))
        assert sock.recv(4096) == accept
        moved.offset = 32.0
        radius_server.cache.expire()
        sock.sendto(raw, ("127.0.0.1", radius_server.ports[0]))
        assert sock.recv(4096)[0] == packet.AccessReject              # past the window: used up


def test_the_retry_window_is_a_setting_and_bounded_in_memory(settings):
    assert settings.radius_retry_window == 30
    assert load_settings({**settings_env(settings), "CONECTA_RADIUS_RETRY_WINDOW": "90"}).radius_retry_window == 90
    with pytest.raises(SettingsError, match="RETRY_WINDOW"):
        load_settings({**settings_env(settings), "CONECTA_RADIUS_RETRY_WINDOW": "5"})
    clock = MovingClock()
    cache = ReplyCache(window=30, most=1000, clock=clock)
    for n in range(5000):
        key = n.to_bytes(4, "big")
        cache.start(key)
        cache.store(key, b"reply", n % 2 == 0)
        clock.offset += 0.01
    assert len(cache.kept) <= 1000
    assert cache.get((4998).to_bytes(4, "big")) == b"reply"
    clock.offset += 10
    cache.expire()
    assert len(cache.entries) == 0 and 0 < len(cache.kept) <= 1000
    clock.offset += 30
    cache.expire()
    assert not cache.kept


def test_wrong_attempts_do_not_use_up_a_one_time_credential(radius_server, dictionary, db_factory, policies,
                                                            redis_client, nas_id):
    """Anyone who saw the plain-http logon URL could send a wrong password or MAC first: refused,
    and the citizen's own request still gets in. Two right ones: exactly one is accepted."""
    uid = add_user(db_factory, policies, "caro", "caropass12")
    nas = Nas(radius_server, dictionary)
    name, password = credentials.issue(redis_client, uid, nas_id, MAC)
    assert nas.auth(name, "not-the-password").code == packet.AccessReject
    assert nas.auth(name, password, mac="AA-BB-CC-00-00-09").code == packet.AccessReject
    assert nas.auth(name, password, chap=True).code == packet.AccessAccept
    assert redis_client.get(credentials.PREFIX + name) is None
    name, password = credentials.issue(redis_client, uid, nas_id, MAC)
    stored = credentials.read_many(redis_client, [name])[name][0]
    assert credentials.take(redis_client, [(name, stored), (name, stored)]) == [True, False]


def test_interim_after_stop_is_not_charged_and_logged_once(radius_server, dictionary, db_factory, policies, caplog):
    uid = add_user(db_factory, policies, "dora", "dorapass12")
    nas = Nas(radius_server, dictionary)
    reply = nas.auth("dora", "dorapass12")
    for status, seconds, up, down in (("Start", 0, 0, 0), ("Interim-Update", 300, 100, 20_000),
                                      ("Stop", 600, 200, 40_000)):
        assert nas.acct(status, "s-late", "dora", seconds, up, down, reply=reply).code == packet.AccountingResponse
    settle(radius_server)
    caplog.set_level(logging.INFO, logger="conecta.accounting")
    late = nas.acct_packet("Interim-Update", "s-late", "dora", 900, 300, 90_000_000, reply=reply)
    for _ in range(2):     # acknowledged (the NAS must stop retrying), and a retransmission is the same record
        assert nas.client.SendPacket(late).code == packet.AccountingResponse
    settle(radius_server)
    with db_factory() as db:
        s = db.scalars(select(Session)).one()
        assert (s.is_open, s.seconds, s.bytes_in, s.bytes_out) == (False, 600, 200, 40_000)
        used = db.execute(select(func.sum(UsageDaily.seconds), func.sum(UsageDaily.bytes_down))
                          .where(UsageDaily.user_id == uid)).one()
    assert tuple(used) == (600, 40_000)
    lines = [r.getMessage() for r in caplog.records if "after its Stop" in r.getMessage()]
    assert len(lines) == 1 and "s-late" in lines[0] and "dora" not in lines[0], lines
