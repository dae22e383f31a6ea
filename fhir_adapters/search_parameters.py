"""The FHIR R4 search parameters the register supports, read once from a data file.

Definitions live in ``fhir_adapters/data/search-parameters.json`` (one parameter per line:
name, type, base, FHIRPath expression, reference targets, composite components), so adding a
parameter is adding a line. This module turns them into frozen :class:`SearchParameter` objects
per resource type, each with its FHIRPath compiled once (lazily) by fhirpathpy against the R4
model. Resource-level parameters (``_id``, ``_lastUpdated``, ``_tag``, ...) are part of every
type's set.

fhirpathpy loses the element type of results combined with ``|``, so an expression is split
into its top-level union terms and each term is compiled and evaluated on its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal, cast

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

ParamType = Literal[
    "token", "string", "date", "reference", "quantity", "number", "uri", "composite", "special"
]
PARAM_TYPES: frozenset[str] = frozenset(
    {"token", "string", "date", "reference", "quantity", "number", "uri", "composite", "special"}
)

# R4 search page, "Modifiers": which modifiers each parameter type accepts. A reference
# parameter also accepts a resource type as modifier (``subject:Patient``), checked separately.
MODIFIERS_BY_TYPE: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "string": frozenset({"missing", "exact", "contains"}),
        "token": frozenset({"missing", "text", "not", "above", "below", "in", "not-in", "of-type"}),
        "reference": frozenset({"missing", "identifier", "above", "below"}),
        "uri": frozenset({"missing", "above", "below"}),
        "date": frozenset({"missing"}),
        "number": frozenset({"missing"}),
        "quantity": frozenset({"missing"}),
        "composite": frozenset({"missing"}),
        "special": frozenset(),
    }
)
# Types whose values may carry a comparison prefix (eq, ne, lt, gt, le, ge, sa, eb, ap).
PREFIXED_TYPES: frozenset[str] = frozenset({"date", "number", "quantity"})

R4_MODEL: dict[str, Any] = models["r4"]
_ABSTRACT_TYPES = frozenset({"Resource", "DomainResource", "MetadataResource"})

Evaluator = Callable[..., list[Any]]


def _is_resource_type(name: str) -> bool:
    parents: Mapping[str, str] = R4_MODEL["type2Parent"]
    seen = name
    while seen:
        if seen == "Resource":
            return True
        seen = parents.get(seen, "")
    return False


RESOURCE_TYPES: frozenset[str] = (
    frozenset(name for name in R4_MODEL["type2Parent"] if _is_resource_type(name)) - _ABSTRACT_TYPES
)
"""Every concrete R4 resource type name (from fhirpathpy's R4 model)."""


@dataclass(frozen=True, slots=True)
class Component:
    """One part of a composite parameter: the parameter that types it and a relative path."""

    definition: str
    expression: str
    terms: tuple[str, ...]


@dataclass(frozen=True, repr=False)
class SearchParameter:
    """One search parameter as it applies to one resource type.

    ``expression`` is the FHIRPath for this resource type only (terms of a multi-type
    definition that belong to other types are dropped; ``Resource.`` reads as the type).
    ``targets`` is empty for a reference to any type.
    """

    name: str
    type: ParamType
    resource_type: str
    expression: str
    terms: tuple[str, ...]
    targets: frozenset[str] = frozenset()
    components: tuple[Component, ...] = ()
    modifiers: frozenset[str] = frozenset()
    comparators: frozenset[str] = frozenset()
    _needs: tuple[frozenset[str] | None, ...] = field(default=(), compare=False, repr=False)

    def __repr__(self) -> str:
        return f"<SearchParameter {self.resource_type}.{self.name} ({self.type})>"

    def evaluate(self, resource: Mapping[str, Any]) -> list[Node]:
        """Evaluate the expression on a resource, as ``(type name, JSON value)`` pairs.

        A term that is a plain path (``Type.element...``) is skipped when the resource has no
        ``element`` key at all (its result would be empty), and is otherwise walked directly
        over the JSON; other terms go to fhirpathpy.
        """
        results: list[Node] = []
        for index, term in enumerate(self.terms):
            needs = self._needs[index] if index < len(self._needs) else None
            if needs is not None and needs.isdisjoint(resource):
                continue
            results.extend(evaluate_term(term, resource))
        return results

    def evaluate_component(self, component: Component, node: Node) -> list[Node]:
        """Evaluate a composite component's relative expression on one root node."""
        results: list[Node] = []
        for term in component.terms:
            results.extend(evaluate_term(term, node))
        return results


Node = tuple[str | None, Any]
"""A FHIRPath result: the FHIR type name (or backbone path, or None) and the JSON value."""

_PRIMITIVE_TYPES = frozenset(
    name for name in R4_MODEL["path2Type"].values() if name and name[0].islower()
)
_STEP_RE = re.compile(
    r"\.(?:ofType\((?P<of_type>[A-Za-z]+)\)"
    r"|where\((?P<key>[a-z][A-Za-z0-9]*)\s*=\s*'(?P<value>[^'\\]*)'\)"
    r"|(?P<member>[a-z][A-Za-z0-9]*)(?![A-Za-z0-9(]))"
)
_ROOT_RE = re.compile(r"^(?P<root>[A-Za-z][A-Za-z0-9]*)")


@dataclass(frozen=True, slots=True)
class _PlainPath:
    """A FHIRPath made only of member steps, ``ofType(T)`` and ``where(key = 'literal')``.

    Walked directly over the JSON with the types fhirpathpy's own R4 model gives, so the result
    equals fhirpathpy's (a test checks this on the sample data) at a fraction of the cost.
    """

    root_type: str | None  # a resource type the path starts from, or None for a relative path
    steps: tuple[tuple[str, str, str], ...]

    def run(self, target: Mapping[str, Any] | Node) -> list[Node]:
        if self.root_type is not None:
            if not isinstance(target, Mapping) or target.get("resourceType") != self.root_type:
                return []
            nodes: list[Node] = [(self.root_type, target)]
        else:
            nodes = [target] if isinstance(target, tuple) else [(None, target)]
        model_types: Mapping[str, str] = R4_MODEL["path2Type"]
        elsewhere: Mapping[str, str] = R4_MODEL["pathsDefinedElsewhere"]
        choice_paths: Mapping[str, list[str]] = R4_MODEL["choiceTypePaths"]
        for op, arg, literal in self.steps:
            found: list[Node] = []
            if op == "member":
                for type_name, data in nodes:
                    if not isinstance(data, Mapping):
                        continue
                    child = f"{type_name}.{arg}" if type_name else f"_.{arg}"
                    child = elsewhere.get(child, child)
                    choices = choice_paths.get(child)
                    if choices:
                        value = None
                        for choice in choices:
                            value = data.get(arg + choice)
                            if value is not None:
                                child += choice
                                break
                    else:
                        value = data.get(arg)
                    if value is None:
                        continue
                    child_type = model_types.get(child, child)
                    if isinstance(value, list):
                        found.extend((child_type, item) for item in value if item is not None)
                    else:
                        found.append((child_type, value))
            elif op == "of_type":
                found = [node for node in nodes if _is_a(node[0], arg)]
            else:  # where(key = 'literal')
                found = [
                    node
                    for node in nodes
                    if isinstance(node[1], Mapping) and node[1].get(arg) == literal
                ]
            nodes = found
            if not nodes:
                break
        return nodes


def _is_a(type_name: str | None, wanted: str) -> bool:
    parents: Mapping[str, str] = R4_MODEL["type2Parent"]
    current = type_name
    while current:
        if current == wanted:
            return True
        current = parents.get(current)
    return False


@cache
def _plain_path(term: str) -> _PlainPath | None:
    """Parse a term as a plain path, or ``None`` if it needs the full FHIRPath engine."""
    root_match = _ROOT_RE.match(term)
    if root_match is None:
        return None
    root = root_match["root"]
    position = root_match.end()
    steps: list[tuple[str, str, str]] = []
    root_type: str | None
    if root[0].isupper():
        if root not in RESOURCE_TYPES:
            return None
        root_type = root
    else:
        root_type = None
        steps.append(("member", root, ""))
    while position < len(term):
        step = _STEP_RE.match(term, position)
        if step is None:
            return None
        if step["member"]:
            steps.append(("member", step["member"], ""))
        elif step["of_type"]:
            steps.append(("of_type", step["of_type"], ""))
        else:
            steps.append(("where", step["key"], step["value"]))
        position = step.end()
    return _PlainPath(root_type, tuple(steps))


def evaluate_term(term: str, target: Mapping[str, Any] | Node, *, fast: bool = True) -> list[Node]:
    """Evaluate one union-free FHIRPath term on a resource or a node, as typed pairs.

    ``fast=False`` forces fhirpathpy even for plain paths (tests compare the two).
    """
    plain = _plain_path(term) if fast else None
    if plain is not None:
        return plain.run(target)
    if isinstance(target, tuple):
        argument: Any = ResourceNode.create_node(  # type: ignore[no-untyped-call]
            target[1], target[0]
        )
    else:
        argument = target
    results: list[Node] = []
    for node in compile_fhirpath(term)(argument):
        if isinstance(node, ResourceNode):
            data = node.data
            if isinstance(data, Mapping) and set(data) <= {"extension", "id"}:
                continue  # only a primitive's extensions: no value
            results.append((node.path, data))
        else:
            results.append((None, node))
    return results


_PLAIN_PATH_RE = re.compile(
    r"^(?P<type>[A-Z][A-Za-z]+)\.(?P<element>[a-z][A-Za-z0-9]*)"
    r"(?:\.[a-z][A-Za-z0-9]*|\.ofType\([A-Za-z]+\)|\.where\([^()]*\))*$"
)


def _keys_needed(term: str) -> frozenset[str] | None:
    """The top-level JSON keys one of which a plain-path term needs to yield anything.

    ``None`` when the term is not a plain path (e.g. uses ``exists()`` or ``and``), in which
    case it must always be evaluated.
    """
    match = _PLAIN_PATH_RE.match(term)
    if match is None:
        return None
    element = match["element"]
    choices = R4_MODEL["choiceTypePaths"].get(f"{match['type']}.{element}")
    if choices:
        return frozenset(element + choice[0].upper() + choice[1:] for choice in choices)
    return frozenset({element})


@cache
def compile_fhirpath(expression: str) -> Evaluator:
    """Compile a FHIRPath expression once for the R4 model, returning typed result nodes."""
    return cast(Evaluator, fhirpathpy.compile(expression, R4_MODEL, {"returnRawData": True}))


def split_union(expression: str) -> list[str]:
    """Split a FHIRPath expression on its top-level ``|`` (outside brackets and quotes)."""
    terms: list[str] = []
    depth = 0
    quote: str | None = None
    start = 0
    for index, char in enumerate(expression):
        if quote:
            if char == quote and expression[index - 1] != "\\":
                quote = None
        elif char in "'\"`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "|" and depth == 0:
            terms.append(expression[start:index].strip())
            start = index + 1
    terms.append(expression[start:].strip())
    return [term for term in terms if term]


def _strip_parens(term: str) -> str:
    while term.startswith("(") and term.endswith(")") and _balanced(term[1:-1]):
        term = term[1:-1].strip()
    return term


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if depth < 0:
            return False
    return depth == 0


def _root_of(term: str) -> str:
    head = _strip_parens(term).lstrip("(")
    name = ""
    for char in head:
        if not (char.isalnum() or char == "_"):
            break
        name += char
    return name


def _terms_for(expression: str, base: str, resource_type: str) -> tuple[str, ...]:
    kept: list[str] = []
    for raw in split_union(expression):
        term = _strip_parens(raw)
        root = _root_of(term)
        if base == "Resource" and root == "Resource":
            kept.append(resource_type + term[len("Resource") :])
        elif root == resource_type:
            kept.append(term)
    return tuple(kept)


@dataclass(frozen=True, slots=True)
class _Definition:
    name: str
    type: str
    base: tuple[str, ...]
    expression: str
    targets: tuple[str, ...]
    components: tuple[tuple[str, str], ...]
    modifiers: tuple[str, ...] | None
    comparators: tuple[str, ...] | None


@cache
def _definitions() -> tuple[_Definition, ...]:
    text = (
        resources.files("fhir_adapters")
        .joinpath("data/search-parameters.json")
        .read_text(encoding="utf-8")
    )
    raw = json.loads(text)["parameters"]
    result: list[_Definition] = []
    for item in raw:
        kind = item["type"]
        if kind not in PARAM_TYPES:
            raise ValueError(f"search parameter {item['name']!r}: unknown type {kind!r}")
        result.append(
            _Definition(
                name=item["name"],
                type=kind,
                base=tuple(item["base"]),
                expression=item["expression"],
                targets=tuple(item.get("target", ())),
                components=tuple(
                    (part["definition"], part["expression"]) for part in item.get("components", ())
                ),
                modifiers=tuple(item["modifiers"]) if "modifiers" in item else None,
                comparators=tuple(item["comparators"]) if "comparators" in item else None,
            )
        )
    return tuple(result)


def _build(definition: _Definition, base: str, resource_type: str) -> SearchParameter:
    terms = _terms_for(definition.expression, base, resource_type)
    if not terms:
        raise ValueError(
            f"search parameter {definition.name!r}: no expression term for {resource_type}"
        )
    components = tuple(
        Component(name, expression, tuple(split_union(expression)))
        for name, expression in definition.components
    )
    kind = cast(ParamType, definition.type)
    modifiers = (
        frozenset(definition.modifiers)
        if definition.modifiers is not None
        else MODIFIERS_BY_TYPE[kind]
    )
    if definition.comparators is not None:
        comparators = frozenset(definition.comparators)
    elif kind in PREFIXED_TYPES:
        comparators = frozenset({"eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap"})
    else:
        comparators = frozenset()
    return SearchParameter(
        name=definition.name,
        type=kind,
        resource_type=resource_type,
        expression=" | ".join(terms),
        terms=terms,
        targets=frozenset(definition.targets),
        components=components,
        modifiers=modifiers,
        comparators=comparators,
        _needs=tuple(_keys_needed(term) for term in terms),
    )


@cache
def _by_type() -> Mapping[str, Mapping[str, _Definition]]:
    table: dict[str, dict[str, _Definition]] = {}
    for definition in _definitions():
        for base in definition.base:
            bucket = table.setdefault(base, {})
            if definition.name in bucket:
                raise ValueError(f"search parameter {base}.{definition.name} defined twice")
            bucket[definition.name] = definition
    return table


@cache
def parameters_for(resource_type: str) -> Mapping[str, SearchParameter]:
    """All parameters searchable on a resource type, by name, Resource-level ones included.

    A type without its own definitions still gets ``_id``, ``_lastUpdated`` and the other
    Resource-level parameters. The mapping is read-only and built once per type.
    """
    table = _by_type()
    result: dict[str, SearchParameter] = {}
    for name, definition in table.get("Resource", {}).items():
        result[name] = _build(definition, "Resource", resource_type)
    for name, definition in table.get(resource_type, {}).items():
        result[name] = _build(definition, resource_type, resource_type)
    return MappingProxyType(result)


def get(resource_type: str, name: str) -> SearchParameter | None:
    """The parameter ``name`` of ``resource_type``, or ``None`` if the register does not know it."""
    return parameters_for(resource_type).get(name)


def resource_types() -> Sequence[str]:
    """The resource types that have parameters of their own (beyond the Resource-level ones)."""
    return sorted(name for name in _by_type() if name != "Resource")
