"""Search criteria as SQL over the index tables (the R4 search page, per parameter type).

:class:`CriteriaSql` turns each criterion of a parsed query (``fhir_adapters.search_query``) into
a condition on one ``resource`` row (an alias of the table), usually a correlated ``EXISTS`` on
an index table; it can also give a *driver*: an uncorrelated ``SELECT resource_pk`` for the same
criterion, which the planner can start from (``pk IN (...)``) so that the most selective
criterion leads and the others are probed per row through the (resource_pk, param) indexes.

Chains and ``_has`` reach other ``resource`` rows only through :func:`register.search_scope.live`,
so the access policy holds for them too. Matching rules (see docs/search.md):

- token: ``code``, ``system|code``, ``|code``, ``system|``; ``:not`` (no value matches),
  ``:text`` (a word of the display/text starts with the value), ``:of-type``. A value indexed
  from a ``code`` primitive has no system, so ``system|code`` also matches it on the code alone.
- string: starts with the normalised value; ``:exact``; ``:contains``.
- date, number, quantity: the prefix table of ``search_values.range_matches`` on half-open
  ranges, with redundant bounds added so the (param, low/high) indexes apply.
- reference: ``Type/id``, ``id`` (any allowed type, or the ``:Type`` modifier), absolute URL,
  canonical (version ignored), ``:identifier``.
- uri: equality, ``:below`` (prefix), ``:above`` (the value starts with the indexed URI).
- ``:missing`` on every type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhirpathpy.models import models
from sqlalchemy import and_, exists, false, literal, not_, or_, select, true, tuple_
from sqlalchemy.sql.expression import ColumnElement, Select

from fhir_adapters.search_parameters import SearchParameter
from fhir_adapters.search_query import (
    Chain,
    CompositeValue,
    Criterion,
    DateValue,
    MissingValue,
    NumberValue,
    OfTypeValue,
    ParameterTest,
    QuantityValue,
    ReferenceValue,
    ReverseChain,
    SearchValue,
    StringValue,
    TextValue,
    TokenForm,
    TokenValue,
    UriValue,
)
from register.search_schema import (
    compartment_table,
    composite_table,
    date_table,
    number_table,
    quantity_table,
    reference_table,
    string_table,
    token_table,
    uri_table,
)
from register.search_scope import aliased, live, resource_alias
from register.search_types import cut, micros
from register.storage import Visibility

Condition = ColumnElement[bool]
_TOP = "\U0010ffff"  # sorts after every character: [p, p + _TOP) holds every string starting p

_TABLES = {
    "token": token_table,
    "string": string_table,
    "date": date_table,
    "reference": reference_table,
    "quantity": quantity_table,
    "number": number_table,
    "uri": uri_table,
    "composite": composite_table,
}


class Unsupported(Exception):
    """A criterion the register understands but cannot answer (e.g. token ``:in``)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


# -- ranges ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    """A target range ``[lo, hi)`` as SQL: four comparisons, each null-aware (None = unbounded).

    ``point`` marks a single instant stored in ``lo`` (``resource.last_updated``): its range is
    ``[lo, lo + 1 microsecond)``, which the comparisons below rewrite without arithmetic.
    """

    lo: Any
    hi: Any
    nullable: bool = False
    point: bool = False

    def lo_ge(self, x: Any) -> Condition:
        """``lo >= x`` (false when lo is unbounded)."""
        cond = self.lo >= x
        return and_(self.lo.is_not(None), cond) if self.nullable else cond

    def lo_lt(self, x: Any) -> Condition:
        """``lo < x`` (true when lo is unbounded)."""
        cond = self.lo < x
        return or_(self.lo.is_(None), cond) if self.nullable else cond

    def hi_gt(self, x: Any) -> Condition:
        """``hi > x`` (true when hi is unbounded)."""
        if self.point:
            return self.lo >= x  # lo + 1us > x  <=>  lo >= x, for whole microseconds
        cond = self.hi > x
        return or_(self.hi.is_(None), cond) if self.nullable else cond

    def hi_le(self, x: Any) -> Condition:
        """``hi <= x`` (false when hi is unbounded)."""
        if self.point:
            return self.lo < x
        cond = self.hi <= x
        return and_(self.hi.is_not(None), cond) if self.nullable else cond


def range_condition(prefix: str, bounds: Bounds, s_lo: Any, s_hi: Any) -> Condition:
    """``search_values.range_matches(prefix, s_lo, s_hi, lo, hi)`` as SQL (``s_lo < s_hi``).

    The extra conjuncts are implied by the exact test; they give the planner an index range.
    """
    contains = and_(bounds.lo_ge(s_lo), bounds.hi_le(s_hi))
    above = bounds.hi_gt(s_hi)
    below = bounds.lo_lt(s_lo)
    overlaps = and_(bounds.lo_lt(s_hi), bounds.hi_gt(s_lo))
    if prefix == "eq":
        return and_(contains, bounds.lo_lt(s_hi))
    if prefix == "ne":
        return not_(contains)
    if prefix == "gt":
        return above
    if prefix == "lt":
        return below
    if prefix == "ge":
        return and_(bounds.hi_gt(s_lo), or_(above, contains))
    if prefix == "le":
        return and_(bounds.lo_lt(s_hi), or_(below, contains))
    if prefix == "sa":
        return and_(above, bounds.lo_ge(s_hi))
    if prefix == "eb":
        return and_(below, bounds.hi_le(s_lo))
    if prefix == "ap":
        return overlaps
    raise ValueError(f"unknown prefix {prefix!r}")


# -- helpers ---------------------------------------------------------------------------------


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def starts_with(column: Any, prefix: str) -> Condition:
    """``column`` starts with ``prefix``, as a range both databases answer from a B-tree."""
    return and_(column >= prefix, column < prefix + _TOP)


def contains_text(column: Any, text: str) -> Condition:
    """``column`` contains ``text`` anywhere (a scan of the parameter's rows)."""
    return column.like(f"%{_like_escape(text)}%", escape="\\")


def word_starts_with(column: Any, text: str) -> Condition:
    """Some word of ``column`` starts with ``text`` (token ``:text``)."""
    escaped = _like_escape(text)
    return or_(column.like(f"{escaped}%", escape="\\"), column.like(f"% {escaped}%", escape="\\"))


_MODEL = models["r4"]


@cache
def is_code_primitive(param: SearchParameter) -> bool:
    """Whether every path of a token parameter ends in a primitive (``code``, ``boolean`` ...).

    Such values are indexed without a system, so ``system|code`` matches them on the code.
    """
    types = [_term_type(term) for term in param.terms]
    return bool(types) and all(t is not None and t[:1].islower() for t in types)


def _term_type(term: str) -> str | None:
    parts = term.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        return None
    current = parts[0]
    type_name: str | None = None
    for member in parts[1:]:
        key = f"{current}.{member}"
        key = _MODEL["pathsDefinedElsewhere"].get(key, key)
        type_name = _MODEL["path2Type"].get(key)
        if type_name is None:
            return None
        current = key if type_name in ("BackboneElement", "Element") else type_name
    return type_name


# -- criteria --------------------------------------------------------------------------------


@dataclass
class Driver:
    """An uncorrelated ``SELECT resource_pk`` for a criterion, and how selective it should be."""

    rank: int
    pks: Select[Any]


class CriteriaSql:
    """Turns criteria into SQL conditions on a ``resource`` alias, with the policy applied."""

    def __init__(self, visibility: Visibility) -> None:
        self.visibility = visibility

    # conditions ---------------------------------------------------------------------------

    def condition(self, criterion: Criterion, res: Any, depth: int = 0) -> Condition:
        """A condition that holds for a ``res`` row meeting ``criterion``.

        ``depth`` is how deep in chains/``_has`` the condition sits (it names the aliases).
        Raises :class:`Unsupported` if the criterion (or a part of it) cannot be answered.
        """
        if isinstance(criterion, ParameterTest):
            return self._test(criterion, res, depth)
        if isinstance(criterion, Chain):
            return self._chain(criterion, res, depth)
        if isinstance(criterion, ReverseChain):
            return self._has(criterion, res, depth)
        raise TypeError(f"unknown criterion {criterion!r}")  # pragma: no cover

    def _test(self, test: ParameterTest, res: Any, depth: int) -> Condition:
        param = test.parameter
        name = param.name
        if name == "_id":
            return self._id_test(test, res)
        if name == "_lastUpdated":
            return self._last_updated_test(test, res)
        if param.type == "special":
            raise Unsupported(name, "special parameters are not supported")
        table = aliased(_TABLES[param.type], f"v{depth}")
        owned = and_(table.c.resource_pk == res.c.pk, table.c.param == name)
        if test.modifier == "missing":
            assert isinstance(test.values[0], MissingValue)
            found = exists().where(owned).correlate(res)
            return not_(found) if test.values[0].missing else found
        match = self.values_condition(test, table)
        found = exists().where(owned, match).correlate(res)
        return not_(found) if test.modifier == "not" else found

    def values_condition(self, test: ParameterTest, table: Any) -> Condition:
        """The condition on one index row of ``test``'s table: any of its values matches."""
        param = test.parameter
        builder = self._value_builder(param, test.modifier)
        conditions = [builder(table, value) for value in test.values]
        if not conditions:
            return false()
        return or_(*conditions) if len(conditions) > 1 else conditions[0]

    def _value_builder(
        self, param: SearchParameter, modifier: str | None
    ) -> Callable[[Any, SearchValue], Condition]:
        kind = param.type
        if kind == "token":
            if modifier in ("in", "not-in", "above", "below"):
                raise Unsupported(param.name, f":{modifier} needs a terminology service")
            primitive = is_code_primitive(param)
            return lambda t, v: token_condition(t, v, primitive=primitive)
        if kind == "string":
            return lambda t, v: string_condition(t, v, modifier)
        if kind == "date":
            return date_condition
        if kind in ("number", "quantity"):
            return quantity_condition
        if kind == "reference":
            if modifier in ("above", "below"):
                raise Unsupported(param.name, f":{modifier} on references is not supported")
            return lambda t, v: reference_condition(t, v, param)
        if kind == "uri":
            return lambda t, v: uri_condition(t, v, modifier)
        if kind == "composite":
            return lambda t, v: self._composite_condition(t, v, param)
        raise Unsupported(param.name, f"{kind} parameters are not supported")

    def _id_test(self, test: ParameterTest, res: Any) -> Condition:
        if test.modifier == "missing":
            assert isinstance(test.values[0], MissingValue)
            return false() if test.values[0].missing else true()
        if test.modifier not in (None, "not"):
            raise Unsupported("_id", f":{test.modifier} is not supported on _id")
        ids = [_id_of(value) for value in test.values]
        found = res.c.resource_id.in_(ids)
        return not_(found) if test.modifier == "not" else found

    def _last_updated_test(self, test: ParameterTest, res: Any) -> Condition:
        if test.modifier == "missing":
            assert isinstance(test.values[0], MissingValue)
            return false() if test.values[0].missing else true()
        bounds = Bounds(res.c.last_updated, None, point=True)
        conditions = []
        for value in test.values:
            assert isinstance(value, DateValue)
            conditions.append(range_condition(value.prefix, bounds, value.low, value.high))
        return or_(*conditions)

    def _composite_condition(self, table: Any, value: SearchValue, param: SearchParameter) -> Any:
        assert isinstance(value, CompositeValue)
        if len(value.components) != 2:
            raise Unsupported(param.name, "only two-part composites are supported")
        first, second = value.components
        if isinstance(first, TokenValue):
            head = _token_pair(table.c.c1_system, table.c.c1_code, first, primitive=False)
        elif isinstance(first, ReferenceValue):
            local = first.target_id is not None and first.target_type is not None
            head = table.c.c1_code == cut(
                f"{first.target_type}/{first.target_id}" if local else (first.url or first.value)
            )
        else:
            raise Unsupported(param.name, "unsupported composite component")
        if isinstance(second, TokenValue):
            tail = _token_pair(table.c.c2_system, table.c.c2_code, second, primitive=False)
        elif isinstance(second, QuantityValue):
            bounds = Bounds(table.c.c2_low, table.c.c2_high, nullable=True)
            tail = and_(
                range_condition(second.prefix, bounds, second.low, second.high),
                _unit_condition(table.c.c2_system, table.c.c2_code, table.c.c2_unit, second),
            )
        elif isinstance(second, DateValue):
            bounds = Bounds(table.c.c2_date_low, table.c.c2_date_high, nullable=True)
            tail = range_condition(second.prefix, bounds, micros(second.low), micros(second.high))
        elif isinstance(second, StringValue):
            tail = starts_with(table.c.c2_text, cut(second.normalised) or "")
        else:
            raise Unsupported(param.name, "unsupported composite component")
        return and_(head, tail)

    def _chain(self, chain: Chain, res: Any, depth: int) -> Condition:
        link = aliased(reference_table, f"link{depth}")
        target = resource_alias(f"target{depth}")
        return (
            exists()
            .where(
                link.c.resource_pk == res.c.pk,
                link.c.param == chain.parameter.name,
                target.c.resource_type == link.c.target_type,
                target.c.resource_id == link.c.target_id,
                live(target, self.visibility),
                or_(*(self._alternative(alt, target, depth + 1) for alt in chain.alternatives)),
            )
            .correlate(res)
        )

    def _alternative(self, criterion: Criterion, target: Any, depth: int) -> Condition:
        return and_(
            target.c.resource_type == criterion.resource_type,
            self.condition(criterion, target, depth),
        )

    def _has(self, has: ReverseChain, res: Any, depth: int) -> Condition:
        link = aliased(reference_table, f"link{depth}")
        source = resource_alias(f"source{depth}")
        return (
            exists()
            .where(
                link.c.resource_type == has.source_type,
                link.c.param == has.reference.name,
                link.c.target_id == res.c.resource_id,
                link.c.target_type == res.c.resource_type,
                source.c.pk == link.c.resource_pk,
                live(source, self.visibility),
                self.condition(has.inner, source, depth + 1),
            )
            .correlate(res)
        )

    # drivers ------------------------------------------------------------------------------

    def rank(self, criterion: Criterion) -> int | None:
        """How selective :meth:`driver` would be (lower is better), or None if it has none.

        Cheap: no SQL is built, so a plan ranks every criterion and builds one driver.
        """
        if isinstance(criterion, ParameterTest):
            test = criterion
            if test.modifier in ("missing", "not", "contains", "text"):
                return None
            if any(getattr(value, "prefix", None) == "ne" for value in test.values):
                return None
            if test.parameter.name == "_lastUpdated":
                return None
            if test.parameter.name == "_id":
                return 0
            return _RANKS.get(test.parameter.type, 5)
        if isinstance(criterion, Chain):
            ranks = [self.rank(alt) for alt in criterion.alternatives]
            if any(r is None for r in ranks):
                return None
            return max(r for r in ranks if r is not None) + 1
        if isinstance(criterion, ReverseChain):
            inner = self.rank(criterion.inner)
            return None if inner is None else inner + 2
        return None  # pragma: no cover

    def driver(self, criterion: Criterion, depth: int = 0) -> Driver | None:
        """An uncorrelated ``SELECT resource_pk`` equivalent to ``criterion``, if worthwhile.

        Negations, ``:missing`` and ``ne`` have none (they match most rows); the rank orders
        the rest by expected selectivity (lower is more selective).
        """
        if isinstance(criterion, ParameterTest):
            return self._test_driver(criterion, depth)
        if isinstance(criterion, Chain):
            return self._chain_driver(criterion, depth)
        if isinstance(criterion, ReverseChain):
            return self._has_driver(criterion, depth)
        return None  # pragma: no cover

    def _test_driver(self, test: ParameterTest, depth: int) -> Driver | None:
        param = test.parameter
        if test.modifier in ("missing", "not", "contains", "text"):
            return None
        if any(getattr(value, "prefix", None) == "ne" for value in test.values):
            return None
        if param.name == "_lastUpdated":
            return None
        if param.name == "_id":
            res = resource_alias(f"ids{depth}")
            ids = [_id_of(value) for value in test.values]
            query = select(res.c.pk).where(
                res.c.resource_type == test.resource_type, res.c.resource_id.in_(ids)
            )
            return Driver(0, query.correlate(None))
        table = aliased(_TABLES[param.type], f"d{depth}")
        query = select(table.c.resource_pk).where(
            table.c.resource_type == test.resource_type,
            table.c.param == param.name,
            self.values_condition(test, table),
        )
        return Driver(_RANKS.get(param.type, 5), query.correlate(None))

    def _chain_driver(self, chain: Chain, depth: int) -> Driver | None:
        best: list[Driver] = []
        for alt in chain.alternatives:
            inner = self.driver(alt, depth + 1)
            if inner is None:
                return None
            best.append(inner)
        link = aliased(reference_table, f"dlink{depth}")
        target = resource_alias(f"dtarget{depth}")
        inner_pks = best[0].pks if len(best) == 1 else best[0].pks.union(*(d.pks for d in best[1:]))
        targets = select(target.c.resource_id, target.c.resource_type).where(
            target.c.pk.in_(inner_pks), live(target, self.visibility)
        )
        query = select(link.c.resource_pk).where(
            link.c.resource_type == chain.resource_type,
            link.c.param == chain.parameter.name,
            tuple_(link.c.target_id, link.c.target_type).in_(targets),
        )
        return Driver(max(d.rank for d in best) + 1, query.correlate(None))

    def _has_driver(self, has: ReverseChain, depth: int) -> Driver | None:
        inner = self.driver(has.inner, depth + 1)
        if inner is None:
            return None
        link = aliased(reference_table, f"dlink{depth}")
        source = resource_alias(f"dsource{depth}")
        target = resource_alias(f"dtarget{depth}")
        # inner.pks are all of the source type (drivers select one type's rows)
        sources = select(source.c.pk).where(
            source.c.pk.in_(inner.pks), live(source, self.visibility)
        )
        # the link rows are reached from their resource (resource_pk first), never by scanning
        # every reference of the source type
        pointed = select(link.c.target_id, link.c.target_type).where(
            link.c.resource_pk.in_(sources),
            link.c.param == has.reference.name,
            link.c.target_type == has.resource_type,
        )
        query = select(target.c.pk).where(
            target.c.resource_type == has.resource_type,
            tuple_(target.c.resource_id, target.c.resource_type).in_(pointed),
        )
        return Driver(inner.rank + 2, query.correlate(None))


_RANKS = {"reference": 1, "token": 2, "uri": 2, "composite": 2, "string": 3}


def in_compartment(res: Any, patient_id: str) -> Condition:
    """``res`` is in the compartment of Patient ``patient_id``."""
    member = aliased(compartment_table, "member")
    return (
        exists()
        .where(member.c.resource_pk == res.c.pk, member.c.patient_id == patient_id)
        .correlate(res)
    )


def compartment_driver(patient_id: str, resource_type: str) -> Driver:
    """The pks of resources of ``resource_type`` in Patient ``patient_id``'s compartment."""
    member = aliased(compartment_table, "dmember")
    query = select(member.c.resource_pk).where(
        member.c.patient_id == patient_id, member.c.resource_type == resource_type
    )
    return Driver(1, query.correlate(None))


# -- values ----------------------------------------------------------------------------------


def _id_of(value: SearchValue) -> str:
    if isinstance(value, TokenValue) and value.code is not None:
        return value.code
    raise Unsupported("_id", "expected an id")


def _token_pair(system: Any, code: Any, value: TokenValue, *, primitive: bool) -> Condition:
    wanted_code = cut(value.code)
    wanted_system = cut(value.system)
    if value.form is TokenForm.CODE:
        return code == wanted_code
    if value.form is TokenForm.NO_SYSTEM:
        return and_(code == wanted_code, system.is_(None))
    if value.form is TokenForm.SYSTEM_ONLY:
        return system == wanted_system
    exact = and_(code == wanted_code, system == wanted_system)
    if primitive:
        return or_(exact, and_(code == wanted_code, system.is_(None)))
    return exact


def token_condition(table: Any, value: SearchValue, *, primitive: bool) -> Condition:
    """One token value against a ``search_token`` row."""
    if isinstance(value, TokenValue):
        return _token_pair(table.c.system, table.c.code, value, primitive=primitive)
    if isinstance(value, TextValue):
        return word_starts_with(table.c.text, value.normalised)
    if isinstance(value, OfTypeValue):
        return and_(
            table.c.type_system == value.type_system,
            table.c.type_code == value.type_code,
            table.c.code == cut(value.value),
        )
    raise TypeError(f"not a token value: {value!r}")  # pragma: no cover


def string_condition(table: Any, value: SearchValue, modifier: str | None) -> Condition:
    """One string value against a ``search_string`` row."""
    assert isinstance(value, StringValue)
    folded = cut(value.normalised) or ""
    if modifier == "exact":
        return and_(table.c.value_norm == folded, table.c.value_exact == value.value)
    if modifier == "contains":
        return contains_text(table.c.value_norm, folded)
    return starts_with(table.c.value_norm, folded)


def date_condition(table: Any, value: SearchValue) -> Condition:
    """One prefixed date against a ``search_date`` row."""
    assert isinstance(value, DateValue)
    bounds = Bounds(table.c.low, table.c.high)
    return range_condition(value.prefix, bounds, micros(value.low), micros(value.high))


def _unit_condition(system: Any, code: Any, unit: Any, value: QuantityValue) -> Condition:
    if value.system is not None:
        return and_(system == value.system, code == value.code)
    if value.code is not None:
        return or_(code == value.code, unit == value.code)
    return true()


def quantity_condition(table: Any, value: SearchValue) -> Condition:
    """One prefixed number or quantity against a ``search_number``/``search_quantity`` row."""
    assert isinstance(value, NumberValue | QuantityValue)
    low = literal(value.low, table.c.low.type)
    high = literal(value.high, table.c.low.type)
    bounds = Bounds(table.c.low, table.c.high, nullable=True)
    matched = range_condition(value.prefix, bounds, low, high)
    if isinstance(value, QuantityValue):
        return and_(matched, _unit_condition(table.c.system, table.c.code, table.c.unit, value))
    return matched


def reference_condition(table: Any, value: SearchValue, param: SearchParameter) -> Condition:
    """One reference value (or ``:identifier`` token) against a ``search_reference`` row."""
    if isinstance(value, TokenValue):  # :identifier
        return _token_pair(
            table.c.identifier_system, table.c.identifier_value, value, primitive=False
        )
    assert isinstance(value, ReferenceValue)
    if value.target_id is not None:
        found = table.c.target_id == value.target_id
        if value.target_type is not None:
            return and_(found, table.c.target_type == value.target_type)
        return found
    return table.c.url == cut(value.url or value.value)


def uri_condition(table: Any, value: SearchValue, modifier: str | None) -> Condition:
    """One URI against a ``search_uri`` row (``:below``: a prefix; ``:above``: a parent)."""
    assert isinstance(value, UriValue)
    uri = value.uri
    if modifier == "below":
        return starts_with(table.c.uri, cut(uri) or "")
    if modifier == "above":
        return table.c.uri.in_(_parents(uri))
    return table.c.uri == cut(uri)


def _parents(uri: str) -> list[str]:
    """``uri`` and every URI it lies below, cut at each ``/`` (for ``:above``)."""
    found = [uri]
    text = uri
    while "/" in text:
        text = text.rsplit("/", 1)[0]
        if text.endswith(("/", ":")):
            break
        found.append(text)
    return [cut(item) or "" for item in found]


def pick_driver(drivers: Sequence[tuple[int, Driver]]) -> tuple[int, Driver] | None:
    """The most selective driver (lowest rank; the first given among equals)."""
    return min(drivers, key=lambda item: item[1].rank, default=None)
