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

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    Connection,
    Integer,
    String,
    Table,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import _anonymous_label
from sqlalchemy.sql.expression import ColumnElement, Select
from sqlalchemy.sql.visitors import InternalTraversal

from auth.policy import CareParty, ConsentRule, ScopeGrant, SharingModel, Sight
from auth.scopes import Constraint
from register.access_schema import break_glass_table, identifier_table, relationship_table
from register.consent_config import load as consent_data
from register.consent_schema import provision_table
from register.db_types import UTCDateTime
from register.schema import resource_table as RESOURCES
from register.search_schema import date_table as D
from register.search_schema import reference_table as REFS
from register.search_schema import token_table as T
from register.search_schema import version_date_table, version_token_table

C = relationship_table
G = break_glass_table
ROLES = identifier_table
ROLE_PRACTITIONER = "urn:careregister:practitioner-of-role"  # as register.relationships
_ONE = literal_column("1")


@dataclass(frozen=True)
class Facts:
    """Where the rows a condition is about keep their codes, labels and clinical dates:
    ``token`` and ``date`` tables whose ``key`` column holds the row's ``pk``; ``resource_key``
    is the row's column that the search index's references (``search_reference``) are keyed by.
    """

    token: Table
    date: Table
    key: str
    resource_key: str


CURRENT = Facts(T, D, "resource_pk", "pk")
"""Resources (``resource`` rows): the search index, which describes each current version."""
VERSIONS = Facts(version_token_table, version_date_table, "version_pk", "resource_pk")
"""Stored versions (``resource_version`` rows): each version's own facts
(``register/version_facts.py``)."""


class _Const(ColumnElement[str]):
    """A constant string written into the SQL as a properly escaped literal, not bound.

    The visibility condition is compiled once per Sight and reused (its statement-cache key
    holds every value), so there is nothing to gain from binding its values, and processing
    binds on every execution costs more than the point read they guard.
    """

    inherit_cache = True
    type = String()
    _traverse_internals: ClassVar[Any] = [("value", InternalTraversal.dp_string)]

    def __init__(self, value: str) -> None:
        self.value = value


@compiles(_Const)
def _compile_const(element: _Const, compiler: Any, **kw: Any) -> str:
    return str(compiler.render_literal_value(element.value, String()))


class _Now(ColumnElement[datetime]):
    """The database's current time (UTC), ``days`` days ago: taken when the statement runs."""

    inherit_cache = True
    type = UTCDateTime()
    _traverse_internals: ClassVar[Any] = [("days", InternalTraversal.dp_plain_obj)]

    def __init__(self, days: int = 0) -> None:
        self.days = int(days)


@compiles(_Now)
def _compile_now(element: _Now, compiler: Any, **kw: Any) -> str:
    if element.days:
        return f"(CURRENT_TIMESTAMP - INTERVAL '{element.days} days')"
    return "CURRENT_TIMESTAMP"


@compiles(_Now, "sqlite")
def _compile_now_sqlite(element: _Now, compiler: Any, **kw: Any) -> str:
    # SQLite keeps timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' text in UTC; 'now' is UTC.
    shift = f", '-{element.days} days'" if element.days else ""
    return f"strftime('%Y-%m-%d %H:%M:%f', 'now'{shift})"


_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{0,63}$")


class _TypeIn(ColumnElement[bool]):
    """``column IN ('A', 'B')`` with constant type names written into the SQL, not bound (a
    bound list is re-expanded on every execution)."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True
    _traverse_internals: ClassVar[Any] = [
        ("column", InternalTraversal.dp_clauseelement),
        ("names", InternalTraversal.dp_string_list),
    ]

    def __init__(self, column: ColumnElement[Any], names: Iterable[str]) -> None:
        self.column = column
        self.names = sorted(set(names))
        if not self.names or not all(_TYPE_NAME.match(name) for name in self.names):
            raise ValueError("resource type names only")

    @property
    def _from_objects(self) -> list[Any]:  # the tables it reads, for the enclosing FROM
        return list(self.column._from_objects)


@compiles(_TypeIn)
def _compile_type_in(element: _TypeIn, compiler: Any, **kw: Any) -> str:
    names = ", ".join(f"'{name}'" for name in element.names)
    return f"({compiler.process(element.column, **kw)} IN ({names}))"


class _Condition(ColumnElement[bool]):
    """A visibility condition keyed for SQLAlchemy's statement cache by a canonical text of the
    :class:`Sight` it was built from, instead of a walk over its whole SQL tree on every
    execution (which cost more than the read itself).

    The key is complete: it names the table and every value of the Sight, so two conditions with
    one key render the same SQL with the same bound values; the only values that change between
    executions are the timestamps, which are computed when the statement runs
    (``bindparam(callable_=...)``).
    """

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True
    _traverse_internals: ClassVar[Any] = [("key", InternalTraversal.dp_string)]

    def __init__(self, inner: ColumnElement[bool], key: str) -> None:
        self.inner = inner
        self.key = key

    @property
    def _from_objects(self) -> list[Any]:  # the tables it reads, for the enclosing FROM
        return list(self.inner._from_objects)


@compiles(_Condition)
def _compile_condition(element: _Condition, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.inner, **kw)})"


def _type_in(column: ColumnElement[Any], types: Iterable[str]) -> ColumnElement[bool]:
    return _TypeIn(column, types)


def _canonical(sight: Sight) -> str:
    scope = (
        None
        if sight.scope is None
        else [
            (g.resource_type, sorted(g.others_than), [sorted(map(repr, f)) for f in g.filters])
            for g in sight.scope
        ]
    )
    return repr(
        (
            sight.everything,
            scope,
            sight.own_organisation,
            sight.care_of,
            sight.break_glass_holder,
            sight.own_patient,
            sorted(sight.shared_types),
            None
            if sight.consent is None
            else (
                sight.consent.model.value,
                sight.consent.recipient,
                sight.consent.purpose,
                sorted(sight.consent.sensitive_labels),
                sorted(sight.consent.always_shared),
            ),
            sorted(sight.not_for_patient),
        )
    )


class SightVisibility:
    """A :class:`Sight` as a :class:`register.storage.Visibility`.

    The SQL condition is built once per table (or alias) it is asked for and then reused: the
    dispatcher keeps one of these per token and interaction, so the read path pays for building
    it once, not on every request.
    """

    __slots__ = ("_clauses", "sight")

    def __init__(self, sight: Sight) -> None:
        self.sight = sight
        self._clauses: dict[tuple[int, str], tuple[Table, ColumnElement[bool] | None]] = {}

    def resource_clause(self, resource: Table) -> ColumnElement[bool] | None:
        """The condition a ``resource`` row (of ``resource``, a table or alias) must meet."""
        return self._clause(resource, CURRENT)

    def version_clause(self, versions: Table) -> ColumnElement[bool] | None:
        """The condition a ``resource_version`` row must meet, by its own facts."""
        return self._clause(versions, VERSIONS)

    def _clause(self, table: Table, facts: Facts) -> ColumnElement[bool] | None:
        key = (id(table), facts.key)
        cached = self._clauses.get(key)
        if cached is not None and cached[0] is table:
            return cached[1]
        clause = sight_clause(self.sight, table, facts)
        if clause is not None and not isinstance(table.name, _anonymous_label):
            clause = _Condition(clause, f"{table.name}|{_canonical(self.sight)}")
        if len(self._clauses) < 16:
            self._clauses[key] = (table, clause)
        return clause

    def __repr__(self) -> str:
        return f"SightVisibility({self.sight!r})"


class WithheldVisibility:
    """The rows a :class:`Sight`'s withholdings (consent, sensitive labels, not-for-patient)
    remove: visible without them, not visible with them. Used only to tell a clinician that
    something was left out, never to return those rows."""

    __slots__ = ("_clauses", "relaxed", "strict")

    def __init__(self, sight: Sight) -> None:
        self.strict = SightVisibility(sight)
        self.relaxed = SightVisibility(sight.without_withholdings())
        self._clauses: dict[tuple[int, str], tuple[Table, ColumnElement[bool]]] = {}

    def resource_clause(self, resource: Table) -> ColumnElement[bool]:
        """Rows of ``resource`` visible but for the withholdings."""
        return self._clause(resource, CURRENT)

    def version_clause(self, versions: Table) -> ColumnElement[bool]:
        """Versions visible but for the withholdings, by their own facts."""
        return self._clause(versions, VERSIONS)

    def _clause(self, table: Table, facts: Facts) -> ColumnElement[bool]:
        key = (id(table), facts.key)
        cached = self._clauses.get(key)
        if cached is not None and cached[0] is table:
            return cached[1]
        strict = sight_clause(self.strict.sight, table, facts)
        relaxed = sight_clause(self.relaxed.sight, table, facts)
        clause: ColumnElement[bool] = and_(
            true() if relaxed is None else relaxed, false() if strict is None else ~strict
        )
        if not isinstance(table.name, _anonymous_label):
            clause = _Condition(clause, f"withheld|{table.name}|{_canonical(self.strict.sight)}")
        if len(self._clauses) < 16:
            self._clauses[key] = (table, clause)
        return clause


def sight_clause(
    sight: Sight, resource: Table, facts: Facts = CURRENT
) -> ColumnElement[bool] | None:
    """The SQL condition for ``sight`` over rows of ``resource`` (None: no limit), whose codes,
    labels and dates ``facts`` says where to find."""
    if sight.everything:
        return None
    R = resource.c
    grants: list[ColumnElement[bool]] = []
    if sight.own_organisation is not None:
        grants.append(R.author_org == _Const(sight.own_organisation))
    if sight.own_patient is not None:
        own = R.patient_id == _Const(sight.own_patient)
        if sight.not_for_patient:
            own = and_(own, ~not_for_patient(resource, sight.not_for_patient, facts))
        grants.append(own)
    if sight.shared_types:
        grants.append(and_(R.patient_id.is_(None), _type_in(R.resource_type, sight.shared_types)))
    if sight.care_of is not None:
        cared = care_condition(sight.care_of, R.patient_id)
        if sight.consent is not None:
            cared = and_(cared, consent_condition(sight.consent, resource, facts))
        grants.append(cared)
    if sight.break_glass_holder is not None:
        grants.append(break_glass_condition(sight.break_glass_holder, R.patient_id))
    rows = or_(*grants) if grants else false()
    scope = scope_condition(sight.scope, resource, facts)
    return rows if scope is None else and_(scope, rows)


def care_condition(party: CareParty, patient: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether ``patient`` has an active care relationship with ``party`` as of now."""
    who: list[ColumnElement[bool]] = []
    if party.organisation is not None:
        who.append(C.c.org_ods == _Const(party.organisation))
    if party.practitioner is not None:
        who.append(C.c.practitioner_ref == _Const(party.practitioner))
        who.append(_same_person(party.practitioner))
    if not who:
        return false()
    now = _Now()
    cutoff = _Now(party.encounter_window_days)
    return exists(
        select(_ONE).where(
            C.c.patient_id == patient,
            C.c.active == true(),
            or_(*who),
            or_(
                C.c.ends_at.is_(None),
                C.c.ends_at > now,
                and_(C.c.kind == _Const("encounter"), C.c.ends_at > cutoff),
            ),
        )
    )


def _same_person(practitioner: str) -> ColumnElement[bool]:
    """Relationships naming the same person by their other reference: the Practitioner of a
    PractitionerRole, or the PractitionerRoles of a Practitioner (``access_identifier``)."""
    kind, _, rid = practitioner.partition("/")
    if kind == "PractitionerRole":
        return C.c.practitioner_ref.in_(
            select(ROLES.c.value).where(
                ROLES.c.resource_type == _Const("PractitionerRole"),
                ROLES.c.resource_id == _Const(rid),
                ROLES.c.system == _Const(ROLE_PRACTITIONER),
            )
        )
    return C.c.practitioner_ref.in_(
        select(_Const("PractitionerRole/") + ROLES.c.resource_id).where(
            ROLES.c.system == _Const(ROLE_PRACTITIONER),
            ROLES.c.value == _Const(practitioner),
        )
    )


def break_glass_condition(holder: str, patient: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether ``holder`` has an unexpired break-glass grant for ``patient``."""
    return exists(
        select(_ONE).where(
            G.c.holder == _Const(holder),
            G.c.patient_id == patient,
            G.c.expires_at > _Now(),
        )
    )


# --- consent -------------------------------------------------------------------------------

P = provision_table


def labelled(
    resource: Table, labels: Iterable[str], role: str, facts: Facts = CURRENT
) -> ColumnElement[bool]:
    """Whether the row carries one of ``labels`` (``system|code``) in ``meta.security``."""
    tok = facts.token.alias(f"lbl_{role}")
    pairs = []
    for label in sorted(labels):
        system, _, code = label.rpartition("|")
        pairs.append(and_(tok.c.code == _Const(code), tok.c.system == _Const(system)))
    return exists(
        select(_ONE)
        .where(
            tok.c[facts.key] == resource.c.pk,
            tok.c.param == _Const("_security"),
            or_(*pairs) if pairs else false(),
        )
        .correlate_except(tok)
    )


DENY, EXPLICIT_PERMIT, PERMIT = 0, 1, 2
"""The deciding rule's verdict, in the order a tie at one depth is broken."""


def not_for_patient(
    resource: Table, labels: frozenset[str], facts: Facts = CURRENT
) -> ColumnElement[bool]:
    """The row, or the target of a Provenance row, carries a not-for-patient label."""
    return or_(
        labelled(resource, labels, "nfp", facts),
        and_(
            resource.c.resource_type == _Const("Provenance"),
            _target_labelled(resource, labels, "nfpt", facts),
        ),
    )


def _target_labelled(
    resource: Table, labels: frozenset[str], role: str, facts: Facts = CURRENT
) -> ColumnElement[bool]:
    """The Provenance row's target carries one of ``labels`` now (one flat subquery)."""
    link = REFS.alias(f"{role}_link")
    target = RESOURCES.alias(f"{role}_target")
    tok = T.alias(f"{role}_label")
    pairs = []
    for label in sorted(labels):
        system, _, code = label.rpartition("|")
        pairs.append(and_(tok.c.code == _Const(code), tok.c.system == _Const(system)))
    return exists(
        select(_ONE)
        .select_from(
            link.join(
                target,
                and_(
                    target.c.resource_type == link.c.target_type,
                    target.c.resource_id == link.c.target_id,
                ),
            ).join(tok, tok.c.resource_pk == target.c.pk)
        )
        .where(
            link.c.resource_pk == resource.c[facts.resource_key],
            link.c.param == _Const("target"),
            tok.c.param == _Const("_security"),
            or_(*pairs) if pairs else false(),
        )
        .correlate_except(link, target, tok)
    )


DENY, EXPLICIT_PERMIT, PERMIT = 0, 1, 2
"""The deciding rule's verdict, in the order a tie at one depth is broken."""


def consent_condition(
    rule: ConsentRule, resource: Table, facts: Facts = CURRENT
) -> ColumnElement[bool]:
    """Whether the patient's Consent shares a row with ``rule.recipient`` (see
    :class:`auth.policy.ConsentRule`), evaluated over ``consent_provision`` at query time::

        COALESCE((SELECT verdict of the deciding rule), <default>)
            BETWEEN 1 AND (CASE WHEN <row is sensitive> THEN 1 ELSE 2 END)

    where the verdict is 0 (deny), 1 (permit naming a label or code) or 2 (other permit), and
    the default (no rule matches) 2 for opt-out and 0 for opt-in.

    A Provenance (who recorded what) is shared only while the patient's Consent has no rules,
    the default is opt-out and its target is not sensitive: following each rule through to the
    target would nest the condition deeper than SQLite parses once chains and ``_has`` repeat
    it, so the register withholds rather than guesses.
    """
    R = resource.c
    opt_out = rule.model is SharingModel.OPT_OUT
    default = PERMIT if opt_out else DENY
    verdict = func.coalesce(
        deciding_verdict(rule, resource, "c", facts), literal_column(str(default))
    )
    # verdict * 2 + sensitive: 2-4 share (an explicit permit, or a permit of a row that is not
    # sensitive); CASE expressions would nest deeper in SQLite's parser than arithmetic.
    if rule.sensitive_labels:
        sensitive = cast(labelled(resource, rule.sensitive_labels, "sens", facts), Integer)
        decided = (verdict * 2 + sensitive).between(literal_column("2"), literal_column("4"))
    else:
        decided = verdict >= literal_column("1")
    parts: list[ColumnElement[bool]] = []
    if rule.always_shared:
        parts.append(_type_in(R.resource_type, rule.always_shared))
    parts.append(and_(R.resource_type != _Const("Provenance"), decided))
    if opt_out:
        a = P.alias("cp_any")
        no_rules = ~exists(select(_ONE).where(a.c.patient_id == R.patient_id).correlate_except(a))
        parts.append(
            and_(
                R.resource_type == _Const("Provenance"),
                no_rules,
                ~_target_labelled(resource, rule.sensitive_labels, "prov", facts),
            )
        )
    return or_(*parts)


def deciding_verdict(
    rule: ConsentRule, resource: Table, role: str, facts: Facts = CURRENT
) -> ColumnElement[Any]:
    """The verdict of the rule that decides for the row (None when no rule matches): the
    deepest matching rule; at one depth a deny, then a permit naming a label or code."""
    p = P.alias(f"cp_{role}")
    return deciding_rule(rule, resource, p, verdict_of(p), facts=facts).scalar_subquery()


def verdict_of(p: Any) -> ColumnElement[Any]:
    """A rule row's verdict: 0 deny, 1 permit naming a label or code, 2 other permit."""
    return case(
        (p.c.effect == _Const("deny"), literal_column(str(DENY))),
        (
            or_(p.c.label_code.is_not(None), p.c.code.is_not(None)),
            literal_column(str(EXPLICIT_PERMIT)),
        ),
        else_=literal_column(str(PERMIT)),
    )


def deciding_rule(
    rule: ConsentRule, resource: Table, p: Any, *columns: Any, facts: Facts = CURRENT
) -> Select[Any]:
    """``columns`` of the rule (``p``, an alias of ``consent_provision``) that decides for the
    row: the rules of the row's patient whose every stated criterion holds for this requester
    and row, deepest first, a deny before a permit naming a label or code before another.

    The row's codes, labels and clinical dates are outer-joined rather than tested in nested
    subqueries, so the condition stays shallow (SQLite's parser has a fixed stack, and this
    condition is repeated for every alias a chained search reads)."""
    R = resource.c
    now = _Now()
    tc = facts.token.alias(f"{p.name}_code")
    tl = facts.token.alias(f"{p.name}_label")
    dd = facts.date.alias(f"{p.name}_date")
    da = facts.date.alias(f"{p.name}_dated")
    key = facts.key
    params = consent_data().clinical_date_params
    periodic = or_(p.c.data_start.is_not(None), p.c.data_end.is_not(None))
    source = (
        p.outerjoin(
            tc,
            and_(
                tc.c[key] == R.pk,
                tc.c.param == _Const("code"),
                tc.c.code == p.c.code,
                func.coalesce(p.c.code_system, tc.c.system) == tc.c.system,
            ),
        )
        .outerjoin(
            tl,
            and_(
                tl.c[key] == R.pk,
                tl.c.param == _Const("_security"),
                tl.c.code == p.c.label_code,
                func.coalesce(p.c.label_system, tl.c.system) == tl.c.system,
            ),
        )
        .outerjoin(
            dd,
            and_(
                periodic,
                dd.c[key] == R.pk,
                _in_names(dd.c.param, params),
                func.coalesce(p.c.data_end_us, dd.c.low + 1) > dd.c.low,
                func.coalesce(p.c.data_start_us, dd.c.high - 1) < dd.c.high,
            ),
        )
        .outerjoin(da, and_(periodic, da.c[key] == R.pk, _in_names(da.c.param, params)))
    )
    actor = (
        p.c.actor.is_(None)
        if rule.recipient is None
        else func.coalesce(p.c.actor, _Const(rule.recipient)) == _Const(rule.recipient)
    )
    where = [
        p.c.patient_id == R.patient_id,
        actor,
        func.coalesce(p.c.purpose, _Const(rule.purpose)) == _Const(rule.purpose),
        func.coalesce(p.c.resource_type, R.resource_type) == R.resource_type,
        or_(p.c.valid_from.is_(None), p.c.valid_from <= now),
        or_(p.c.valid_to.is_(None), p.c.valid_to > now),
        or_(p.c.code.is_(None), tc.c.pk.is_not(None)),
        or_(p.c.label_code.is_(None), tl.c.pk.is_not(None)),
        # dataPeriod: one of the row's clinical dates overlaps it; a row without one counts
        # by when it was recorded.
        or_(
            ~periodic,
            dd.c.pk.is_not(None),
            and_(
                da.c.pk.is_(None),
                or_(p.c.data_end.is_(None), R.last_updated < p.c.data_end),
                or_(p.c.data_start.is_(None), R.last_updated >= p.c.data_start),
            ),
        ),
    ]
    return (
        select(*columns)
        .select_from(source)
        .where(*where)
        .order_by(p.c.depth.desc(), verdict_of(p))
        .limit(1)
        .correlate_except(p, tc, tl, dd, da)
    )


def _in_names(column: ColumnElement[Any], names: Iterable[str]) -> ColumnElement[bool]:
    return or_(*(column == _Const(n) for n in names))


def scope_condition(
    grants: tuple[ScopeGrant, ...] | None, resource: Table, facts: Facts = CURRENT
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
        parts.append(_type_in(R.resource_type, plain))
    for grant in grants:
        if grant.resource_type and not grant.filters:
            continue
        if grant.resource_type:
            kind: ColumnElement[bool] = R.resource_type == _Const(grant.resource_type)
        elif grant.others_than:
            kind = ~_type_in(R.resource_type, grant.others_than)
        else:
            kind = true()
        parts.append(and_(kind, filters_condition(grant.filters, resource, facts)))
    return or_(*parts)


def filters_condition(
    filters: tuple[tuple[Constraint, ...], ...], resource: Table, facts: Facts = CURRENT
) -> ColumnElement[bool]:
    """Rows matching at least one group of scope query constraints (all of a group's).

    A constraint is a token test on the search index (``search_token``), with the meaning
    :meth:`auth.scopes.Constraint.matches` gives it: ``code``, ``system|code``, ``|code`` (no
    system), ``system|``; a comma separates alternatives. Constraints this register cannot
    evaluate (modifiers, chains) match nothing: access they would grant is refused, not guessed.
    """
    if not filters:
        return true()
    return or_(*(and_(*(_constraint(c, resource, facts) for c in group)) for group in filters))


def _constraint(constraint: Constraint, resource: Table, facts: Facts) -> ColumnElement[bool]:
    if not constraint.supported:
        return false()
    tok = facts.token
    alternatives: list[ColumnElement[bool]] = []
    for system, code in constraint.tokens():
        parts: list[ColumnElement[bool]] = []
        if code is not None:
            parts.append(tok.c.code == _Const(code))
        if system == "":
            parts.append(tok.c.system.is_(None))
        elif system is not None:
            parts.append(tok.c.system == _Const(system))
        alternatives.append(and_(*parts) if parts else true())
    return exists(
        select(_ONE).where(
            tok.c[facts.key] == resource.c.pk,
            tok.c.param == _Const(constraint.name),
            or_(*alternatives),
        )
    )


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
