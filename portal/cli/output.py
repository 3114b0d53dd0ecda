"""Output and look-up helpers shared by the `conecta` sub-command groups."""

from __future__ import annotations

from collections.abc import Callable

import click
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from policies.messages import N_
from portal.core.db import commit_or_explain
from portal.core.errors import InputError

UNKNOWN = {"user": N_("no existe el usuario %(name)r"), "site": N_("no existe el sitio %(name)r"),
           "staff": N_("no existe la cuenta de personal %(name)r"), "NAS": N_("no existe el NAS %(name)r")}


def table(rows: list[tuple], header: tuple[str, ...]) -> None:
    """Print rows as aligned columns under a header."""
    rows = [tuple("" if v is None else str(v) for v in r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def show(obj: object, hidden: tuple[str, ...] = (), words: dict[str, str] | None = None) -> None:
    """Print every column of a row as `name: value`, `hidden` ones masked, with what `words` says of
    a column after its value."""
    for column in obj.__table__.columns:
        value = "(hidden)" if column.name in hidden else getattr(obj, column.name)
        said = (words or {}).get(column.name)
        click.echo(f"{column.name}: {'' if value is None else value}{f' ({said})' if said else ''}")


def get(db: DbSession, model: type, column: object, name: str, kind: str) -> object:
    """The row whose `column` equals `name`, or an InputError naming the `kind` (a key of UNKNOWN)."""
    obj = db.scalar(select(model).where(column == name))
    if obj is None:
        raise InputError(UNKNOWN[kind], name=name[:80])
    return obj


def remove_command(group: click.Group, kind: str, remover: Callable[[DbSession, str], None]) -> None:
    """Add `<group> remove NAME`, which calls `remover` and commits."""
    @group.command("remove")
    @click.argument("name")
    @click.pass_obj
    def remove(c, name: str) -> None:  # noqa: ANN001 - the Context
        """Remove by name."""
        with c.db() as db:
            remover(db, name)
            commit_or_explain(db)
        click.echo(f"{kind} {name!r} removed")
