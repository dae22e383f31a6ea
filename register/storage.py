"""The one data-access layer for resources: versioned writes and policy-filtered reads.

Every read function takes a :class:`Visibility` — what the requester may see, as decided by the
policy decision point — and applies it as a SQL filter, so a hidden resource is absent exactly as
a missing one is (no 403 that reveals existence, no count that includes it). Writes keep
``resource`` (current version) and ``resource_version`` (every version) in step with the search
indexes, all inside the caller's transaction.

FHIR references: https://hl7.org/fhir/R4/http.html (read, vread, update, delete, history).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    Connection,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ColumnElement

from register import search_index, version_facts
from register.audit import trail
from register.driver_query import DriverQueries
from register.errors import conflict
from register.schema import resource_table, version_table

R = resource_table
V = version_table


class Visibility(Protocol):
    """What a requester may see, as a SQL condition over ``resource`` rows (None: everything)."""

    def resource_clause(self, resource: Table) -> ColumnElement[bool] | None:
        """A condition a ``resource`` row must meet to be visible, or None for no limit."""
        ...

    def version_clause(self, versions: Table) -> ColumnElement[bool] | None:
        """The same condition for a ``resource_version`` row, judged by that version's own
        facts, or None for no limit."""
        ...


class _Everything:
    """Visibility for the register's own work (migrations, loading, indexing): no limit."""

    def resource_clause(self, resource: Table) -> ColumnElement[bool] | None:
        return None

    def version_clause(self, versions: Table) -> ColumnElement[bool] | None:
        return None

    def __repr__(self) -> str:
        return "EVERYTHING"


EVERYTHING: Visibility = _Everything()


@dataclass(frozen=True, slots=True)
class Version:
    """One stored version of a resource, with its body as the stored JSON bytes."""

    resource_type: str
    resource_id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    content: bytes | None
    method: str = "PUT"
    resource_pk: int = 0

    @property
    def etag(self) -> str:
        """The weak ETag of this version, as FHIR uses it."""
        return f'W/"{self.version_id}"'


@dataclass(frozen=True, slots=True)
class Facts:
    """What the access policy needs to know about a resource, kept beside its body."""

    patient_id: str | None = None
    author_org: str | None = None


@dataclass(frozen=True, slots=True)
class Current:
    """The current row of a resource, as read for a write (locked on PostgreSQL)."""

    pk: int
    version_id: int
    deleted: bool
    content: bytes | None
    author_org: str | None


def _visible(query, visibility: Visibility):  # type: ignore[no-untyped-def]
    clause = visibility.resource_clause(R)
    return query if clause is None else query.where(clause)


def _visible_versions(query, visibility: Visibility):  # type: ignore[no-untyped-def]
    """``query`` over versions joined to their resource, limited to what ``visibility`` shows:
    the resource must be visible now, and the version must be visible as what it was: a row of
    the record it was in, recorded by the organisation that wrote it, with its own codes,
    labels and dates (``register/version_facts.py``). So a resource moved to another patient's
    record (misfiled data corrected) does not bring its earlier versions into the record it is
    in now, and a correction that removed a sensitive code or label does not expose the version
    that had it."""
    clause = visibility.resource_clause(R)
    if clause is None:
        return query
    version = visibility.version_clause(V)
    assert version is not None  # the same visibility limits every table alike
    return query.where(clause, version)


# --- reads -------------------------------------------------------------------------------------


_READ = select(
    R.c.pk, R.c.version_id, R.c.last_updated, R.c.deleted, R.c.content, R.c.patient_id
).where(R.c.resource_type == bindparam("rtype"), R.c.resource_id == bindparam("rid"))


# Point-read statements by visibility condition: the policy's conditions are built once per
# token (register/visibility.py), and reusing the statement lets its driver form (compiled once,
# register/driver_query.py) be reused too.
_READS_WHERE: dict[int, tuple[ColumnElement[bool], Select[Any]]] = {}
_DRIVER = DriverQueries()


def _read_where(clause: ColumnElement[bool]) -> Select[Any]:
    found = _READS_WHERE.get(id(clause))
    if found is not None and found[0] is clause:
        return found[1]
    query = _READ.where(clause)
    if len(_READS_WHERE) >= 4096:
        _READS_WHERE.clear()
    _READS_WHERE[id(clause)] = (clause, query)
    return query


def read(
    conn: Connection, visibility: Visibility, resource_type: str, resource_id: str
) -> Version | None:
    """The current version of a resource (possibly a deletion), if it exists and is visible."""
    clause = visibility.resource_clause(R)
    query = _READ if clause is None else _read_where(clause)
    params = {"rtype": resource_type, "rid": resource_id}
    driver = _DRIVER.of(query, conn.dialect)
    if driver is not None:
        found = driver.first(conn, params)
    else:  # a condition the driver path cannot run (an IN list expanded per execution)
        row = conn.execute(query, params).first()
        found = None if row is None else tuple(row)
    if found is None:
        return None
    pk, version_id, last_updated, deleted, content, patient_id = found
    if visibility is not EVERYTHING:  # a requester's read: its audit event names the patient
        trail.note_read(resource_type, resource_id, patient_id)
    return Version(
        resource_type,
        resource_id,
        version_id,
        last_updated,
        deleted,
        content,
        "DELETE" if deleted else "PUT",
        pk,
    )


def vread(
    conn: Connection,
    visibility: Visibility,
    resource_type: str,
    resource_id: str,
    version_id: int,
) -> Version | None:
    """One version of a resource, if it exists and the resource is visible."""
    query = (
        select(
            V.c.version_id,
            V.c.last_updated,
            V.c.deleted,
            V.c.content,
            V.c.method,
            R.c.pk,
            V.c.patient_id,
        )
        .select_from(V.join(R, V.c.resource_pk == R.c.pk))
        .where(
            V.c.resource_type == resource_type,
            V.c.resource_id == resource_id,
            V.c.version_id == version_id,
        )
    )
    row = conn.execute(_visible_versions(query, visibility)).first()
    if row is None:
        return None
    if visibility is not EVERYTHING:
        trail.note_read(resource_type, resource_id, row.patient_id)
    return Version(
        resource_type,
        resource_id,
        row.version_id,
        row.last_updated,
        row.deleted,
        row.content,
        row.method,
        row.pk,
    )


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Versions newest first, and the position to continue from (None: no more)."""

    versions: list[Version]
    next_before: int | None


def history(
    conn: Connection,
    visibility: Visibility,
    *,
    resource_type: str | None = None,
    resource_id: str | None = None,
    since: datetime | None = None,
    at_or_before: datetime | None = None,
    count: int = 20,
    before: int | None = None,
) -> HistoryPage:
    """Versions of one resource, one type, or everything, newest first, a page at a time.

    ``before`` is the position returned by the previous page, so paging stays correct while
    others write (new versions land before the first page, not inside later ones).
    """
    query = (
        select(
            V.c.pk.label("vpk"),
            V.c.resource_type,
            V.c.resource_id,
            V.c.version_id,
            V.c.last_updated,
            V.c.deleted,
            V.c.content,
            V.c.method,
            R.c.pk,
            V.c.patient_id,
        )
        .select_from(V.join(R, V.c.resource_pk == R.c.pk))
        .order_by(V.c.pk.desc())
        .limit(count + 1)
    )
    if resource_type is not None:
        query = query.where(V.c.resource_type == resource_type)
    if resource_id is not None:
        query = query.where(V.c.resource_id == resource_id)
    if since is not None:
        query = query.where(V.c.last_updated >= since)
    if at_or_before is not None:
        query = query.where(V.c.last_updated <= at_or_before)
    if before is not None:
        query = query.where(V.c.pk < before)
    rows = conn.execute(_visible_versions(query, visibility)).all()
    versions = [
        Version(
            row.resource_type,
            row.resource_id,
            row.version_id,
            row.last_updated,
            row.deleted,
            row.content,
            row.method,
            row.pk,
        )
        for row in rows[:count]
    ]
    if visibility is not EVERYTHING:
        for row in rows[:count]:
            trail.note_served(row.resource_type, row.patient_id)
    next_before = rows[count - 1].vpk if len(rows) > count else None
    return HistoryPage(versions, next_before)


def read_many(conn: Connection, visibility: Visibility, pks: Sequence[int]) -> dict[int, Version]:
    """Current versions by resource pk (for search pages and includes), visible ones only."""
    if not pks:
        return {}
    query = select(
        R.c.pk,
        R.c.resource_type,
        R.c.resource_id,
        R.c.version_id,
        R.c.last_updated,
        R.c.deleted,
        R.c.content,
        R.c.patient_id,
    ).where(R.c.pk.in_(list(pks)), R.c.deleted.is_(False))
    rows = conn.execute(_visible(query, visibility)).all()
    if visibility is not EVERYTHING:  # a requester's search: its audit event names the patients
        for row in rows:
            trail.note_served(row.resource_type, row.patient_id)
    return {
        row.pk: Version(
            row.resource_type,
            row.resource_id,
            row.version_id,
            row.last_updated,
            row.deleted,
            row.content,
            "PUT",
            row.pk,
        )
        for row in rows
    }


@dataclass(frozen=True, slots=True)
class Held:
    """A current, visible version with the organisation that recorded it (``author_org``)."""

    version: Version
    author_org: str | None


def read_compartment(
    conn: Connection,
    visibility: Visibility,
    patient_id: str,
    types: Sequence[str] | None = None,
) -> list[Held]:
    """Every visible current resource in Patient ``patient_id``'s compartment, in one query.

    For documents built from a whole record (``$summary``, ``$populate``): the same rows
    ``$everything`` pages through (``search_compartment``), with the same visibility applied in
    SQL, the stored bytes and the recording organisation of each. ``types`` narrows the
    resource types (None: all).
    """
    from register.search_schema import compartment_table as M

    members = select(M.c.resource_pk).where(M.c.patient_id == patient_id)
    if types is not None:
        members = members.where(M.c.resource_type.in_(list(types)))
    query = (
        select(
            R.c.pk,
            R.c.resource_type,
            R.c.resource_id,
            R.c.version_id,
            R.c.last_updated,
            R.c.content,
            R.c.author_org,
        )
        .where(R.c.pk.in_(members), R.c.deleted.is_(False))
        .order_by(R.c.pk)
    )
    return [
        Held(
            Version(
                row.resource_type,
                row.resource_id,
                row.version_id,
                row.last_updated,
                False,
                row.content,
                "PUT",
                row.pk,
            ),
            row.author_org,
        )
        for row in conn.execute(_visible(query, visibility))
    ]


def compartment_has(
    conn: Connection,
    visibility: Visibility,
    patient_id: str,
    types: Sequence[str] | None = None,
) -> bool:
    """Whether any current resource of Patient ``patient_id``'s compartment (of ``types``) is
    visible under ``visibility`` (one ``LIMIT 1`` query; used with the visibility of what
    withholdings removed, to say that something was withheld without saying what)."""
    from register.search_schema import compartment_table as M

    members = select(M.c.resource_pk).where(M.c.patient_id == patient_id)
    if types is not None:
        members = members.where(M.c.resource_type.in_(list(types)))
    query = select(R.c.pk).where(R.c.pk.in_(members), R.c.deleted.is_(False)).limit(1)
    return conn.execute(_visible(query, visibility)).first() is not None


# --- writes ------------------------------------------------------------------------------------


def current_for_write(conn: Connection, resource_type: str, resource_id: str) -> Current | None:
    """The current row of a resource, locked against concurrent writers until commit."""
    query = (
        select(R.c.pk, R.c.version_id, R.c.deleted, R.c.content, R.c.author_org)
        .where(R.c.resource_type == resource_type, R.c.resource_id == resource_id)
        .with_for_update()
    )
    row = conn.execute(query).first()
    if row is None:
        return None
    return Current(row.pk, row.version_id, row.deleted, row.content, row.author_org)


# Built once: constructing a statement costs more than executing it on the write path.
_INSERT_CURRENT = insert(R).returning(R.c.pk, R.c.content)
_UPDATE_CURRENT = (
    update(R)
    .where(R.c.pk == bindparam("target_pk"))
    .values(
        version_id=bindparam("version_id"),
        last_updated=bindparam("last_updated"),
        deleted=bindparam("deleted"),
        content=bindparam("content"),
        patient_id=bindparam("patient_id"),
        author_org=bindparam("author_org"),
    )
    .returning(R.c.content)
)
_INSERT_VERSION = insert(V).returning(V.c.pk)


def write_version(
    conn: Connection,
    *,
    resource_type: str,
    resource_id: str,
    current: Current | None,
    content: bytes | None,
    resource: dict | None,
    last_updated: datetime,
    method: str,
    facts: Facts,
    local_bases: tuple[str, ...] = (),
) -> Version:
    """Store a new version (``content`` None means a deletion) and bring the indexes in step.

    ``current`` must come from :func:`current_for_write` in the same transaction;
    ``local_bases`` are the server's base URLs (absolute references under them are local).
    """
    deleted = content is None
    version_id = 1 if current is None else current.version_id + 1
    values = {
        "version_id": version_id,
        "last_updated": last_updated,
        "deleted": deleted,
        "content": content,
        "patient_id": facts.patient_id,
        "author_org": facts.author_org,
    }
    if current is None:
        try:
            # No savepoint: a clash aborts the caller's transaction, which is what a 409 means
            # (batch entries and loads each run in their own savepoint already).
            pk, stored = conn.execute(
                _INSERT_CURRENT,
                {"resource_type": resource_type, "resource_id": resource_id, **values},
            ).one()
        except IntegrityError:
            raise conflict(
                f"{resource_type}/{resource_id} was created by another request at the same "
                "time; retry."
            ) from None
    else:
        pk = current.pk
        stored = conn.execute(_UPDATE_CURRENT, {"target_pk": pk, **values}).scalar_one()
        search_index.unindex_resource(conn, pk)
    version_pk = conn.execute(
        _INSERT_VERSION,
        {
            "resource_pk": pk,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "version_id": version_id,
            "last_updated": last_updated,
            "method": method,
            "deleted": deleted,
            "content": content,
            "patient_id": facts.patient_id,
            "author_org": facts.author_org,
        },
    ).scalar_one()
    if resource is not None:
        search_index.index_resource(conn, pk, resource_type, resource, local_bases=local_bases)
        version_facts.record(conn, version_pk, pk)
    trail.note_written(resource_type, resource_id, version_id, facts.patient_id)
    # ``stored`` is the body as the database keeps it (PostgreSQL normalises JSONB), so the
    # response to a write is byte for byte what later reads will serve.
    return Version(
        resource_type, resource_id, version_id, last_updated, deleted, stored, method, pk
    )


def erase_everything(conn: Connection) -> None:
    """Remove every resource and version (tests and demo resets only)."""
    search_index.unindex_all(conn)
    version_facts.erase_all(conn)
    conn.execute(delete(V))
    conn.execute(delete(R))


def count_current(conn: Connection, resource_type: str | None = None) -> int:
    """How many live (not deleted) resources there are, of one type or all."""
    from sqlalchemy import func

    query = select(func.count()).select_from(R).where(R.c.deleted.is_(False))
    if resource_type is not None:
        query = query.where(and_(R.c.resource_type == resource_type))
    return int(conn.execute(query).scalar_one())
