"""Schema migrations: upgrade a database in place, and tell whether it is current.

``careregister migrate`` calls :func:`upgrade`; ``serve`` and ``/ready`` call
:func:`schema_status` and refuse to run on an out-of-date schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at the register's migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def head_revision() -> str:
    """The newest migration this code knows."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads; expected one: {heads}")
    return heads[0]


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database up to ``revision`` (the newest by default), in place."""
    with engine.begin() as conn:
        config = alembic_config(engine)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands against this code's migrations."""

    current: str | None
    head: str

    @property
    def is_current(self) -> bool:
        """Whether the database is at the newest migration."""
        return self.current == self.head

    def describe(self) -> str:
        """A sentence for operators."""
        if self.is_current:
            return f"schema is current ({self.head})"
        if self.current is None:
            return "database has no schema yet; run `careregister migrate`"
        return (
            f"schema is at {self.current} but this version needs {self.head}; "
            "run `careregister migrate`"
        )


def schema_status(engine: Engine) -> SchemaStatus:
    """The database's migration revision beside the code's newest."""
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return SchemaStatus(current=current, head=head_revision())
