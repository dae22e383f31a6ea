"""One-row queries run straight on the database driver's connection.

A read by id is the register's most frequent query and its cheapest: on SQLite the lookup itself
takes about 10 µs, while SQLAlchemy's execution path around it (execution context, cursor result,
row processing) took about 100 µs more on the same machine (benchmarks/README.md, Core). A
:class:`DriverQuery` compiles a SQLAlchemy select once per dialect (the statement still comes
from the storage layer's builders, with the policy's visibility condition in it) and runs it with
the driver's own ``execute``, converting the row with the columns' own result processors, so
it answers exactly what ``Connection.execute(...).first()`` would.

It runs inside whatever transaction the SQLAlchemy connection is in (the driver connection is the
same one); driver errors reach the caller unwrapped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.engine import Dialect

Processor = Callable[[Any], Any] | None


class DriverQuery:
    """A select compiled for one dialect. Parameters without a value in the statement are given
    at each call, by name; those with one (the policy's constants) are bound once, here."""

    __slots__ = ("_constants", "_names", "_processors", "sql")

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self._constants: dict[str, Any] = {}
        for bind, name in compiled.bind_names.items():
            if bind.expanding or bind.callable is not None:
                raise ValueError(f"parameter {name!r} is not a plain value; use Connection.execute")
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                if name != bind.key or process is not None:
                    raise ValueError(f"parameter {name!r} needs conversion; use Connection.execute")
                continue
            value = bind.effective_value
            self._constants[name] = value if process is None or value is None else process(value)
        self.sql = compiled.string
        self._names: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positiontup is not None else None
        )
        self._processors: tuple[Processor, ...] = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        )

    def first(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row for ``params`` (the statement's parameters without a value), or None."""
        values = {**self._constants, **params} if self._constants else params
        bound: Sequence[Any] | Mapping[str, Any] = (
            values if self._names is None else tuple(values[name] for name in self._names)
        )
        driver: Any = conn.connection.driver_connection
        row = driver.execute(self.sql, bound).fetchone()
        if row is None:
            return None
        return tuple(
            value if process is None or value is None else process(value)
            for process, value in zip(self._processors, row, strict=True)
        )


class DriverQueries:
    """The compiled form of a few statements per dialect, built on first use; None for a
    statement the driver path cannot run (an expanding IN list), which the caller then runs
    through ``Connection.execute``."""

    def __init__(self, limit: int = 4096) -> None:
        self._compiled: dict[tuple[int, str], tuple[Select[Any], DriverQuery | None]] = {}
        self._limit = limit

    def of(self, statement: Select[Any], dialect: Dialect) -> DriverQuery | None:
        """``statement`` compiled for ``dialect`` (kept while the statement object lives)."""
        key = (id(statement), dialect.name)
        found = self._compiled.get(key)
        if found is not None and found[0] is statement:
            return found[1]
        try:
            query: DriverQuery | None = DriverQuery(statement, dialect)
        except ValueError:
            query = None
        if len(self._compiled) >= self._limit:
            self._compiled.clear()
        self._compiled[key] = (statement, query)
        return query
