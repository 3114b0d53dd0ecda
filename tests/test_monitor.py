"""The monitor on real probes: test hosts in network namespaces of our own (tests/support/netns.py),
a link brought down for a real outage, TCP and HTTP servers inside the namespaces, two monitors at
once, and `conecta monitor` killed with -9 and started again (no second alert)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from portal.core.db import make_engine, session_factory
from portal.core.model import MonitorStatus, NodeEvent, utcnow
from portal.core.settings import settings_env
from tests.support.httpreceiver import Receiver
from tests.support.monitor import (
    CONECTA,
    MonitorThread,
    add_probed_nas,
    events_of,
    fast,
    node,
    state_of,
    wait_for,
)
from tests.support.netns import TestHost, netns_unavailable
from tests.support.tcpproxy import TcpProxy


@pytest.fixture()
def hosts():
    """Make test hosts on demand; all removed after the test."""
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    made: list[TestHost] = []

    def make() -> TestHost:
        made.append(TestHost())
        return made[-1]
    yield make
    for host in made:
        host.close()


def test_a_real_outage_is_confirmed_and_its_history_kept(settings, db_factory, policies, hosts):
    host = hosts()
    nas_id = add_probed_nas(db_factory, policies, "ap-ejido", host.ip)
    monitor = MonitorThread(fast(settings), db_factory).start()
    try:
        wait_for(lambda: state_of(db_factory, nas_id) == "up")
        assert node(db_factory, nas_id).latency_ms is not None
        host.down()
        wait_for(lambda: state_of(db_factory, nas_id) == "down")
        row = node(db_factory, nas_id)
        assert row.failures >= 2 and row.detail == "no echo reply"
        up, down = events_of(db_factory, nas_id)
        # The outage began at the first failed probe, not when it was confirmed.
        assert (up.state, down.state) == ("up", "down") and up.ended_at == down.started_at == row.since
        assert down.ended_at is None
        host.up()
        wait_for(lambda: state_of(db_factory, nas_id) == "up")
    finally:
        monitor.stop()
    states = [(e.state, e.ended_at is None) for e in events_of(db_factory, nas_id)]
    assert states == [("up", False), ("down", False), ("up", True)]


def test_failures_short_of_confirmation_are_no_outage(settings, db_factory, policies, hosts):
    host = hosts()
    nas_id = add_probed_nas(db_factory, policies, "ap-plaza", host.ip)
    monitor = MonitorThread(fast(settings, monitor_confirmations=100), db_factory).start()
    try:
        wait_for(lambda: state_of(db_factory, nas_id) == "up")
        host.down()
        wait_for(lambda: (row := node(db_factory, nas_id)).state == "failing" and row.failures >= 2)
        host.up()
        wait_for(lambda: state_of(db_factory, nas_id) == "up")
    finally:
        monitor.stop()
    assert [(e.state, e.ended_at) for e in events_of(db_factory, nas_id)] == [("up", None)]


def test_tcp_and_http_probes_and_what_counts_as_an_answer(settings, db_factory, policies, hosts):
    receiver = Receiver()
    made = {name: hosts() for name in ("tcp", "http", "http500", "hang", "refused", "elsewhere", "nowhere")}
    made["tcp"].serve(8080)
    made["http"].serve(80)
    made["http500"].serve(8081, "error")
    made["hang"].serve(8082, "hang")
    probe = {"tcp": "tcp:8080", "http": f"http:http://{made['http'].ip}/estado",
             "http500": f"http:http://{made['http500'].ip}:8081/", "hang": f"http:http://{made['hang'].ip}:8082/",
             "refused": "tcp:8080",
             # A name that resolves to another address (our receiver): nothing may be sent there.
             "elsewhere": f"http:http://localhost:{receiver.port}/", "nowhere": "http:http://no-such-host.invalid/"}
    ids = {name: add_probed_nas(db_factory, policies, f"ap-{name}", host.ip, probe[name])
           for name, host in made.items()}
    expected = {"tcp": ("up", None), "http": ("up", None), "http500": ("down", "http status 500"),
                "hang": ("down", "no http answer in time"), "refused": ("down", "tcp port 8080 refused"),
                "elsewhere": ("down", "the probe's host name does not resolve to the NAS; nothing sent"),
                "nowhere": ("down", "the probe's host name does not resolve")}
    monitor = MonitorThread(fast(settings, probe_timeout=0.25), db_factory).start()
    try:
        def seen() -> dict:
            return {name: (row.state, row.detail) if (row := node(db_factory, i)) else None for name, i in ids.items()}
        wait_for(lambda: seen() == expected, timeout=15)
    finally:
        monitor.stop()
        receiver.close()
    assert receiver.requests == []


def test_two_monitors_one_works_and_a_fenced_one_stops_writing(settings, db_factory, policies, hosts):
    nas_id = add_probed_nas(db_factory, policies, "ap-1", hosts().ip)
    first = MonitorThread(fast(settings), db_factory, holder="test-host:1").start()
    second = None
    try:
        epoch = wait_for(lambda: first.monitor.epoch)
        wait_for(lambda: state_of(db_factory, nas_id) == "up")
        second = MonitorThread(fast(settings), db_factory, holder="test-host:2").start()
        time.sleep(2.5)
        assert second.monitor.epoch is None                     # standing by
        first.stop()                                            # a clean stop gives the lease up
        assert wait_for(lambda: second.monitor.epoch, timeout=5) == epoch + 1
        # A third monitor takes the lease behind the second's back (the second stalled, say):
        with db_factory.begin() as db:
            db.execute(update(MonitorStatus).values(epoch=epoch + 2, holder="test-host:3"))
        wait_for(lambda: second.monitor.epoch is None, timeout=5)   # fenced: it stands by again
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_conecta_monitor_killed_and_started_again_keeps_its_state(settings, db_factory, policies, hosts):
    host = hosts()
    nas_id = add_probed_nas(db_factory, policies, "ap-1", host.ip)
    hook = Receiver()
    env = {**os.environ, **settings_env(fast(settings, alert_webhook_url=hook.url, alert_group_seconds=0))}

    def start() -> subprocess.Popen:
        return subprocess.Popen([str(CONECTA), "monitor"], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = start()
    try:
        wait_for(lambda: state_of(db_factory, nas_id) == "up", timeout=20)
        host.down()
        wait_for(lambda: state_of(db_factory, nas_id) == "down")
        down = events_of(db_factory, nas_id)[-1]
        wait_for(lambda: len(hook.posts()) == 1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        failures = node(db_factory, nas_id).failures
        proc = start()
        # The new process takes over at once (the old holder's pid is gone) and counts on.
        wait_for(lambda: node(db_factory, nas_id).failures >= failures + 2, timeout=20)
        assert [e.id for e in events_of(db_factory, nas_id)][-1] == down.id
        host.up()
        wait_for(lambda: state_of(db_factory, nas_id) == "up", timeout=20)
        wait_for(lambda: len(hook.posts()) == 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
        hook.close()
    # One alert for the outage (none again from the restarted monitor), one for the recovery.
    assert [[e["kind"] for e in post["events"]] for post in hook.posts()] == [["down"], ["up"]]
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    with db_factory() as db:
        rows = db.execute(select(NodeEvent.state, NodeEvent.ended_at).where(NodeEvent.nas_id == nas_id)
                          .order_by(NodeEvent.id)).all()
    assert [(s, end is None) for s, end in rows] == [("up", False), ("down", False), ("up", True)]


@pytest.mark.skipif(not os.environ.get("CONECTA_TEST_DATABASE_URL"), reason="needs PostgreSQL over TCP")
def test_the_database_away_loses_no_change(settings, db_factory, policies, hosts):
    """While the database is unreachable the monitor keeps probing; the outage it saw meanwhile is
    written, from its first failed probe, once the database is back."""
    url = make_url(settings.database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    engine = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    host = hosts()
    nas_id = add_probed_nas(db_factory, policies, "ap-1", host.ip)
    monitor = MonitorThread(fast(settings), session_factory(engine)).start()
    try:
        wait_for(lambda: state_of(db_factory, nas_id) == "up")
        proxy.cut()
        cut_at = utcnow()
        host.down()
        time.sleep(3)                                        # confirmed down while nothing can be written
        assert state_of(db_factory, nas_id) == "up"
        proxy.restore()
        wait_for(lambda: state_of(db_factory, nas_id) == "down", timeout=20)
    finally:
        monitor.stop()
        proxy.cut()
        engine.dispose()
    up, down = events_of(db_factory, nas_id)
    assert up.ended_at == down.started_at and cut_at <= down.started_at <= cut_at + timedelta(seconds=2)
