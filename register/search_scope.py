"""The one place search SQL meets the access policy.

Every statement search builds (matches, totals, pages, chain targets, ``_has`` sources,
``_include``/``_revinclude`` results, compartments, ``$everything``, conditional matches) reaches
``resource`` rows only through :func:`live`: the row is current (not deleted) and satisfies the
requester's :meth:`~register.storage.Visibility.resource_clause`, applied to *that* alias of the
table. So a hidden resource is filtered inside the query, before paging and counting, and can
neither be returned nor make another resource match.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Table, and_
from sqlalchemy.sql.expression import ColumnElement

from register.schema import resource_table
from register.storage import Visibility


def live(resource: Any, visibility: Visibility) -> ColumnElement[bool]:
    """The condition a ``resource`` row (or an alias of the table) must meet to be searchable.

    ``resource`` is :data:`register.schema.resource_table` or an alias of it; the policy's clause
    is built for that very alias, so its columns (and any correlated subquery it contains) refer
    to the row being tested.
    """
    clauses: list[ColumnElement[bool]] = [resource.c.deleted.is_(False)]
    policy = visibility.resource_clause(resource)
    if policy is not None:
        clauses.append(policy)
    return and_(*clauses)


@cache
def aliased(table: Table, role: str) -> Any:
    """The alias of ``table`` playing ``role`` in a statement (``"r"``, ``"link1"`` ...).

    Built once and reused: an alias is an immutable description, and making a new one per
    request (with its column proxies) cost more than running the query. Two subqueries side by
    side may use the same alias; a subquery nested in another uses a different role (the
    callers put the nesting depth in the role), so a correlated reference is never ambiguous.
    """
    alias = table.alias(f"{table.name}_{role}")
    alias.c  # noqa: B018 - build the column collection now, not racing in two threads later
    return alias


def resource_alias(role: str) -> Any:
    """The ``resource`` table as ``role`` (for matches, chain targets, ``_has`` sources ...)."""
    return aliased(resource_table, role)
