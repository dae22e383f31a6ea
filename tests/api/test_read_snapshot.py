"""A multi-query read (a search page and its includes, ``audit verify``) sees one state of the
database while others commit, and leaves its connection to the pool as it found it, so later
writes run at the database's default isolation. Both databases."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from register.audit.events import token_event
from register.audit.recorder import append_events
from register.db import read_transaction, write_transaction
from register.schema import audit_table


def _count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(audit_table)).scalar_one())


def _append_one(engine) -> None:  # type: ignore[no-untyped-def]
    event = token_event(
        principal=None,
        client_id="c1",
        grant_type="client_credentials",
        error="invalid_client",
        request_id=None,
        address=None,
    )
    with write_transaction(engine) as conn:
        append_events(conn, [event])


def _level(conn: Connection) -> str:
    if conn.dialect.name == "sqlite":
        return f"read_uncommitted={conn.exec_driver_sql('PRAGMA read_uncommitted').scalar()}"
    return str(conn.exec_driver_sql("SHOW transaction_isolation").scalar())


def test_a_read_transaction_sees_one_state_while_others_commit(engine):  # type: ignore[no-untyped-def]
    _append_one(engine)
    with read_transaction(engine) as conn:
        before = _count(conn)
        _append_one(engine)
        _append_one(engine)
        assert _count(conn) == before  # the two commits are not seen inside the snapshot
    with read_transaction(engine) as conn:
        assert _count(conn) == before + 2


def test_connections_go_back_to_the_pool_at_the_default_level(engine):  # type: ignore[no-untyped-def]
    with engine.connect() as conn, conn.begin():
        default = _level(conn)
    for _ in range(5):  # every pooled connection has served a snapshot read
        with read_transaction(engine) as conn:
            _count(conn)
    for _ in range(5):
        with write_transaction(engine) as conn:
            assert _level(conn) == default
        with engine.connect() as conn, conn.begin():
            assert _level(conn) == default
    if engine.dialect.name == "postgresql":
        assert default == "read committed"
        with read_transaction(engine) as conn:
            assert _level(conn) == "repeatable read"
