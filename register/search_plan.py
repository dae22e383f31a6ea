"""From query parameters to the SQL of one search: parse, check, plan.

:func:`plan_search` parses the ``(name, value)`` pairs (``fhir_adapters.search_query``), sets
aside what the register cannot answer (unknown parameters, unsupported modifiers, unsupported
result parameters: ignored with a warning, or 400 under ``Prefer: handling=strict``), and builds
the conditions on one ``resource`` alias: the type, :func:`~register.search_scope.live` (deleted
and policy), every criterion, and the most selective criterion as a driver (``pk IN (...)``).
:class:`Plan` then gives the page, count and match statements over those conditions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.sql.expression import ColumnElement, Select

from fhir_adapters.search_query import (
    Criterion,
    ResultParameters,
    SearchParameterError,
    parse_query,
)
from register.errors import FhirError, bad_request
from register.search_scope import live, resource_alias
from register.search_sort import SortColumn, after, order_by, sort_columns
from register.search_sql import (
    CriteriaSql,
    Driver,
    Unsupported,
    compartment_driver,
    in_compartment,
)
from register.storage import Visibility

Params = list[tuple[str, str]]

RESULT_NAMES = frozenset(
    {
        "_count",
        "_offset",
        "_sort",
        "_total",
        "_summary",
        "_elements",
        "_contained",
        "_containedType",
        "_format",
        "_pretty",
    }
)
CONTROL_NAMES = frozenset({"_page"})
"""Parameters of the register's own paging, never parsed as search parameters."""


@dataclass(frozen=True)
class Ignored:
    """A parameter set aside: its name as written and why."""

    name: str
    reason: str


@dataclass
class Plan:
    """One search, ready to run: conditions on ``res``, sort, result parameters, what was ignored.

    ``applied`` are the client's pairs that took effect (for ``self``/``next`` links).
    """

    resource_type: str
    res: Any
    conditions: list[ColumnElement[bool]]
    result: ResultParameters
    sort: list[SortColumn]
    applied: Params
    ignored: list[Ignored] = field(default_factory=list)

    def page(self, count: int, position: tuple[list[Any], int] | None, *, reverse: bool) -> Select:
        """Up to ``count + 1`` rows (pk, then the sort keys) after (or before) ``position``."""
        res = self.res
        if not self.sort:
            query = select(res.c.pk).where(*self.conditions)
            if position is not None:
                last = position[1]
                query = query.where(res.c.pk < last if reverse else res.c.pk > last)
            order = res.c.pk.desc() if reverse else res.c.pk.asc()
            return query.order_by(order).limit(count + 1)
        keyed = (
            select(
                res.c.pk.label("pk"),
                *(column.expression.label(f"k{i}") for i, column in enumerate(self.sort)),
            )
            .where(*self.conditions)
            .subquery("keyed")
        )
        columns = [
            SortColumn(keyed.c[f"k{i}"], column.descending, column.codec)
            for i, column in enumerate(self.sort)
        ]
        query = select(keyed.c.pk, *(column.expression for column in columns))
        if position is not None:
            values, last = position
            query = query.where(after(columns, keyed.c.pk, values, last, reverse=reverse))
        return query.order_by(*order_by(columns, keyed.c.pk, reverse=reverse)).limit(count + 1)

    def count(self, cap: int | None = None) -> Select:
        """The number of matches; with ``cap``, counting stops at ``cap + 1``."""
        if cap is None:
            return select(func.count()).select_from(self.res).where(*self.conditions)
        capped = select(self.res.c.pk).where(*self.conditions).limit(cap + 1).subquery("capped")
        return select(func.count()).select_from(capped)

    def matches_under(self, visibility: Visibility, limit: int) -> Select:
        """Up to ``limit`` pks matching the criteria whose own row meets ``visibility`` instead
        of the plan's (chained and ``_has`` resources keep the plan's visibility): how the
        withheld-items notice asks whether a withholding removed a match."""
        return (
            select(self.res.c.pk)
            .where(live(self.res, visibility), *self.conditions[1:])
            .limit(limit)
        )

    def matches(self, limit: int) -> Select:
        """The first ``limit`` matching pks in pk order (conditional interactions)."""
        return select(self.res.c.pk).where(*self.conditions).order_by(self.res.c.pk).limit(limit)


Built = list[tuple[ColumnElement[bool], int | None, Criterion]]
"""Each criterion's condition, driver rank and the criterion itself."""


def _is_result(name: str) -> bool:
    return name in RESULT_NAMES or name.split(":", 1)[0] in ("_include", "_revinclude")


def plan_search(
    resource_type: str,
    params: Sequence[tuple[str, str]],
    *,
    visibility: Visibility,
    local_bases: tuple[str, ...] = (),
    strict: bool = False,
    compartment: str | None = None,
) -> Plan:
    """Parse and plan a search of ``resource_type`` (in Patient ``compartment``, if given).

    Malformed values of known parameters raise 400 naming the parameter; what the register does
    not know or cannot answer is ignored (lenient) or refused with 400 (``strict``).
    """
    sql = CriteriaSql(visibility)
    res = resource_alias("r")
    ignored: list[Ignored] = []
    applied: Params = []
    built: Built = []
    result_pairs: Params = []
    for name, value in params:
        if name in CONTROL_NAMES:
            continue
        if _is_result(name):
            result_pairs.append((name, value))
            continue
        if value == "":
            continue  # the R4 search page: an empty parameter is ignored
        parsed = _parse(resource_type, [(name, value)], local_bases)
        if parsed.unknown:
            ignored.append(Ignored(name, f"{name} is not a search parameter of {resource_type}"))
            continue
        try:
            pieces = [(sql.condition(c, res), sql.rank(c), c) for c in parsed.criteria]
        except Unsupported as exc:
            ignored.append(Ignored(name, exc.reason))
            continue
        built.extend(pieces)
        applied.append((name, value))
    result = _parse(resource_type, result_pairs, local_bases).result
    result_ignored = _unsupported_results(result)
    ignored.extend(result_ignored)
    skipped = {item.name for item in result_ignored}
    applied.extend((name, value) for name, value in result_pairs if name not in skipped)
    if strict and ignored:
        raise FhirError(
            400,
            [
                bad_request(item.reason, item.name, code="not-supported").issues[0]
                for item in ignored
            ],
        )
    conditions = [live(res, visibility), *_criteria(sql, res, resource_type, built, compartment)]
    return Plan(
        resource_type,
        res,
        conditions,
        result,
        sort_columns(result.sort, res),
        applied,
        ignored,
    )


def _criteria(
    sql: CriteriaSql, res: Any, resource_type: str, built: Built, compartment: str | None
) -> list[ColumnElement[bool]]:
    """The criteria as conditions on ``res``, the most selective one also as the driver."""
    ranked = [(rank, index) for index, (_, rank, _) in enumerate(built) if rank is not None]
    if compartment is not None:
        ranked.append((1, -1))
    best = min(ranked, default=None)  # lowest rank; the compartment, then the first, on ties
    driver: Driver | None = None
    if best is not None:
        if best[1] == -1 and compartment is not None:
            driver = compartment_driver(compartment, resource_type)
        else:
            driver = sql.driver(built[best[1]][2])
    conditions: list[ColumnElement[bool]] = []
    if driver is None:
        conditions.append(res.c.resource_type == resource_type)
    else:
        # every driver selects rows of this type only; naming the type again would tempt
        # SQLite (without statistics) to scan the type instead of starting from the driver
        conditions.append(res.c.pk.in_(driver.pks))
    chosen = best[1] if driver is not None and best is not None else None
    if compartment is not None and chosen != -1:
        conditions.append(in_compartment(res, compartment))
    conditions.extend(condition for index, (condition, _, _) in enumerate(built) if index != chosen)
    return conditions


def _parse(resource_type: str, pairs: Params, local_bases: tuple[str, ...]) -> Any:
    try:
        return parse_query(resource_type, pairs, local_bases=local_bases)
    except SearchParameterError as exc:
        raise bad_request(f"{exc.param_name}: {exc.message}", exc.param_name) from None


def _unsupported_results(result: ResultParameters) -> list[Ignored]:
    found = []
    if result.offset is not None:
        found.append(Ignored("_offset", "_offset is not supported; follow the next links"))
    if result.contained not in (None, "false"):
        found.append(Ignored("_contained", "searching contained resources is not supported"))
    if result.contained_type is not None:
        found.append(Ignored("_containedType", "searching contained resources is not supported"))
    return found
