"""Alembic environment: runs the register's migrations on the connection it is given."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from register.db import create_db_engine
from register.schema import SQLModel

target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Upgrade using a connection passed in by ``register.migrate`` or a URL in the config."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_db_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
