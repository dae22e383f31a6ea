"""A query run on the driver (register/driver_query.py) answers exactly as SQLAlchemy would.

Reads by id skip SQLAlchemy's execution path for speed; these tests hold them to the same rows,
types and conversions as ``Connection.execute(...).first()``, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, bindparam, insert, select

from register import storage
from register.db import write_transaction
from register.driver_query import DriverQueries, DriverQuery
from register.schema import resource_table as R

COLUMNS = (R.c.pk, R.c.version_id, R.c.last_updated, R.c.deleted, R.c.content, R.c.patient_id)
BY_ID = select(*COLUMNS).where(R.c.resource_type == bindparam("rtype"), R.c.resource_id == "a")


def _rows(conn) -> None:  # type: ignore[no-untyped-def]
    moment = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
    for rid, deleted, content, patient in (
        ("a", False, b'{"resourceType":"Patient","id":"a","name":[{"text":"\xc3\x89le"}]}', "a"),
        ("b", True, None, None),
    ):
        conn.execute(
            insert(R).values(
                resource_type="Patient",
                resource_id=rid,
                version_id=3,
                last_updated=moment,
                deleted=deleted,
                content=content,
                patient_id=patient,
                author_org="ORG",
            )
        )


@pytest.mark.parametrize(
    "statement",
    [
        BY_ID,
        select(*COLUMNS).where(
            R.c.resource_type == bindparam("rtype"),
            R.c.resource_id == "b",
            R.c.author_org == "ORG",
        ),
        select(*COLUMNS).where(R.c.resource_type == bindparam("rtype"), R.c.resource_id == "z"),
    ],
    ids=["found", "deleted, with constants", "absent"],
)
def test_driver_rows_equal_sqlalchemy_rows(engine: Engine, statement) -> None:  # type: ignore[no-untyped-def]
    with write_transaction(engine) as conn:
        _rows(conn)
        query = DriverQuery(statement, conn.dialect)
        expected = conn.execute(statement, {"rtype": "Patient"}).first()
        got = query.first(conn, {"rtype": "Patient"})
        assert got == (None if expected is None else tuple(expected))
        if got is not None:
            assert got[3] is (statement is not BY_ID)  # the deleted row comes back deleted
            assert [type(v) for v in got] == [type(v) for v in expected]  # type: ignore[union-attr]
        conn.rollback()


def test_constants_are_bound_and_missing_parameters_refused(engine: Engine) -> None:
    statement = select(*COLUMNS).where(
        R.c.resource_type == bindparam("rtype"), R.c.author_org == "ORG", R.c.version_id > 2
    )
    with write_transaction(engine) as conn:
        _rows(conn)
        query = DriverQuery(statement, conn.dialect)
        assert "ORG" not in query.sql  # bound, not spliced into the text
        assert query.first(conn, {"rtype": "Patient"}) is not None
        assert query.first(conn, {"rtype": "Observation"}) is None
        with pytest.raises(Exception) as missing:  # KeyError here, or the driver's own error
            query.first(conn, {})
        assert "rtype" in str(missing.value)
        conn.rollback()


def test_compiled_once_per_statement_and_dialect(engine: Engine) -> None:
    cache = DriverQueries()
    assert cache.of(BY_ID, engine.dialect) is cache.of(BY_ID, engine.dialect)
    other = select(*COLUMNS).where(R.c.resource_type == bindparam("rtype"))
    assert cache.of(other, engine.dialect) is not cache.of(BY_ID, engine.dialect)
    listed = select(*COLUMNS).where(R.c.resource_id.in_(["a", "b"]))
    assert cache.of(listed, engine.dialect) is None  # left to Connection.execute


def test_reads_with_an_in_list_condition_answer_as_others(engine: Engine) -> None:
    """A visibility condition with an IN list (a patient's own compartment, say) cannot run on
    the driver; the read by id falls back and answers the same."""

    class Listed:
        def resource_clause(self, resource):  # type: ignore[no-untyped-def]
            return resource.c.resource_id.in_(["a", "z"])

    with write_transaction(engine) as conn:
        _rows(conn)
        found = storage.read(conn, Listed(), "Patient", "a")
        assert found is not None and found.version_id == 3 and not found.deleted
        assert storage.read(conn, Listed(), "Patient", "b") is None  # exists, not in the list
        conn.rollback()
