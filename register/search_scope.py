"""The one place search SQL meets the access policy.

Every statement search builds (matches, totals, pages, chain targets, ``_has`` sources,
``_include``/``_revinclude`` results, compartments, ``$everything``, conditional matches) reaches
``resource`` rows only through :func:`live`: the row is current (not deleted) and satisfies the
requester's :meth:`~register.storage.Visibility.resource_clause`, applied to *that* alias of the
table. So a hidden resource is filtered inside the query, before paging and counting, and can
neither be returned nor make another resource match.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_
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


def resource_alias(name: str) -> Any:
    """A fresh alias of the ``resource`` table (for chain targets, ``_has`` sources, includes)."""
    return resource_table.alias(name)
