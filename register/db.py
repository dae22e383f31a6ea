"""Database engines and transactions for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode so readers never wait for the writer; a write transaction starts with
``BEGIN IMMEDIATE`` so two writers queue for the lock instead of failing half-way. PostgreSQL runs
at READ COMMITTED with row locks taken explicitly where a version number is read and bumped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-65536",
    "PRAGMA mmap_size=268435456",
)


def create_db_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for ``url`` with the register's connection settings applied."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, pool_size=pool_size)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_recycle=1800,
        )
    raise ValueError(f"unsupported database backend: {parsed.get_backend_name()}")


def _sqlite_engine(url: str, *, pool_size: int) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=pool_size,
        max_overflow=pool_size,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit transactions are deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get("register_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction: committed on success, rolled back on any error."""
    with engine.connect() as conn:
        conn = conn.execution_options(register_write=True)
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a read-only transaction, so a multi-query read sees one snapshot."""
    with engine.connect() as conn, conn.begin():
        yield conn


def is_postgres(engine: Engine | Connection) -> bool:
    """Whether ``engine`` talks to PostgreSQL."""
    return engine.dialect.name == "postgresql"
