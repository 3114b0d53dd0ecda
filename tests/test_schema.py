"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from portal.core.model import Base
from portal.core.schema import upgrade


def test_migrations_match_models_and_are_idempotent(engine):
    upgrade(engine)                                   # already at head: a no-op, not an error
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
