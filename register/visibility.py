"""The one translator from the policy's :class:`auth.policy.Sight` to SQL over ``resource`` rows.

``auth.policy`` decides *what* may be seen, as data; this module says it in SQL, once, and
:mod:`register.storage` and search apply it to every read before paging. Nothing is filtered in
Python after a query.

For a clinician of organisation ``X`` (practitioner ``P``, break-glass holder ``H``) with
``user/*.rs`` the condition reads::

    resource.author_org = 'X'
    OR (resource.patient_id IS NULL AND resource.resource_type IN (<directory types>))
    OR EXISTS (SELECT 1 FROM care_relationship c
               WHERE c.patient_id = resource.patient_id AND c.active
                 AND (c.org_ods = 'X' OR c.practitioner_ref = 'P')
                 AND (c.ends_at IS NULL OR c.ends_at > :now
                      OR (c.kind = 'encounter' AND c.ends_at > :now - window)))
    OR EXISTS (SELECT 1 FROM break_glass_grant g
               WHERE g.holder = 'H' AND g.patient_id = resource.patient_id
                 AND g.expires_at > :now)

and narrower scopes add ``resource.resource_type IN (...)`` (and, for scopes with query
constraints, conditions over the search index) in front. ``:now`` is taken when the statement
runs, so a condition built once can be reused for as long as its token lives.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    exists,
    false,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.sql.expression import ColumnElement

from auth.policy import CareParty, ScopeGrant, Sight
from auth.scopes import Constraint
from register.access_schema import break_glass_table, relationship_table
from register.db_types import UTCDateTime

C = relationship_table
G = break_glass_table


def _now() -> datetime:
    return datetime.now(UTC)


def _moment(name: str, compute: Callable[[], datetime]) -> Any:
    """A bound timestamp computed each time the statement runs (not when it is built)."""
    return bindparam(name, type_=UTCDateTime(), callable_=compute, unique=True)


class SightVisibility:
    """A :class:`Sight` as a :class:`register.storage.Visibility`.

    The SQL condition is built once per table (or alias) it is asked for and then reused: the
    dispatcher keeps one of these per token and interaction, so the read path pays for building
    it once, not on every request.
    """

    __slots__ = ("_clauses", "sight")

    def __init__(self, sight: Sight) -> None:
        self.sight = sight
        self._clauses: dict[int, tuple[Table, ColumnElement[bool] | None]] = {}

    def resource_clause(self, resource: Table) -> ColumnElement[bool] | None:
        """The condition a ``resource`` row (of ``resource``, a table or alias) must meet."""
        cached = self._clauses.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        clause = sight_clause(self.sight, resource)
        if len(self._clauses) < 16:
            self._clauses[id(resource)] = (resource, clause)
        return clause

    def __repr__(self) -> str:
        return f"SightVisibility({self.sight!r})"


def sight_clause(sight: Sight, resource: Table) -> ColumnElement[bool] | None:
    """The SQL condition for ``sight`` over rows of ``resource`` (None: no limit)."""
    if sight.everything:
        return None
    R = resource.c
    grants: list[ColumnElement[bool]] = []
    if sight.own_organisation is not None:
        grants.append(R.author_org == literal(sight.own_organisation))
    if sight.own_patient is not None:
        grants.append(R.patient_id == literal(sight.own_patient))
    if sight.shared_types:
        grants.append(and_(R.patient_id.is_(None), R.resource_type.in_(sorted(sight.shared_types))))
    if sight.care_of is not None:
        grants.append(care_condition(sight.care_of, R.patient_id))
    if sight.break_glass_holder is not None:
        grants.append(break_glass_condition(sight.break_glass_holder, R.patient_id))
    rows = or_(*grants) if grants else false()
    scope = scope_condition(sight.scope, resource)
    return rows if scope is None else and_(scope, rows)


def care_condition(party: CareParty, patient: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether ``patient`` has an active care relationship with ``party`` as of now."""
    who: list[ColumnElement[bool]] = []
    if party.organisation is not None:
        who.append(C.c.org_ods == literal(party.organisation))
    if party.practitioner is not None:
        who.append(C.c.practitioner_ref == literal(party.practitioner))
    if not who:
        return false()
    window = timedelta(days=party.encounter_window_days)
    now = _moment("care_now", _now)
    cutoff = _moment("care_cutoff", lambda: _now() - window)
    return exists(
        select(literal(1)).where(
            C.c.patient_id == patient,
            C.c.active.is_(True),
            or_(*who),
            or_(
                C.c.ends_at.is_(None),
                C.c.ends_at > now,
                and_(C.c.kind == "encounter", C.c.ends_at > cutoff),
            ),
        )
    )


def break_glass_condition(holder: str, patient: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether ``holder`` has an unexpired break-glass grant for ``patient``."""
    return exists(
        select(literal(1)).where(
            G.c.holder == literal(holder),
            G.c.patient_id == patient,
            G.c.expires_at > _moment("glass_now", _now),
        )
    )


def scope_condition(
    grants: tuple[ScopeGrant, ...] | None, resource: Table
) -> ColumnElement[bool] | None:
    """The scopes' limit on rows: by type, and by query constraints where scopes have them."""
    if grants is None:
        return None
    if not grants:
        return false()
    R = resource.c
    plain = sorted({g.resource_type for g in grants if g.resource_type and not g.filters})
    parts: list[ColumnElement[bool]] = []
    if plain:
        parts.append(R.resource_type.in_(plain))
    for grant in grants:
        if grant.resource_type and not grant.filters:
            continue
        if grant.resource_type:
            kind: ColumnElement[bool] = R.resource_type == literal(grant.resource_type)
        elif grant.others_than:
            kind = R.resource_type.not_in(sorted(grant.others_than))
        else:
            kind = true()
        parts.append(and_(kind, filters_condition(grant.filters, resource)))
    return or_(*parts)


def filters_condition(
    filters: tuple[tuple[Constraint, ...], ...], resource: Table
) -> ColumnElement[bool]:
    """Rows matching at least one group of scope query constraints.

    Constraints are evaluated over the search index, which arrives with the search issue; until
    then a constrained scope grants nothing (it fails closed rather than guessing).
    """
    if not filters:
        return true()
    return false()


def patient_reachable(conn: Connection, sight: Sight, patient_id: str) -> bool:
    """Whether ``patient_id`` is open to ``sight`` through a care relationship or break-glass.

    The same conditions the read filter uses, evaluated for one patient (for writes).
    """
    if sight.everything:
        return True
    checks: list[ColumnElement[bool]] = []
    if sight.care_of is not None:
        checks.append(care_condition(sight.care_of, literal(patient_id)))
    if sight.break_glass_holder is not None:
        checks.append(break_glass_condition(sight.break_glass_holder, literal(patient_id)))
    if not checks:
        return False
    return bool(conn.execute(select(or_(*checks))).scalar())


def has_relationship(conn: Connection, party: CareParty, patient_id: str) -> bool:
    """Whether ``party`` has an active care relationship with ``patient_id`` now."""
    return bool(conn.execute(select(care_condition(party, literal(patient_id)))).scalar())


def has_active_grant(conn: Connection, holder: str, patient_id: str) -> bool:
    """Whether ``holder`` has an unexpired break-glass grant for ``patient_id``."""
    return bool(conn.execute(select(break_glass_condition(holder, literal(patient_id)))).scalar())
