"""Column types that behave the same on SQLite and PostgreSQL.

``FhirJson`` keeps a resource's JSON as the bytes the register serves: a BLOB on SQLite, JSONB on
PostgreSQL (read back with a cast to text, so no Python JSON decoding happens on the read path).
``UTCDateTime`` always hands back timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, LargeBinary
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine


class _ToJsonb(FunctionElement[Any]):
    """A bound value cast to JSONB on PostgreSQL and left alone elsewhere."""

    inherit_cache = True
    name = "to_jsonb_value"


class _JsonbAsText(FunctionElement[Any]):
    """A JSONB column read as text on PostgreSQL and left alone elsewhere."""

    inherit_cache = True
    name = "jsonb_as_text"


@compiles(_ToJsonb)
def _to_jsonb_default(element: _ToJsonb, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_ToJsonb, "postgresql")
def _to_jsonb_pg(element: _ToJsonb, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS JSONB)"


@compiles(_JsonbAsText)
def _jsonb_text_default(element: _JsonbAsText, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_JsonbAsText, "postgresql")
def _jsonb_text_pg(element: _JsonbAsText, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS TEXT)"


class FhirJson(TypeDecorator[bytes]):
    """A resource body: JSON bytes in, the same JSON bytes out."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(LargeBinary())

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":

            def to_text(value: bytes | str | None) -> str | None:
                if isinstance(value, bytes):
                    return value.decode("utf-8")
                return value

            return to_text
        return None

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        def to_bytes(value: bytes | str | memoryview | None) -> bytes | None:
            if value is None or isinstance(value, bytes):
                return value
            if isinstance(value, str):
                return value.encode("utf-8")
            return bytes(value)

        return to_bytes

    def bind_expression(self, bindvalue: Any) -> ColumnElement[Any]:
        return _ToJsonb(bindvalue)

    def column_expression(self, column: Any) -> ColumnElement[Any]:
        expression = _JsonbAsText(column)
        expression.type = self  # keep our result processing on the cast column
        return expression


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
