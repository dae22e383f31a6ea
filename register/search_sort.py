"""``_sort`` keys and keyset paging over them.

A sort key is one value per resource computed from its index rows: the lowest value for an
ascending key and the highest for a descending one (dates: the lowest start / highest end;
strings: the normalised text; tokens: the code; references: ``Type/id`` or the URL). Resources
without a value sort last in either direction, and ``resource.pk`` breaks ties, so the order is
total and a page boundary is a single position: the keys and pk of the last row shown. The next
page asks for rows *after* that position (not an offset), so it stays correct while others write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, false, func, literal, or_, select
from sqlalchemy.sql.expression import ColumnElement

from fhir_adapters.search_query import SortKey
from register.errors import bad_request
from register.search_schema import (
    date_table,
    number_table,
    quantity_table,
    reference_table,
    string_table,
    token_table,
    uri_table,
)
from register.search_scope import aliased


@dataclass(frozen=True)
class SortColumn:
    """One ordering expression (correlated to a ``resource`` alias) and its direction."""

    expression: ColumnElement[Any]
    descending: bool
    codec: str  # how its values travel in a cursor: "raw", "decimal" or "datetime"


def sort_columns(keys: Sequence[SortKey], res: Any) -> list[SortColumn]:
    """The ordering expressions for ``_sort`` keys on ``res`` (pk comes last, separately)."""
    return [_column(key, res, index) for index, key in enumerate(keys)]


def _column(key: SortKey, res: Any, index: int) -> SortColumn:
    param, desc = key.parameter, key.descending
    name = param.name
    if name == "_id":
        return SortColumn(res.c.resource_id, desc, "raw")
    if name == "_lastUpdated":
        return SortColumn(res.c.last_updated, desc, "datetime")
    pick = func.max if desc else func.min
    codec = "raw"
    if param.type == "date":
        table = aliased(date_table, f"sort{index}")
        value: Any = table.c.high if desc else table.c.low
    elif param.type == "token":
        table = aliased(token_table, f"sort{index}")
        value = table.c.code
    elif param.type == "string":
        table = aliased(string_table, f"sort{index}")
        value = table.c.value_norm
    elif param.type == "uri":
        table = aliased(uri_table, f"sort{index}")
        value = table.c.uri
    elif param.type == "reference":
        table = aliased(reference_table, f"sort{index}")
        value = func.coalesce(table.c.url, table.c.target_type + "/" + table.c.target_id)
    elif param.type in ("number", "quantity"):
        table = aliased(number_table if param.type == "number" else quantity_table, f"sort{index}")
        value = func.coalesce(table.c.value, table.c.high if desc else table.c.low)
        codec = "decimal"
    else:  # the parser refuses composite and special keys
        raise bad_request(f"Cannot sort on {name}.", "_sort")
    scalar = (
        select(pick(value))
        .where(table.c.resource_pk == res.c.pk, table.c.param == name)
        .correlate(res)
        .scalar_subquery()
    )
    return SortColumn(scalar, desc, codec)


def order_by(columns: Sequence[SortColumn], pk: Any, *, reverse: bool = False) -> list[Any]:
    """ORDER BY terms: the keys (missing values last) then pk; ``reverse`` flips everything."""
    terms = []
    for column in columns:
        descending = column.descending != reverse
        term = column.expression.desc() if descending else column.expression.asc()
        terms.append(term.nulls_first() if reverse else term.nulls_last())
    terms.append(pk.desc() if reverse else pk.asc())
    return terms


def after(
    columns: Sequence[SortColumn],
    pk: Any,
    values: Sequence[Any],
    last_pk: int,
    *,
    reverse: bool = False,
) -> ColumnElement[bool]:
    """Rows strictly after the position (``values``, ``last_pk``) in the sort order.

    With ``reverse`` the rows strictly *before* it (for ``previous`` links). The comparison is
    the lexicographic one the ORDER BY uses, with missing values after all present ones.
    """
    alternatives: list[ColumnElement[bool]] = []
    ties: list[ColumnElement[bool]] = []
    for column, value in zip(columns, values, strict=True):
        expr = column.expression
        later = column.descending != reverse
        bound = literal(value, expr.type) if value is not None else None
        if bound is None:
            # nothing but another missing value comes after (or, reversed, everything present
            # comes before) a missing value
            beyond = expr.is_not(None) if reverse else false()
            equal = expr.is_(None)
        else:
            strictly = expr < bound if later else expr > bound
            beyond = strictly if reverse else or_(strictly, expr.is_(None))
            equal = expr == bound
        alternatives.append(and_(*ties, beyond))
        ties.append(equal)
    alternatives.append(and_(*ties, pk < last_pk if reverse else pk > last_pk))
    return or_(*alternatives)


def encode_values(columns: Sequence[SortColumn], values: Sequence[Any]) -> list[Any]:
    """Sort key values as JSON for a cursor."""
    encoded: list[Any] = []
    for column, value in zip(columns, values, strict=True):
        if value is None:
            encoded.append(None)
        elif column.codec == "decimal":
            encoded.append(str(value))
        elif column.codec == "datetime":
            assert isinstance(value, datetime)
            encoded.append(value.isoformat())
        else:
            encoded.append(value)
    return encoded


def decode_values(columns: Sequence[SortColumn], encoded: Any) -> list[Any]:
    """Sort key values back from a cursor; 400 if they do not fit the query's keys."""
    if not isinstance(encoded, list) or len(encoded) != len(columns):
        raise bad_request("The paging link does not fit this query; start again.", "_page")
    values: list[Any] = []
    try:
        for column, item in zip(columns, encoded, strict=True):
            if item is None:
                values.append(None)
            elif column.codec == "decimal":
                values.append(Decimal(str(item)))
            elif column.codec == "datetime":
                values.append(datetime.fromisoformat(str(item)))
            elif isinstance(item, int | str | float):
                values.append(item)
            else:
                raise ValueError(item)
    except (ValueError, ArithmeticError):
        raise bad_request("The paging link is not valid; start the query again.", "_page") from None
    return values
