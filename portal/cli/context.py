"""What every `conecta` command shares: settings, engine and policies loaded on first use, and one
human line instead of a traceback for expected errors."""

from __future__ import annotations

from functools import cached_property

import click
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session as DbSession

from policies import Policy, PolicyError, load_policies
from portal.core.db import engine_for, session_factory
from portal.core.errors import InputError
from portal.core.settings import Settings, SettingsError, load_settings


class Context:
    """Settings, engine and policies, loaded on first use so `--help` needs none of them."""

    @cached_property
    def settings(self) -> Settings:
        """Validated settings from the environment."""
        return load_settings()

    @cached_property
    def engine(self) -> Engine:
        """The SQLAlchemy engine."""
        return engine_for(self.settings)

    @cached_property
    def policies(self) -> dict[str, Policy]:
        """Policies loaded and validated from the policy dir."""
        return load_policies(self.settings.policy_dir)

    def db(self) -> DbSession:
        """A new ORM session."""
        return session_factory(self.engine)()


pass_ctx = click.make_pass_decorator(Context, ensure=True)


class ConectaGroup(click.Group):
    """Turns expected errors into one human line and exit status 1."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201 - whatever the command returns
        """Run the command; report bad input without a traceback."""
        try:
            return super().invoke(ctx)
        except (InputError, PolicyError, SettingsError) as exc:
            raise click.ClickException(str(exc)) from None
        except (OperationalError, ProgrammingError) as exc:
            first = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
            raise click.ClickException(f"database: {first} (did you run `conecta init`?)") from None
