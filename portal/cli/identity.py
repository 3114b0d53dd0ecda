"""`conecta settings set|show`: the city's identity (names, SSID, contact, privacy notice, logo)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from portal.core import identity
from portal.core.db import commit_or_explain
from portal.core.identity import IdentityError


def register(main: click.Group) -> None:
    """Add the `settings` group to the `conecta` command."""
    main.add_command(settings)


@click.group()
def settings() -> None:
    """The city's identity, shown to citizens: names, SSID, contact, privacy notice and logo."""


@settings.command("show")
@click.pass_obj
def show(c) -> None:  # noqa: ANN001 - the Context
    """Print every key with its value, the notice version in force and the logo."""
    with c.db() as db:
        ident = identity.load(db)
    for spec in identity.FIELDS:
        click.echo(f"{spec.key}: {getattr(ident, spec.key)}")
    click.echo(f"notice_version: {ident.notice_version}")
    click.echo(f"logo: {'sí (sha256 ' + ident.logo[:12] + ')' if ident.logo else 'no'}")
    missing = ident.missing_in_notice()
    if missing:
        click.echo(f"aviso de privacidad incompleto (LFPDPPP), falta: {', '.join(missing)}")


@settings.command("set")
@click.argument("key")
@click.argument("value")
@click.pass_obj
def set_(c, key: str, value: str) -> None:  # noqa: ANN001 - the Context
    """Set KEY to VALUE (`settings show` lists the keys); `logo FILE` sets the logo, `logo ''` removes it."""
    now = datetime.now(timezone.utc).astimezone(c.settings.tz)
    with c.db() as db:
        if key == "logo":
            _logo(db, value, now)
        else:
            changed = identity.update(db, {key: value}, now)
            commit_or_explain(db)
            if not changed:
                click.echo(f"{key}: sin cambios")
                return
            click.echo(f"{key}: guardado")
            if identity.BY_KEY[key].in_notice:
                click.echo(f"nueva versión del aviso de privacidad: {identity.load(db).notice_version} "
                           "(quienes regresen la aceptarán de nuevo)")


def _logo(db, path: str, now: datetime) -> None:  # noqa: ANN001 - an ORM session
    """Set the logo from a file, or remove it for an empty path."""
    if not path:
        removed = identity.remove_logo(db)
        commit_or_explain(db)
        click.echo("logo: quitado" if removed else "logo: no había")
        return
    file = Path(path)
    try:
        if file.stat().st_size > identity.LOGO_MAX_BYTES:
            raise IdentityError("El logotipo pesa más de %(kb)d KB.", kb=identity.LOGO_MAX_BYTES // 1024)
        data = file.read_bytes()
    except OSError as exc:
        raise IdentityError("No se pudo leer %(path)s: %(why)s.", path=path[:200], why=exc.strerror or "error") \
            from None
    row = identity.set_logo(db, data, now)
    commit_or_explain(db)
    click.echo(f"logo: guardado ({row.width} × {row.height} px, PNG)")
