"""``_include`` and ``_revinclude`` (with ``:iterate`` and ``*``) for one page of matches.

Includes are found in the reference index, one query per include per round, and every included
resource passes :func:`register.search_scope.live`, so the policy decides what an include may
add. ``:iterate`` repeats an include on what the previous round added, up to :data:`MAX_ROUNDS`
rounds and :data:`MAX_INCLUDED` resources (the R4 search page lets a server limit iteration).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, or_, select

from fhir_adapters.search_query import Include
from register.search_schema import reference_table
from register.search_scope import aliased, live, resource_alias
from register.storage import Visibility

MAX_ROUNDS = 4
MAX_INCLUDED = 5000


@dataclass(frozen=True)
class Node:
    """A resource already in the result: its pk, type and id."""

    pk: int
    resource_type: str
    resource_id: str


def included(
    conn: Connection,
    visibility: Visibility,
    matches: Sequence[Node],
    includes: Sequence[Include],
    revincludes: Sequence[Include],
) -> list[Node]:
    """Resources the includes add to ``matches`` (none of the matches repeated), in order found."""
    if not matches or not (includes or revincludes):
        return []
    seen = {node.pk for node in matches}
    added: list[Node] = []
    frontier = list(matches)
    for round_number in range(MAX_ROUNDS):
        first = round_number == 0
        forward = [inc for inc in includes if first or inc.iterate]
        backward = [inc for inc in revincludes if first or inc.iterate]
        if not (forward or backward) or not frontier:
            break
        found: list[Node] = []
        for include in forward:
            found.extend(_forward(conn, visibility, frontier, include))
        for include in backward:
            found.extend(_backward(conn, visibility, frontier, include))
        fresh: list[Node] = []
        for node in found:
            if node.pk not in seen:
                seen.add(node.pk)
                fresh.append(node)
        added.extend(fresh)
        if len(added) >= MAX_INCLUDED:
            return added[:MAX_INCLUDED]
        frontier = fresh
    return added


def _forward(
    conn: Connection, visibility: Visibility, frontier: Sequence[Node], include: Include
) -> list[Node]:
    """Resources that ``frontier`` resources of the include's type point at."""
    sources = [n.pk for n in frontier if include.source_type in (None, n.resource_type)]
    if not sources:
        return []
    link = aliased(reference_table, "inc")
    target = resource_alias("included")
    query = (
        select(target.c.pk, target.c.resource_type, target.c.resource_id)
        .distinct()
        .where(
            link.c.resource_pk.in_(sources),
            target.c.resource_type == link.c.target_type,
            target.c.resource_id == link.c.target_id,
            live(target, visibility),
        )
        .order_by(target.c.pk)
    )
    if include.parameter is not None:
        query = query.where(link.c.param == include.parameter.name)
    if include.target_type is not None:
        query = query.where(link.c.target_type == include.target_type)
    return [Node(row.pk, row.resource_type, row.resource_id) for row in conn.execute(query)]


def _backward(
    conn: Connection, visibility: Visibility, frontier: Sequence[Node], include: Include
) -> list[Node]:
    """Resources of the include's type that point at ``frontier`` resources."""
    by_type: dict[str, list[str]] = defaultdict(list)
    for node in frontier:
        if include.target_type in (None, node.resource_type):
            by_type[node.resource_type].append(node.resource_id)
    if not by_type:
        return []
    link = aliased(reference_table, "revinc")
    source = resource_alias("revincluded")
    pointed = or_(
        *(
            and_(link.c.target_type == kind, link.c.target_id.in_(ids))
            for kind, ids in by_type.items()
        )
    )
    query = (
        select(source.c.pk, source.c.resource_type, source.c.resource_id)
        .distinct()
        .where(pointed, source.c.pk == link.c.resource_pk, live(source, visibility))
        .order_by(source.c.pk)
    )
    if include.source_type is not None:
        query = query.where(link.c.resource_type == include.source_type)
    if include.parameter is not None:
        query = query.where(link.c.param == include.parameter.name)
    return [Node(row.pk, row.resource_type, row.resource_id) for row in conn.execute(query)]
