"""`conecta staff add|list|show|remove`: logins for the console (argon2-hashed, no default account)."""

from __future__ import annotations

import secrets
import sys

import click
from sqlalchemy import select

from portal.cli import output
from portal.core import staffauth
from portal.core.db import commit_or_explain
from portal.core.model import STAFF_ROLES, Staff


@click.group()
def staff() -> None:
    """Staff logins for the console (argon2-hashed passwords, no default account)."""


@staff.command("add")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(STAFF_ROLES))
@click.option("--password", help="asked for (or generated and printed) when not given")
@click.pass_obj
def add(c, email: str, role: str, password: str | None) -> None:  # noqa: ANN001
    """Add a staff login."""
    generated = False
    if password is None:
        if sys.stdin.isatty():
            password = click.prompt("password", hide_input=True, confirmation_prompt=True)
        else:
            password, generated = secrets.token_urlsafe(15), True
    with c.db() as db:
        staffauth.add_staff(db, email, role, password)
        commit_or_explain(db)
    click.echo(f"staff {email.strip().lower()!r} added ({role})")
    if generated:
        click.echo(f"password: {password}")


@staff.command("list")
@click.pass_obj
def list_(c) -> None:  # noqa: ANN001
    """List staff logins."""
    with c.db() as db:
        rows = db.execute(select(Staff.email, Staff.role, Staff.disabled, Staff.created_at)
                          .order_by(Staff.email)).all()
    output.table(rows, ("email", "role", "disabled", "created_at"))


@staff.command("show")
@click.argument("email")
@click.pass_obj
def show(c, email: str) -> None:  # noqa: ANN001
    """Show one staff login."""
    with c.db() as db:
        output.show(output.get(db, Staff, Staff.email, email.strip().lower(), "staff"), hidden=("password_hash",))


output.remove_command(staff, "staff", staffauth.remove_staff)


def register(main: click.Group) -> None:
    """Add `conecta staff`."""
    main.add_command(staff)
