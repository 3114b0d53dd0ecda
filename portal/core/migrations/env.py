"""Alembic environment: the engine comes from the caller (portal.schema.upgrade)."""

from alembic import context

from portal.core.model import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
