"""Search index maintenance, called by storage inside each write transaction.

``index_resource`` turns a resource into index rows (``fhir_adapters.search_extraction``) and
writes them; ``unindex_resource`` removes them before an update re-indexes and when a resource
is deleted (deleted resources are not searchable). Both run in the caller's transaction, so the
indexes can never disagree with the stored resources. :func:`reindex` rebuilds every row from the
stored bodies after a parameter definition changes (``careregister reindex``).

Two parameters are answered from the ``resource`` row itself and not indexed: ``_id``
(``resource_id``) and ``_lastUpdated`` (``last_updated``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, func, insert, select

from fhir_adapters.compartments import patient_compartment
from fhir_adapters.search_extraction import (
    CompositeEntry,
    DateEntry,
    IndexEntry,
    NumberEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    UriEntry,
    extract,
)
from register.schema import resource_table
from register.search_schema import ALL_TABLES, INDEX_TABLES, compartment_table
from register.search_types import cut, micros

ROW_PARAMETERS = frozenset({"_id", "_lastUpdated"})
"""Parameters answered from the ``resource`` row rather than from index tables."""

Row = dict[str, Any]


def index_rows(
    resource: Mapping[str, Any], *, local_bases: tuple[str, ...] = ()
) -> dict[str, list[Row]]:
    """The rows to store for ``resource``, by table name (without ``resource_pk``/type)."""
    rows: dict[str, list[Row]] = defaultdict(list)
    for entry in extract(resource, local_bases=local_bases):
        if entry.param in ROW_PARAMETERS:
            continue
        table = INDEX_TABLES[entry.kind].name
        row = _row(entry)
        if row is not None:
            rows[table].append(row)
    for patient_id in patient_compartment(resource, local_bases=local_bases):
        rows[compartment_table.name].append({"patient_id": patient_id})
    return {name: _unique(found) for name, found in rows.items()}


def _unique(rows: list[Row]) -> list[Row]:
    # values cut to the indexed length can collide; one row is enough
    seen: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        seen.setdefault(tuple(row.values()), row)
    return list(seen.values())


def _row(entry: IndexEntry) -> Row | None:
    if isinstance(entry, TokenEntry):
        return {
            "param": entry.param,
            "system": cut(entry.system),
            "code": cut(entry.code),
            "text": entry.text,
            "type_system": entry.type_system,
            "type_code": entry.type_code,
        }
    if isinstance(entry, StringEntry):
        return {
            "param": entry.param,
            "value_norm": cut(entry.value_norm),
            "value_exact": entry.value_exact,
        }
    if isinstance(entry, DateEntry):
        return {"param": entry.param, "low": micros(entry.low), "high": micros(entry.high)}
    if isinstance(entry, ReferenceEntry):
        return {
            "param": entry.param,
            "target_type": entry.target_type,
            "target_id": entry.target_id,
            # local targets are found by (type, id); the URL matters only for the others
            "url": None if entry.target_id is not None else cut(entry.url),
            "identifier_system": cut(entry.identifier_system),
            "identifier_value": cut(entry.identifier_value),
        }
    if isinstance(entry, QuantityEntry):
        return {
            "param": entry.param,
            "value": entry.value,
            "low": entry.low,
            "high": entry.high,
            "system": entry.system,
            "code": entry.code,
            "unit": entry.unit,
        }
    if isinstance(entry, NumberEntry):
        return {"param": entry.param, "value": entry.value, "low": entry.low, "high": entry.high}
    if isinstance(entry, UriEntry):
        return {"param": entry.param, "uri": cut(entry.uri)}
    if isinstance(entry, CompositeEntry):
        return _composite_row(entry)
    return None  # pragma: no cover - every kind is handled above


def _composite_row(entry: CompositeEntry) -> Row | None:
    if len(entry.components) != 2:
        return None  # every R4 composite has two parts; anything else is not indexed
    first, second = entry.components
    row: Row = {
        "param": entry.param,
        "c1_system": None,
        "c1_code": None,
        "c2_system": None,
        "c2_code": None,
        "c2_unit": None,
        "c2_low": None,
        "c2_high": None,
        "c2_date_low": None,
        "c2_date_high": None,
        "c2_text": None,
    }
    if isinstance(first, TokenEntry):
        row["c1_system"], row["c1_code"] = cut(first.system), cut(first.code)
    elif isinstance(first, ReferenceEntry):
        local = first.target_id is not None and first.target_type is not None
        row["c1_code"] = cut(f"{first.target_type}/{first.target_id}" if local else first.url)
    else:
        return None
    if isinstance(second, TokenEntry):
        row["c2_system"], row["c2_code"] = cut(second.system), cut(second.code)
    elif isinstance(second, QuantityEntry):
        row.update(
            c2_low=second.low,
            c2_high=second.high,
            c2_system=second.system,
            c2_code=second.code,
            c2_unit=second.unit,
        )
    elif isinstance(second, DateEntry):
        row["c2_date_low"], row["c2_date_high"] = micros(second.low), micros(second.high)
    elif isinstance(second, StringEntry):
        row["c2_text"] = cut(second.value_norm)
    else:
        return None
    return row


def index_resource(
    conn: Connection,
    resource_pk: int,
    resource_type: str,
    resource: dict[str, Any],
    *,
    local_bases: tuple[str, ...] = (),
) -> None:
    """Write the index rows of the current version of a resource.

    ``local_bases`` are the server's base URLs, so absolute references to resources held here
    are indexed like relative ones.
    """
    _insert(conn, [(resource_pk, resource_type, index_rows(resource, local_bases=local_bases))])


def _insert(conn: Connection, batch: Iterable[tuple[int, str, dict[str, list[Row]]]]) -> None:
    by_table: dict[str, list[Row]] = defaultdict(list)
    for resource_pk, resource_type, rows in batch:
        for name, found in rows.items():
            keys = {"resource_pk": resource_pk, "resource_type": resource_type}
            by_table[name].extend({**keys, **row} for row in found)
    for table in ALL_TABLES:
        found = by_table.get(table.name)
        if found:
            conn.execute(insert(table), found)


def unindex_resource(conn: Connection, resource_pk: int) -> None:
    """Remove the index rows of a resource (before re-indexing or on delete)."""
    for table in ALL_TABLES:
        conn.execute(delete(table).where(table.c.resource_pk == resource_pk))


def unindex_all(conn: Connection) -> None:
    """Remove every index row."""
    for table in ALL_TABLES:
        conn.execute(delete(table))


@dataclass(frozen=True)
class ReindexReport:
    """What a reindex did: resources indexed and rows written."""

    resources: int
    rows: int


def reindex(
    engine: Engine,
    *,
    resource_type: str | None = None,
    local_bases: tuple[str, ...] = (),
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> ReindexReport:
    """Rebuild the index rows of every current resource (or of one type), in batches, and the
    facts kept for each of their versions (``register/version_facts.py``).

    Each batch is one transaction: its rows are deleted and rewritten together, so a search
    running meanwhile sees each resource indexed either the old way or the new way.
    """
    from register import storage, version_facts
    from register.db import write_transaction

    R = resource_table
    advance = progress or (lambda n: None)
    after = 0
    resources = rows_written = 0
    while True:
        with write_transaction(engine) as conn:
            query = select(R.c.pk).where(R.c.pk > after).order_by(R.c.pk).limit(batch_size)
            if resource_type is not None:
                query = query.where(R.c.resource_type == resource_type)
            pks = list(conn.execute(query).scalars())
            if not pks:
                break
            for table in ALL_TABLES:
                conn.execute(delete(table).where(table.c.resource_pk.in_(pks)))
            batch = []
            for pk, version in sorted(storage.read_many(conn, storage.EVERYTHING, pks).items()):
                rows = index_rows(orjson.loads(version.content or b"{}"), local_bases=local_bases)
                rows_written += sum(len(r) for r in rows.values())
                batch.append((pk, version.resource_type, rows))
            _insert(conn, batch)
            version_facts.rebuild(conn, pks)
            resources += len(batch)
            after = pks[-1]
        advance(len(pks))
    return ReindexReport(resources, rows_written)


def count_rows(conn: Connection) -> dict[str, int]:
    """Rows per index table (for the CLI's report and for tests)."""
    return {
        table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        for table in ALL_TABLES
    }
