"""Turn a FHIR resource into typed search index rows.

``extract(resource)`` evaluates every search parameter of the resource's type and returns one
frozen dataclass per index row. Each row class maps one to one onto an index table (its
``kind`` names the table: ``search_token``, ``search_string``, ...) and its fields onto the
columns; the storage layer adds ``resource_pk`` and ``resource_type``.

Rules (FHIR R4 search page, per parameter type):

- token: Coding and CodeableConcept give ``system``/``code`` per coding plus the display or text
  (normalised) for ``:text``; Identifier gives ``system``/``value`` (and its type codings for
  ``:of-type``); ContactPoint gives its value; code, id, string, uri and boolean primitives give
  the value as code with no system.
- string: every string part of a HumanName (and the whole name) or an Address, or the string
  itself; stored normalised (see :func:`normalise_string`) and exact.
- date: the implicit UTC range of a date, dateTime, instant, Period or Timing (half-open).
- reference: target type, target id (local targets only), the reference as written, and a
  logical identifier if the Reference carries one; references to types the parameter does not
  target are dropped (this is how ``where(resolve() is Patient)`` is honoured).
- quantity/number: the Decimal value and its implicit precision range.
- uri: the URI as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import product
from typing import Any, ClassVar

from fhir_adapters.search_parameters import Node, SearchParameter, get, parameters_for
from fhir_adapters.search_values import (
    DATE_MAX,
    DATE_MIN,
    decimal_range,
    normalise_string,
    parse_canonical,
    parse_date_range,
    parse_reference,
    to_decimal,
    type_from_reference_type,
)


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """A row of ``search_token``: a coded value (``system|code``) and its text."""

    kind: ClassVar[str] = "token"
    param: str
    system: str | None
    code: str | None
    text: str | None = None
    type_system: str | None = None
    type_code: str | None = None


@dataclass(frozen=True, slots=True)
class StringEntry:
    """A row of ``search_string``: the normalised value (for matching) and the exact one."""

    kind: ClassVar[str] = "string"
    param: str
    value_norm: str
    value_exact: str


@dataclass(frozen=True, slots=True)
class DateEntry:
    """A row of ``search_date``: the value's implicit range, UTC, ``low <= t < high``."""

    kind: ClassVar[str] = "date"
    param: str
    low: datetime
    high: datetime


@dataclass(frozen=True, slots=True)
class ReferenceEntry:
    """A row of ``search_reference``: what a reference points at.

    ``target_id`` is set only for a resource on this server; ``url`` is the reference as written
    (``Type/id`` for local ones); ``identifier_*`` hold ``Reference.identifier`` when present.
    """

    kind: ClassVar[str] = "reference"
    param: str
    target_type: str | None
    target_id: str | None
    url: str | None
    identifier_system: str | None = None
    identifier_value: str | None = None


@dataclass(frozen=True, slots=True)
class QuantityEntry:
    """A row of ``search_quantity``: value, implicit range (None = unbounded), system and code."""

    kind: ClassVar[str] = "quantity"
    param: str
    value: Decimal | None
    low: Decimal | None
    high: Decimal | None
    system: str | None
    code: str | None
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class NumberEntry:
    """A row of ``search_number``: value and implicit precision range."""

    kind: ClassVar[str] = "number"
    param: str
    value: Decimal
    low: Decimal
    high: Decimal


@dataclass(frozen=True, slots=True)
class UriEntry:
    """A row of ``search_uri``: the URI as written."""

    kind: ClassVar[str] = "uri"
    param: str
    uri: str


@dataclass(frozen=True, slots=True)
class CompositeEntry:
    """One combination of a composite parameter's components, taken from the same element.

    ``components`` holds one entry per component, in definition order, each named by the
    component's own parameter (e.g. ``code`` then ``value-quantity``).
    """

    kind: ClassVar[str] = "composite"
    param: str
    components: tuple[IndexEntry, ...]


IndexEntry = (
    TokenEntry
    | StringEntry
    | DateEntry
    | ReferenceEntry
    | QuantityEntry
    | NumberEntry
    | UriEntry
    | CompositeEntry
)

_QUANTITY_TYPES = frozenset(
    {"Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity", "MoneyQuantity"}
)
_DATE_TYPES = frozenset({"date", "dateTime", "instant"})
_TEXT_TYPES = frozenset({"string", "markdown"})
_CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})


def extract(resource: Mapping[str, Any], *, local_bases: tuple[str, ...] = ()) -> list[IndexEntry]:
    """Index rows for every search parameter of the resource's type, duplicates removed.

    ``local_bases`` are the server's own base URLs, so that absolute references to local
    resources index like relative ones. The resource is not modified.
    """
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise ValueError("resource has no resourceType")
    entries: list[IndexEntry] = []
    for param in parameters_for(resource_type).values():
        entries.extend(extract_parameter(param, resource, local_bases=local_bases))
    return list(dict.fromkeys(entries))


def extract_parameter(
    param: SearchParameter,
    resource: Mapping[str, Any],
    *,
    local_bases: tuple[str, ...] = (),
) -> list[IndexEntry]:
    """Index rows for one search parameter of a resource (used by ``extract`` and compartments)."""
    if param.type == "special":
        return []
    if param.type == "composite":
        return _composite(param, resource, local_bases)
    entries: list[IndexEntry] = []
    for node in param.evaluate(resource):
        type_name, data = _unwrap(node)
        if data is None:
            continue
        entries.extend(
            _entries_for(
                param.type, param.name, param.targets, type_name, data, resource, local_bases
            )
        )
    return entries


def _unwrap(node: Node) -> tuple[str | None, Any]:
    path, data = node
    if isinstance(path, str):
        if path.startswith("System."):
            path = path[len("System.") :].lower()
        elif "." in path:
            path = None  # a backbone element: no named type
    return path, data


def _entries_for(
    kind: str,
    name: str,
    targets: frozenset[str],
    type_name: str | None,
    data: Any,
    resource: Mapping[str, Any],
    local_bases: tuple[str, ...],
) -> Iterable[IndexEntry]:
    type_name = type_name or _infer_type(data)
    if kind == "token":
        return _tokens(name, type_name, data)
    if kind == "string":
        return _strings(name, type_name, data)
    if kind == "date":
        return _dates(name, type_name, data)
    if kind == "reference":
        return _references(name, targets, type_name, data, resource, local_bases)
    if kind == "quantity":
        return _quantities(name, type_name, data)
    if kind == "number":
        return _numbers(name, data)
    if kind == "uri":
        return [UriEntry(name, data)] if isinstance(data, str) and data else []
    return []


def _infer_type(data: Any) -> str | None:
    """Guess a FHIR data type from its JSON shape, for nodes fhirpathpy could not type."""
    if isinstance(data, bool):
        return "boolean"
    if isinstance(data, str):
        return "string"
    if isinstance(data, int | float | Decimal):
        return "decimal"
    if not isinstance(data, Mapping):
        return None
    keys = data.keys()
    if "coding" in keys or ("text" in keys and keys <= {"text", "coding", "id", "extension"}):
        return "CodeableConcept"
    if "reference" in keys or ("identifier" in keys and "value" not in keys):
        return "Reference"
    if keys & {"family", "given", "prefix", "suffix"}:
        return "HumanName"
    if keys & {"line", "city", "postalCode", "district", "state", "country"}:
        return "Address"
    if keys & {"start", "end"}:
        return "Period"
    if keys & {"event", "repeat"}:
        return "Timing"
    if keys & {"low", "high"}:
        return "Range"
    value = data.get("value")
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return "Quantity"
    if isinstance(value, str):
        if data.get("system") in _CONTACT_SYSTEMS or "rank" in keys:
            return "ContactPoint"
        return "Identifier"
    if keys & {"code", "system", "display"}:
        return "Coding"
    return None


# -- token -----------------------------------------------------------------------------------


def _norm_or_none(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    folded = normalise_string(text)
    return folded or None


def _tokens(name: str, type_name: str | None, data: Any) -> list[IndexEntry]:
    if isinstance(data, bool):
        return [TokenEntry(name, None, "true" if data else "false")]
    if isinstance(data, str):
        return [TokenEntry(name, None, data)] if data else []
    if isinstance(data, int | Decimal | float):
        return [TokenEntry(name, None, str(data))]
    if not isinstance(data, Mapping):
        return []
    if type_name == "CodeableConcept":
        rows: list[IndexEntry] = [
            TokenEntry(
                name, coding.get("system"), coding.get("code"), _norm_or_none(coding.get("display"))
            )
            for coding in data.get("coding", ())
            if isinstance(coding, Mapping) and (coding.get("system") or coding.get("code"))
        ]
        text = _norm_or_none(data.get("text"))
        if text:
            rows.append(TokenEntry(name, None, None, text))
        return rows
    if type_name == "Coding":
        if not (data.get("system") or data.get("code")):
            return []
        return [
            TokenEntry(
                name, data.get("system"), data.get("code"), _norm_or_none(data.get("display"))
            )
        ]
    if type_name == "Identifier":
        return _identifier_tokens(name, data)
    if type_name == "ContactPoint":
        value = data.get("value")
        return [TokenEntry(name, None, value)] if isinstance(value, str) and value else []
    return []


def _identifier_tokens(name: str, data: Mapping[str, Any]) -> list[IndexEntry]:
    system, value = data.get("system"), data.get("value")
    if not (system or value):
        return []
    id_type = data.get("type")
    text = None
    codings: list[Mapping[str, Any]] = []
    if isinstance(id_type, Mapping):
        text = _norm_or_none(id_type.get("text"))
        codings = [c for c in id_type.get("coding", ()) if isinstance(c, Mapping)]
    if not codings:
        return [TokenEntry(name, system, value, text)]
    return [
        TokenEntry(
            name,
            system,
            value,
            text or _norm_or_none(coding.get("display")),
            coding.get("system"),
            coding.get("code"),
        )
        for coding in codings
    ]


# -- string ----------------------------------------------------------------------------------


def _string_row(name: str, value: Any) -> StringEntry | None:
    if not isinstance(value, str):
        return None
    folded = normalise_string(value)
    return StringEntry(name, folded, value) if folded else None


def _strings(name: str, type_name: str | None, data: Any) -> list[IndexEntry]:
    parts: list[Any] = []
    if isinstance(data, str):
        parts = [data]
    elif isinstance(data, Mapping):
        if type_name == "HumanName":
            prefix, given, suffix = (list(data.get(k, ())) for k in ("prefix", "given", "suffix"))
            family = data.get("family")
            parts = [*prefix, *given, family, *suffix, data.get("text")]
            whole = " ".join(p for p in parts if isinstance(p, str) and p)
            if whole:
                parts.append(whole)
        elif type_name == "Address":
            parts = [
                *data.get("line", ()),
                data.get("city"),
                data.get("district"),
                data.get("state"),
                data.get("postalCode"),
                data.get("country"),
                data.get("text"),
            ]
        elif type_name == "CodeableConcept":
            parts = [data.get("text")]
    rows: list[IndexEntry] = []
    for part in parts:
        row = _string_row(name, part)
        if row is not None:
            rows.append(row)
    return rows


# -- date ------------------------------------------------------------------------------------


def _range_of(text: Any) -> tuple[datetime, datetime] | None:
    if not isinstance(text, str):
        return None
    try:
        parsed = parse_date_range(text)
    except ValueError:
        return None
    return parsed.low, parsed.high


def _dates(name: str, type_name: str | None, data: Any) -> list[IndexEntry]:
    if isinstance(data, str):
        if type_name in _TEXT_TYPES:
            return []  # e.g. CarePlan.activity.detail.scheduledString: free text
        found = _range_of(data)
        return [DateEntry(name, *found)] if found else []
    if not isinstance(data, Mapping):
        return []
    if type_name == "Period":
        start, end = _range_of(data.get("start")), _range_of(data.get("end"))
        if start is None and end is None:
            return []
        low = start[0] if start else DATE_MIN
        high = end[1] if end else DATE_MAX
        return [DateEntry(name, low, high)]
    if type_name == "Timing":
        # R4: "the specified scheduling details are ignored and only the outer limits matter"
        ranges = [r for r in (_range_of(e) for e in data.get("event", ())) if r]
        repeat = data.get("repeat")
        bounds = repeat.get("boundsPeriod") if isinstance(repeat, Mapping) else None
        if isinstance(bounds, Mapping):
            start, end = _range_of(bounds.get("start")), _range_of(bounds.get("end"))
            if start or end:
                ranges.append((start[0] if start else DATE_MIN, end[1] if end else DATE_MAX))
        if not ranges:
            return []
        return [DateEntry(name, min(r[0] for r in ranges), max(r[1] for r in ranges))]
    return []


# -- reference -------------------------------------------------------------------------------


def _contained_type(resource: Mapping[str, Any], local_id: str) -> str | None:
    for contained in resource.get("contained", ()):
        if isinstance(contained, Mapping) and contained.get("id") == local_id:
            kind = contained.get("resourceType")
            return kind if isinstance(kind, str) else None
    return None


def _references(
    name: str,
    targets: frozenset[str],
    type_name: str | None,
    data: Any,
    resource: Mapping[str, Any],
    local_bases: tuple[str, ...],
) -> list[IndexEntry]:
    identifier_system = identifier_value = None
    if isinstance(data, str):  # canonical or uri pointing at a resource
        parsed = parse_canonical(data)
        target_type, target_id, url = parsed.target_type, None, parsed.url
        if target_type is not None and targets and target_type not in targets:
            target_type = None  # a canonical URL's path need not name the type
    elif isinstance(data, Mapping):
        reference = data.get("reference")
        declared = type_from_reference_type(data.get("type"))
        identifier = data.get("identifier")
        if isinstance(identifier, Mapping):
            identifier_system = identifier.get("system")
            identifier_value = identifier.get("value")
        if isinstance(reference, str) and reference:
            parsed = parse_reference(reference, local_bases)
            target_type, target_id, url = parsed.target_type, parsed.target_id, parsed.url
            if parsed.kind == "contained":
                target_type = _contained_type(resource, reference[1:])
            target_type = target_type or declared
        elif identifier_system or identifier_value:
            target_type, target_id, url = declared, None, None
        else:
            return []  # display only: nothing to search on
    else:
        return []
    if target_type is not None:
        if targets and target_type not in targets:
            return []
    elif len(targets) == 1:
        (target_type,) = targets  # the only type this parameter can point at
    return [ReferenceEntry(name, target_type, target_id, url, identifier_system, identifier_value)]


# -- quantity and number ---------------------------------------------------------------------


def _quantities(name: str, type_name: str | None, data: Any) -> list[IndexEntry]:
    if not isinstance(data, Mapping):
        return []
    if type_name == "Range":
        low_q, high_q = data.get("low"), data.get("high")
        bottom = to_decimal(low_q.get("value")) if isinstance(low_q, Mapping) else None
        top = to_decimal(high_q.get("value")) if isinstance(high_q, Mapping) else None
        if bottom is None and top is None:
            return []
        unit_source = low_q if isinstance(low_q, Mapping) and bottom is not None else high_q
        assert isinstance(unit_source, Mapping)
        return [
            QuantityEntry(
                name,
                None,
                bottom,
                top,
                unit_source.get("system"),
                unit_source.get("code"),
                unit_source.get("unit"),
            )
        ]
    if type_name is not None and type_name not in _QUANTITY_TYPES:
        return []  # SampledData and the like carry no single value
    value = to_decimal(data.get("value"))
    if value is None:
        return []
    comparator = data.get("comparator")
    low: Decimal | None
    high: Decimal | None
    if comparator in ("<", "<="):
        low, high = None, value
    elif comparator in (">", ">="):
        low, high = value, None
    else:
        low, high = decimal_range(value)
    return [
        QuantityEntry(
            name, value, low, high, data.get("system"), data.get("code"), data.get("unit")
        )
    ]


def _numbers(name: str, data: Any) -> list[IndexEntry]:
    value = to_decimal(data)
    if value is None:
        return []
    low, high = decimal_range(value)
    return [NumberEntry(name, value, low, high)]


# -- composite -------------------------------------------------------------------------------


def _composite(
    param: SearchParameter, resource: Mapping[str, Any], local_bases: tuple[str, ...]
) -> list[IndexEntry]:
    parts: list[SearchParameter] = []
    for component in param.components:
        definition = get(param.resource_type, component.definition)
        if definition is None:
            raise ValueError(
                f"composite {param.resource_type}.{param.name}: unknown component "
                f"{component.definition!r}"
            )
        parts.append(definition)
    rows: list[IndexEntry] = []
    for root in param.evaluate(resource):
        per_component: list[list[IndexEntry]] = []
        for component, definition in zip(param.components, parts, strict=True):
            values: list[IndexEntry] = []
            for node in param.evaluate_component(component, root):
                type_name, data = _unwrap(node)
                if data is not None:
                    values.extend(
                        _entries_for(
                            definition.type,
                            definition.name,
                            definition.targets,
                            type_name,
                            data,
                            resource,
                            local_bases,
                        )
                    )
            if not values:
                break
            per_component.append(list(dict.fromkeys(values)))
        else:
            rows.extend(CompositeEntry(param.name, combo) for combo in product(*per_component))
    return rows
