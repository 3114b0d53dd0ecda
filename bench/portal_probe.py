"""Round trips per operation: one splash GET and one registration through Flask's test client, counted.

Load figures depend on how busy the machine is; the number of PostgreSQL and Redis round trips each
operation makes does not, and each one costs CPU on both sides and a wait. This builds the same app
gunicorn serves (same settings, same database and Redis) inside the benchmark process, wraps the
methods by which psycopg and redis-py send (in this process only, while counting), and runs a few
operations. Used by portal_bench.py; the portal's code is not touched.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')


class Counts:
    """What the operations sent to PostgreSQL and Redis."""

    def __init__(self) -> None:
        self.c: Counter = Counter()

    def add(self, kind: str, n: int = 1) -> None:
        """Count `n` events of `kind`."""
        self.c[kind] += n

    def per_op(self, ops: int) -> dict[str, float]:
        """Averages per operation."""
        return {k: round(v / ops, 2) for k, v in sorted(self.c.items())}


@contextlib.contextmanager
def patched(owner: type, name: str, before: Callable[..., None]) -> Iterator[None]:
    """Call `before(*args)` ahead of every call of owner.name while inside (this process only)."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        before(*args)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def counting(counts: Counts, engine) -> Iterator[None]:  # noqa: ANN001 - an SQLAlchemy Engine
    """Count every PostgreSQL round trip (psycopg sends) and Redis command or pipeline while inside."""
    import redis
    import redis.client
    from psycopg._connection_base import BaseConnection
    from psycopg._cursor_base import BaseCursor
    from sqlalchemy import event

    def command(_conn: object, sql: object, *_: object) -> None:
        word = (sql if isinstance(sql, bytes) else str(sql).encode()).split()[0].decode().lower()
        counts.add(f"pg_{word}")
        counts.add("pg_round_trips")

    def query(*_: object) -> None:
        counts.add("pg_queries")
        counts.add("pg_round_trips")

    def redis_command(_client: object, name: object, *_: object) -> None:
        counts.add(f"redis_{str(name).lower()}")
        counts.add("redis_round_trips")

    checkout = lambda *_: counts.add("pool_checkouts")  # noqa: E731
    statement = lambda *_: counts.add("sql_statements")  # noqa: E731 - PostgreSQL and SQLite alike
    commit = lambda *_: counts.add("sql_commits")  # noqa: E731
    rollback = lambda *_: counts.add("sql_rollbacks")  # noqa: E731
    listeners = [(engine.pool, "checkout", checkout), (engine, "before_cursor_execute", statement),
                 (engine, "commit", commit), (engine, "rollback", rollback)]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(BaseConnection, "_exec_command", command))        # BEGIN, COMMIT, ROLLBACK
        stack.enter_context(patched(BaseCursor, "_execute_send", query))              # a statement
        stack.enter_context(patched(BaseCursor, "_send_query_prepared", query))       # a prepared statement
        stack.enter_context(patched(BaseCursor, "_send_prepare", query))              # PREPARE (own round trip)
        stack.enter_context(patched(redis.Redis, "execute_command", redis_command))
        stack.enter_context(patched(redis.client.Pipeline, "execute",
                                    lambda *_: counts.add("redis_round_trips")))
        try:
            yield
        finally:
            for target, name, fn in listeners:
                event.remove(target, name, fn)


def probe(env: dict[str, str], origin: str, make_path: Callable[[], str], form: dict[str, str],
          ops: int = 20) -> dict[str, dict[str, float]]:
    """Round trips per splash GET and per registration (arrival GET + POST), averaged over `ops`."""
    from portal.core.settings import load_settings
    from portal.web import create_app
    from portal.web.extensions import db
    app = create_app(load_settings(env))
    client = app.test_client()
    with app.app_context():
        engine = db.engine
    results = {}
    for name, op in (("splash", lambda: _splash(client, origin, make_path)),
                     ("registration", lambda: _register(client, origin, make_path, form))):
        op()  # warm: first use compiles queries and opens connections
        counts = Counts()
        with counting(counts, engine):
            for _ in range(ops):
                op()
        results[name] = counts.per_op(ops)
    results["registration_post"] = {k: round(v - results["splash"].get(k, 0), 2)
                                    for k, v in results["registration"].items()}
    engine.dispose()
    return results


def _splash(client, origin: str, make_path: Callable[[], str]) -> bytes:  # noqa: ANN001 - a FlaskClient
    # A new visitor each time, as the load generator's (it keeps no cookies): the test client files
    # cookies under the request's host, so that is the domain to delete them from.
    client.delete_cookie("conecta", domain=urlsplit(origin).hostname or "localhost")
    resp = client.get(make_path(), base_url=origin, headers={"Accept-Language": "es"})
    if resp.status_code != 200:
        raise RuntimeError(f"probe: splash GET answered {resp.status_code}")
    return resp.data


def _register(client, origin: str, make_path: Callable[[], str], form: dict[str, str]) -> None:  # noqa: ANN001
    token = CSRF.search(_splash(client, origin, make_path))
    resp = client.post("/register", base_url=origin, data={**form, "csrf_token": token.group(1).decode()},
                       headers={"Origin": origin})
    if resp.status_code != 302 or "/logon?username=c-" not in resp.headers.get("Location", ""):
        raise RuntimeError(f"probe: registration POST answered {resp.status_code}")
