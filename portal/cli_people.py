"""`conecta user ...` and `conecta staff ...`: accounts for citizens and logins for staff."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import click
from sqlalchemy import func, select

from portal import fleet
from portal.cli_fleet import _get, _remove_command, _show, _table
from portal.model import AGE_BANDS, GENDERS, STAFF_ROLES, Staff, User


def user_group(main: click.Group) -> None:
    """Register `conecta user`."""
    @main.group()
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
            fleet.add_user(db, c.policies, {"username": username, "password": password, "policy": policy,
                                            "gender": gender, "age_band": age_band, "community": community})
            fleet.commit_or_explain(db)
        click.echo(f"user {username!r} added (policy {policy})")

    @user.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.pass_obj
    def import_(c, file: Path) -> None:  # noqa: ANN001
        """Add many accounts from a CSV (username,password[,policy,gender,age_band,community]); all or nothing."""
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise fleet.FleetError(f"{file.name}: not UTF-8 text (byte {exc.start})") from None
        rows = fleet.read_user_csv(text, c.policies)
        with c.db() as db, click.progressbar(length=len(rows), label="importing", file=sys.stderr) as bar:
            try:
                fleet.import_users(db, rows, bar.update)
                fleet.commit_or_explain(db)
            except fleet.FleetError:
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
        _table(rows, ("username", "policy", "gender", "age_band", "community", "source", "disabled"))
        click.echo(f"({len(rows)} of {total})", err=True)

    @user.command("show")
    @click.argument("username")
    @click.pass_obj
    def show(c, username: str) -> None:  # noqa: ANN001
        """Show one account (password hidden)."""
        with c.db() as db:
            _show(_get(db, User, User.username, username, "user"), hidden=("password",))

    _remove_command(user, "user")


def staff_group(main: click.Group) -> None:
    """Register `conecta staff`."""
    @main.group()
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
            fleet.add_staff(db, email, role, password)
            fleet.commit_or_explain(db)
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
        _table(rows, ("email", "role", "disabled", "created_at"))

    @staff.command("show")
    @click.argument("email")
    @click.pass_obj
    def show(c, email: str) -> None:  # noqa: ANN001
        """Show one staff login."""
        with c.db() as db:
            _show(_get(db, Staff, Staff.email, email.strip().lower(), "staff"), hidden=("password_hash",))

    _remove_command(staff, "staff")
