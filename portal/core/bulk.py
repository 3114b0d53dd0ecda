"""Set-based SQL for the hot paths (accounting, RADIUS look-ups) with one statement text per shape.

Why: SQLAlchemy's multi-row VALUES and expanding IN write a new statement text for every batch
size, which psycopg must parse again each time (its cache skips long statements) and PostgreSQL
must plan again. On PostgreSQL these helpers pass whole columns as arrays instead (`unnest`,
`= ANY`), so the text never changes; on SQLite they fall back to the plain forms, which are cheap
there (no network, no parse cache to miss).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from sqlalchemy import ColumnElement, Table, any_, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session as DbSession

_PG = postgresql.dialect()


def is_pg(db: DbSession) -> bool:
    """True when the session's database is PostgreSQL."""
    return db.get_bind().dialect.name == "postgresql"


def any_of(db: DbSession, column: ColumnElement, values: Iterable) -> ColumnElement:
    """`column IN values`, as `= ANY(array)` on PostgreSQL (one statement text for any count)."""
    values = list(values)
    if is_pg(db):
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def pg_type(table: Table, column: str) -> str:
    """The PostgreSQL type name of a column, for array casts."""
    return table.c[column].type.compile(dialect=_PG)


def unnest(table: Table, columns: Sequence[str], prefix: str = "") -> str:
    """`unnest(CAST(:a AS type[]), …)`: one array parameter per column."""
    return "unnest(" + ", ".join(f"CAST(:{prefix}{c} AS {pg_type(table, c)}[])" for c in columns) + ")"


@lru_cache(maxsize=64)
def _pg_insert(table: Table, columns: tuple[str, ...], conflict: tuple[str, ...] | None,
               adding: tuple[str, ...], returning: str | None):  # noqa: ANN202 - a TextClause
    # Names come from the table's metadata (unnest checks each column exists); values are parameters.
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM {unnest(table, columns)}"  # noqa: S608
    if conflict is not None:
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO "
        sql += ("UPDATE SET " + ", ".join(f"{c} = {table.name}.{c} + EXCLUDED.{c}" for c in adding)
                if adding else "NOTHING")
    if returning:
        sql += f" RETURNING {returning}"
    return text(sql)


def insert_rows(db: DbSession, table: Table, rows: list[dict], conflict: Sequence[str] | None = None,
                adding: Sequence[str] = (), returning: str | None = None) -> Result | None:
    """Insert rows (dicts with the same keys); on a `conflict` either skip the row or add the
    `adding` columns to the stored ones; optionally return one column of the rows written."""
    if not rows:
        return None
    columns = tuple(rows[0])
    if is_pg(db):
        stmt = _pg_insert(table, columns, tuple(conflict) if conflict is not None else None, tuple(adding),
                          returning)
        return db.execute(stmt, {c: [row[c] for row in rows] for c in columns})
    stmt = sqlite.insert(table)
    if conflict is not None:
        stmt = (stmt.on_conflict_do_update(index_elements=list(conflict),
                                           set_={c: table.c[c] + stmt.excluded[c] for c in adding})
                if adding else stmt.on_conflict_do_nothing(index_elements=list(conflict)))
    if returning:
        return db.execute(stmt.returning(table.c[returning]), rows)
    return db.execute(stmt, rows)


@lru_cache(maxsize=16)
def _pg_update(table: Table, key: str, columns: tuple[str, ...]):  # noqa: ANN202 - a TextClause
    names = (key, *columns)
    sets = ", ".join(f"{c} = v.{c}" for c in columns)
    return text(f"UPDATE {table.name} SET {sets} FROM {unnest(table, names)} AS v({', '.join(names)}) "  # noqa: S608
                f"WHERE {table.name}.{key} = v.{key}")


def update_rows(db: DbSession, table: Table, key: str, rows: list[dict]) -> None:
    """Set the other columns of each row (dicts with the same keys) where `key` matches."""
    if not rows:
        return
    columns = tuple(c for c in rows[0] if c != key)
    if is_pg(db):
        db.execute(_pg_update(table, key, columns), {c: [row[c] for row in rows] for c in (key, *columns)})
        return
    stmt = (table.update().where(table.c[key] == bindparam(f"_{key}"))
            .values({c: bindparam(f"_{c}") for c in columns}))
    db.execute(stmt, [{f"_{c}": v for c, v in row.items()} for row in rows])
