"""Engine and session factories, the same for the web, the CLI and the RADIUS daemon."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

from portal.settings import Settings


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API connection
    # WAL lets readers run beside the accounting writer; FULL makes each commit survive a crash
    # of the process and of the machine; the busy timeout covers the CLI writing meanwhile.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, **kwargs) -> Engine:
    """An engine with the pragmas and pool settings Conecta relies on."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 15, "check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # pre_ping: after the database restarts, a stale pooled connection is replaced, not failed on.
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, **kwargs)


def engine_for(settings: Settings) -> Engine:
    """The engine for the configured database."""
    return make_engine(settings.database_url)


def session_factory(engine: Engine) -> sessionmaker:
    """A plain sessionmaker (the RADIUS daemon and CLI use this; the web uses flask-sqlalchemy)."""
    return sessionmaker(engine, expire_on_commit=False)
