"""Engine and session factories, the same for the web, the CLI and the RADIUS daemon."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from policies.messages import N_
from portal.core.errors import InputError
from portal.core.settings import Settings


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API connection
    # WAL lets readers run beside the accounting writer; FULL makes each commit survive a crash
    # of the process and of the machine; the busy timeout covers the CLI writing meanwhile.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str | URL, **kwargs) -> Engine:
    """The one engine factory (daemon, CLI and web): the pragmas and pool settings Conecta relies on.

    `kwargs` override the pool settings (the web sizes its pool to gunicorn's threads).
    """
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        pool = {k: v for k, v in kwargs.items() if k not in ("pool_size", "max_overflow", "pool_pre_ping")}
        engine = create_engine(url, connect_args={"timeout": 15, "check_same_thread": False}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # pre_ping: after the database restarts, a stale pooled connection is replaced, not failed on.
    return create_engine(url, **{"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10, **kwargs})


def engine_for(settings: Settings) -> Engine:
    """The engine for the configured database."""
    return make_engine(settings.database_url)


def session_factory(engine: Engine) -> sessionmaker:
    """A plain sessionmaker (the RADIUS daemon and the CLI; the web goes through flask-sqlalchemy)."""
    return sessionmaker(engine, expire_on_commit=False)


def commit_or_explain(db: Session) -> None:
    """Commit, turning a constraint race (two admins at once) into an InputError."""
    try:
        db.commit()
    except IntegrityError as exc:
        db.rollback()
        raise InputError(N_("no se guardó: %(problem)s"), problem=str(exc.orig).splitlines()[0][:120]) from None
