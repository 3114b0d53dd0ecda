"""Two central nodes: the engines' own failover. A PostgreSQL primary with a synchronous streaming
replica (pg_basebackup), reached through a libpq multi-host URL with target_session_attrs=read-write,
and a Redis primary with a replica under two Sentinels, reached through a redis+sentinel:// URL. Both
primaries die (immediate stop, SIGKILL); the replica is promoted (pg_ctl promote; the sentinels);
authentication and accounting go on in the same RADIUS server, without a restart, and nothing
acknowledged is lost."""

from __future__ import annotations

import signal
import threading

import pytest
from pyrad import packet
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from portal.core import counters
from portal.core.db import make_engine, session_factory
from portal.core.model import AcctRecord, Session
from portal.core.redisconn import connect, parse_sentinel_url
from portal.core.schema import upgrade
from portal.core.settings import load_settings
from portal.web import create_app, extensions
from radius.server import RadiusServer
from tests.support import stores
from tests.support.builders import Clock, add_site_and_nas, add_user, wait_until
from tests.support.radiusclient import Nas, until_answered

pytestmark = [pytest.mark.engine_neutral,
              pytest.mark.skipif(bool(stores.missing()), reason=f"cannot run our own clusters: {stores.missing()}")]


@pytest.fixture()
def two_nodes():
    """Primary and replica of each engine, and the URLs that name both."""
    root = stores.workspace()
    ports = [stores.free_tcp_port() for _ in range(6)]
    pg_a = stores.LocalPostgres(root, "pg-a", ports[0]).init(fsync="off")
    pg_b = stores.LocalPostgres(root, "pg-b", ports[1])
    redis_a = stores.LocalRedis(root, "redis-a", ports[2], persist=False)
    redis_b = stores.LocalRedis(root, "redis-b", ports[3], persist=False, replica_of=ports[2])
    sentinels: list[stores.LocalSentinel] = []
    try:
        # Synchronous replication: a commit the applier saw is on both. (Not in postgresql.conf, which
        # pg_basebackup copies: a promoted replica would wait for a standby of its own forever.)
        pg_a.start(synchronous_standby_names="'*'")
        pg_b.replica_of(pg_a).start()
        pg_a.create_database("conecta")
        redis_a.start()
        redis_b.start()
        sentinels += [stores.LocalSentinel(root, p, ports[2]) for p in ports[4:]]
        database_url = (f"postgresql+psycopg://postgres@/conecta?host=127.0.0.1:{pg_a.port}"
                        f"&host=127.0.0.1:{pg_b.port}&target_session_attrs=read-write")
        redis_url = f"redis+sentinel://127.0.0.1:{ports[4]},127.0.0.1:{ports[5]}/conecta/2"
        yield {"pg": (pg_a, pg_b), "redis": (redis_a, redis_b), "database_url": database_url,
               "redis_url": redis_url, "root": root}
    finally:
        for s in sentinels:
            s.stop()
        redis_a.stop(signal.SIGKILL)
        redis_b.stop(signal.SIGKILL)
        pg_a.stop("immediate")
        pg_b.stop("immediate")
        import shutil
        shutil.rmtree(root, ignore_errors=True)




def test_both_engines_fail_over_and_nothing_is_lost(two_nodes, tmp_path, policies, dictionary):
    pg_a, pg_b = two_nodes["pg"]
    redis_a, redis_b = two_nodes["redis"]
    settings = load_settings({
        "CONECTA_DATA_DIR": str(tmp_path / "instance"), "CONECTA_DATABASE_URL": two_nodes["database_url"],
        "CONECTA_REDIS_URL": two_nodes["redis_url"], "CONECTA_RADIUS_HOST": "127.0.0.1",
        "CONECTA_RADIUS_AUTH_PORT": "0", "CONECTA_RADIUS_ACCT_PORT": "0"})
    engine = make_engine(settings.database_url)      # the settings and the factory pass both hosts on
    assert [h for h in make_url(settings.database_url).query["host"]] == [
        f"127.0.0.1:{pg_a.port}", f"127.0.0.1:{pg_b.port}"]
    upgrade(engine)
    db_factory = session_factory(engine)
    add_site_and_nas(db_factory, policies)
    uid = add_user(db_factory, policies, "ana", "anapass123")
    r = connect(settings.redis_url)
    server = RadiusServer(settings, policies, db_factory, r, clock=Clock())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        nas = Nas(server, dictionary, timeout=1, retries=1)
        reply = nas.auth("ana", "anapass123")
        assert reply.code == packet.AccessAccept
        assert nas.acct("Start", "f1", "ana", reply=reply).code == packet.AccountingResponse
        nas.acct("Interim-Update", "f1", "ana", seconds=300, bytes_out=5_000_000, reply=reply)
        wait_until(server.writer.idle, what="accounting applied before the switch")

        pg_a.stop("immediate")          # the primary's machine is gone
        redis_a.stop(signal.SIGKILL)
        # Accounting is acknowledged meanwhile: it waits in the write-ahead log.
        assert nas.acct("Interim-Update", "f1", "ana", seconds=600, bytes_out=9_000_000,
                        reply=reply).code == packet.AccountingResponse
        pg_b.promote()
        reply = until_answered(lambda: nas.auth("ana", "anapass123"), timeout=30)
        assert reply.code == packet.AccessAccept, "authentication did not come back on the other node"
        assert until_answered(lambda: nas.acct("Stop", "f1", "ana", seconds=900, bytes_out=12_000_000,
                                               reply=reply), timeout=30).code == packet.AccountingResponse
        wait_until(server.writer.idle, timeout=30, what="accounting applied after the switch")

        spec = parse_sentinel_url(settings.redis_url)
        master = connect(f"redis://127.0.0.1:{spec.sentinels[0][1]}").sentinel_get_master_addr_by_name("conecta")
        assert int(master[1]) == redis_b.port, "the sentinels did not promote the replica"
        checked = make_engine(pg_b.url("conecta"))     # the promoted node itself holds everything
        with session_factory(checked)() as db:
            stored = db.execute(select(AcctRecord.status, AcctRecord.seconds).order_by(AcctRecord.id)).all()
            total = db.scalar(select(func.sum(Session.bytes_out)).where(Session.acct_session_id == "f1"))
        checked.dispose()
        assert [tuple(row) for row in stored] == [("start", 0), ("interim", 300), ("interim", 600), ("stop", 900)]
        assert total == 12_000_000
        # The counters follow the failover: on the new Redis primary, today's bytes are SQL's.
        usage = counters.read_usage(r, db_factory, [uid], server.clock().astimezone(settings.tz), {})[uid]
        assert (usage.day_seconds, usage.day_bytes) == (900, 12_000_000)
        # The portal on the same URLs: its engine, its Redis client and its rate limiter's storage.
        app = create_app(settings)
        assert app.test_client().get("/healthz").get_json() == {"status": "ok", "database": True, "redis": True}
        with app.app_context():
            assert extensions.limiter.storage.check(), "the rate limiter does not reach the new Redis primary"
            extensions.db.engine.dispose()
    finally:
        server.running = False
        thread.join(5)
        server.shutdown()
        engine.dispose()
