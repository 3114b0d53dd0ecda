"""`conecta user add|import|list|show|remove`: accounts created by staff or imported."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy import func, select

from policies.messages import N_
from portal.cli import output
from portal.core import accounts
from portal.core.db import commit_or_explain
from portal.core.errors import InputError
from portal.core.model import AGE_BANDS, GENDERS, User


@click.group()
def user() -> None:
    """Accounts created by staff or imported (digital centers, ejido households, vouchers)."""


@user.command("add")
@click.argument("username")
@click.option("--password", required=True)
@click.option("--policy", required=True)
@click.option("--gender", type=click.Choice(GENDERS), default="undisclosed", show_default=True)
@click.option("--age-band", type=click.Choice(AGE_BANDS), default="undisclosed", show_default=True)
@click.option("--community")
@click.pass_obj
def add(c, username, password, policy, gender, age_band, community) -> None:  # noqa: ANN001
    """Add one account."""
    with c.db() as db:
        accounts.add_user(db, c.policies, {"username": username, "password": password, "policy": policy,
                                        "gender": gender, "age_band": age_band, "community": community})
        commit_or_explain(db)
    click.echo(f"user {username!r} added (policy {policy})")


@user.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def import_(c, file: Path) -> None:  # noqa: ANN001
    """Add many accounts from a CSV (username,password[,policy,gender,age_band,community]); all or nothing."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(N_("%(file)s: no es texto UTF-8 (byte %(byte)s)"), file=file.name[:80],
                         byte=exc.start) from None
    rows = accounts.read_user_csv(text, c.policies)
    with c.db() as db, click.progressbar(length=len(rows), label="importing", file=sys.stderr) as bar:
        try:
            accounts.import_users(db, rows, bar.update)
            commit_or_explain(db)
        except InputError:
            db.rollback()
            raise
    click.echo(f"{len(rows)} users imported from {file.name}")


@user.command("list")
@click.option("--search", help="part of a username")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100000))
@click.pass_obj
def list_(c, search: str | None, limit: int) -> None:  # noqa: ANN001
    """List accounts (no passwords)."""
    with c.db() as db:
        query = select(User.username, User.policy, User.gender, User.age_band, User.community,
                       User.source, User.disabled).order_by(User.username).limit(limit)
        if search:
            query = query.where(User.username.contains(search, autoescape=True))
        rows = db.execute(query).all()
        total = db.scalar(select(func.count()).select_from(User))
    output.table(rows, ("username", "policy", "gender", "age_band", "community", "source", "disabled"))
    click.echo(f"({len(rows)} of {total})", err=True)


@user.command("show")
@click.argument("username")
@click.pass_obj
def show(c, username: str) -> None:  # noqa: ANN001
    """Show one account (password hidden)."""
    with c.db() as db:
        output.show(output.get(db, User, User.username, username, "user"), hidden=("password",))


output.remove_command(user, "user", accounts.remove_user)


def register(main: click.Group) -> None:
    """Add `conecta user`."""
    main.add_command(user)
