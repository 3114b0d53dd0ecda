"""Create or upgrade the database schema with the Alembic migrations in portal/core/migrations.

Alembic (with mako and pygments, about 8 MB) is imported when a migration runs, not when the module
is: `conecta radius` imports the whole CLI, and its long-lived processes never migrate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(connection: Connection) -> Config:
    from alembic.config import Config
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    from alembic import command
    with engine.begin() as connection:
        command.upgrade(_config(connection), "head")


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new migration from the models (for developers)."""
    from alembic import command
    with engine.begin() as connection:
        command.revision(_config(connection), message=message, autogenerate=True)
