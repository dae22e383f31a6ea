"""Column types and value limits of the search index tables, the same on SQLite and PostgreSQL.

- Dates are stored as whole microseconds since 1970-01-01T00:00:00Z (a 64-bit integer): the
  half-open ranges of ``fhir_adapters.search_values`` compare as integers on both databases, and
  a ``_page`` cursor carries them as plain JSON numbers.
- Decimals are exact ``NUMERIC`` on PostgreSQL and ``REAL`` on SQLite (which has no decimal
  type); :class:`IndexNumber` converts at the boundary so callers always bind and receive
  ``Decimal``.
- Indexed text is cut to :data:`INDEXED_TEXT` characters, on the index side and the query side
  alike, so a B-tree entry always fits PostgreSQL's limit (about 2.7 kB).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Float, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

INDEXED_TEXT = 255
"""Characters of a code, system, URI, URL or normalised string that the index keeps."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cut(text: str | None) -> str | None:
    """``text`` as the index stores it (at most :data:`INDEXED_TEXT` characters)."""
    if text is None or len(text) <= INDEXED_TEXT:
        return text
    return text[:INDEXED_TEXT]


def micros(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch (UTC)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class IndexNumber(TypeDecorator[Decimal]):
    """A decimal value or range bound: NUMERIC on PostgreSQL, REAL on SQLite."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Float())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            number = float(value)
            # REAL has no room for 1e400; the extremes still order correctly as infinities
            return number
        return value if isinstance(value, Decimal) else Decimal(str(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        return Decimal(repr(float(value)))
