"""What the access policy reads about each stored version: its codes, security labels and
clinical dates (``version_token``, ``version_date``), beside who recorded it and whose record it
was in (columns of ``resource_version``).

The search index describes current versions only. History and vread serve earlier versions, and
judging those by the current version's facts would let a correction expose what it corrected: a
Condition first coded (and so labelled) as HIV and then recoded would show its first version to
everyone the second is shared with. So every version keeps the index rows the policy reads,
written with the version (copied from the rows just indexed for it) and never changed after;
``careregister reindex`` rebuilds them from each version's own content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import BigInteger, Connection, bindparam, cast, delete, insert, select, text

from register.schema import version_table
from register.search_index import Row, index_rows
from register.search_schema import (
    VERSION_FACT_TABLES,
    date_table,
    token_table,
    version_date_table,
    version_token_table,
)

V = version_table
COLUMNS = {"token": ("param", "system", "code"), "date": ("param", "low", "high")}
"""The columns kept of each kind of index row (what the policy's conditions compare)."""


def _copy(kind: str, source: Any, target: Any) -> Any:
    columns = COLUMNS[kind]
    return insert(target).from_select(
        ["version_pk", *columns],
        select(cast(bindparam("vpk"), BigInteger), *(source.c[name] for name in columns)).where(
            source.c.resource_pk == bindparam("rpk")
        ),
    )


_SOURCES = {"token": token_table.name, "date": date_table.name}
"""The search index table each kind of fact row is taken from."""

# Built once: constructing a statement costs more than executing it on the write path.
_COPY = (
    _copy("token", token_table, version_token_table),
    _copy("date", date_table, version_date_table),
)


_COPY_ONCE = text(
    f"WITH tokens AS (INSERT INTO {version_token_table.name} (version_pk, param, system, code)"
    f" SELECT CAST(:vpk AS BIGINT), param, system, code FROM {token_table.name}"
    " WHERE resource_pk = :rpk)"
    f" INSERT INTO {version_date_table.name} (version_pk, param, low, high)"
    f" SELECT CAST(:vpk AS BIGINT), param, low, high FROM {date_table.name}"
    " WHERE resource_pk = :rpk"
)
"""Both copies in one statement (one round trip), where the database allows a data-modifying
``WITH`` (PostgreSQL; SQLite runs the two in turn, in process)."""


def record(conn: Connection, version_pk: int, resource_pk: int) -> None:
    """Keep the facts of the version just written, whose index rows are the resource's now."""
    params = {"vpk": version_pk, "rpk": resource_pk}
    if conn.dialect.name == "postgresql":
        conn.execute(_COPY_ONCE, params)
        return
    for statement in _COPY:
        conn.execute(statement, params)


def fact_rows(resource: Mapping[str, Any]) -> dict[str, list[Row]]:
    """The fact rows of a version with this content, by kind (without ``version_pk``)."""
    rows = index_rows(resource)  # references are not among the facts: no local bases needed
    return {
        kind: [{name: row.get(name) for name in COLUMNS[kind]} for row in rows.get(source, [])]
        for kind, source in _SOURCES.items()
    }


def rebuild(conn: Connection, resource_pks: Sequence[int]) -> int:
    """Rewrite the facts of every version of these resources from the versions' own content
    (``careregister reindex``, when what is indexed changes); the number of rows written."""
    if not resource_pks:
        return 0
    versions = select(V.c.pk).where(V.c.resource_pk.in_(list(resource_pks)))
    for table in VERSION_FACT_TABLES.values():
        conn.execute(delete(table).where(table.c.version_pk.in_(versions)))
    stored = conn.execute(
        select(V.c.pk, V.c.content).where(
            V.c.resource_pk.in_(list(resource_pks)), V.c.content.is_not(None)
        )
    )
    return write(conn, ((pk, orjson.loads(content)) for pk, content in stored))


def write(conn: Connection, versions: Iterable[tuple[int, Mapping[str, Any]]]) -> int:
    """Insert the fact rows of ``versions`` (version pk, content); the number of rows."""
    by_kind: dict[str, list[Row]] = {kind: [] for kind in VERSION_FACT_TABLES}
    for version_pk, resource in versions:
        for kind, rows in fact_rows(resource).items():
            by_kind[kind].extend({"version_pk": version_pk, **row} for row in rows)
    for kind, rows in by_kind.items():
        if rows:
            conn.execute(insert(VERSION_FACT_TABLES[kind]), rows)
    return sum(len(rows) for rows in by_kind.values())


def erase_all(conn: Connection) -> None:
    """Remove every version's facts (with the versions: tests and demo resets)."""
    for table in VERSION_FACT_TABLES.values():
        conn.execute(delete(table))
