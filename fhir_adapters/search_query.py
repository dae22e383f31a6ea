"""Parse a FHIR search query into a typed syntax tree, before anything touches a database.

``parse_query(resource_type, pairs)`` takes the query as ``(name, value)`` pairs (so repeated
parameters are kept: repeats are AND, commas inside a value are OR) and returns a
:class:`SearchQuery`: criteria (:class:`ParameterTest`, :class:`Chain`, :class:`ReverseChain`),
result parameters (``_count``, ``_sort``, ``_include``, ...) and the names it did not know.

Unknown parameters are returned, not raised: the caller decides between lenient and strict
handling (``Prefer: handling=strict``). A known parameter with a malformed value (bad date,
unknown prefix, modifier not allowed for its type, bad number) raises
:class:`SearchParameterError` naming the parameter.

Values follow the R4 search page: ``\\,`` ``\\|`` ``\\$`` and ``\\\\`` escape the separators;
token forms ``code``, ``system|code``, ``|code``, ``system|``; quantity
``number|system|code``; dates carry their implicit range (see ``search_values``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from fhir_adapters.search_parameters import (
    PREFIXED_TYPES,
    RESOURCE_TYPES,
    SearchParameter,
    get,
    resource_types,
)
from fhir_adapters.search_values import (
    DATE_MAX,
    DATE_MIN,
    PREFIXES,
    DatePrecision,
    decimal_range,
    normalise_string,
    parse_date_range,
    parse_decimal,
    parse_reference,
)


class SearchParameterError(ValueError):
    """A search parameter the register knows, used wrongly (bad value, modifier or form)."""

    def __init__(self, param_name: str, message: str) -> None:
        super().__init__(f"{param_name}: {message}")
        self.param_name = param_name
        self.message = message


# -- values ----------------------------------------------------------------------------------


class TokenForm(StrEnum):
    """The four shapes of a token value."""

    CODE = "code"  # code: any system
    SYSTEM_CODE = "system|code"  # both must match
    NO_SYSTEM = "|code"  # code, with no system at all
    SYSTEM_ONLY = "system|"  # any code in the system


@dataclass(frozen=True, slots=True)
class TokenValue:
    """A token (``system|code``); ``None`` parts are not constrained, see ``form``."""

    form: TokenForm
    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class OfTypeValue:
    """``identifier:of-type=type-system|type-code|value``."""

    type_system: str
    type_code: str
    value: str


@dataclass(frozen=True, slots=True)
class TextValue:
    """``:text`` on a token: matched against display/text, normalised like strings."""

    text: str
    normalised: str


@dataclass(frozen=True, slots=True)
class StringValue:
    """A string value: ``normalised`` for the default (starts-with) and ``:contains`` matching."""

    value: str
    normalised: str


@dataclass(frozen=True, slots=True)
class DateValue:
    """A date with its prefix and implicit UTC range ``[low, high)``.

    For ``ap`` the range is already widened (10% of the gap between now and the date).
    """

    prefix: str
    value: str
    low: datetime
    high: datetime
    precision: DatePrecision


@dataclass(frozen=True, slots=True)
class NumberValue:
    """A number with its prefix and implicit precision range ``[low, high)``."""

    prefix: str
    value: str
    number: Decimal
    low: Decimal
    high: Decimal


@dataclass(frozen=True, slots=True)
class QuantityValue:
    """``[prefix]number[|system|code]``; ``system``/``code`` ``None`` when not constrained.

    With no system, ``code`` may match either the coded unit or the human unit (``5.4||mg``).
    """

    prefix: str
    value: str
    number: Decimal
    low: Decimal
    high: Decimal
    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """A reference value: ``id``, ``Type/id``, an absolute URL, or a canonical ``url|version``.

    ``target_id`` is set for local targets; a bare id leaves ``target_type`` to the ``:Type``
    modifier (or to the parameter's targets, when it is ``None``).
    """

    value: str
    target_type: str | None
    target_id: str | None
    url: str | None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class UriValue:
    """A URI (also the value set URL of token ``:in``/``:not-in``)."""

    uri: str


@dataclass(frozen=True, slots=True)
class MissingValue:
    """``:missing=true|false``."""

    missing: bool


@dataclass(frozen=True, slots=True)
class SpecialValue:
    """A value of a special parameter (e.g. ``Location.near``), kept as written."""

    value: str


@dataclass(frozen=True, slots=True)
class CompositeValue:
    """A composite value (``a$b``): one value per component, typed by the component."""

    components: tuple[SearchValue, ...]


SearchValue = (
    TokenValue
    | OfTypeValue
    | TextValue
    | StringValue
    | DateValue
    | NumberValue
    | QuantityValue
    | ReferenceValue
    | UriValue
    | MissingValue
    | SpecialValue
    | CompositeValue
)


# -- criteria --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParameterTest:
    """One parameter of ``resource_type`` tested against values (any value may match: OR).

    ``modifier`` is one of the R4 modifiers (``missing``, ``exact``, ``contains``, ``text``,
    ``not``, ``above``, ``below``, ``in``, ``not-in``, ``of-type``, ``identifier``) or ``None``;
    ``target_type`` carries a reference's ``:Type`` modifier.
    """

    resource_type: str
    parameter: SearchParameter
    modifier: str | None
    target_type: str | None
    values: tuple[SearchValue, ...]


@dataclass(frozen=True, slots=True)
class Chain:
    """``reference.param=value``: the reference points at a resource matching ``alternatives``.

    Each alternative is a criterion on one possible target type (its ``resource_type``); the
    chain matches when any alternative does. A ``:Type`` modifier leaves exactly one.
    """

    resource_type: str
    parameter: SearchParameter
    alternatives: tuple[Criterion, ...]


@dataclass(frozen=True, slots=True)
class ReverseChain:
    """``_has:Source:reference:criterion``: some ``Source`` referring to this resource through
    ``reference`` satisfies ``inner``."""

    resource_type: str
    source_type: str
    reference: SearchParameter
    inner: Criterion


Criterion = ParameterTest | Chain | ReverseChain


# -- result parameters -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``_sort`` key."""

    parameter: SearchParameter
    descending: bool


@dataclass(frozen=True, slots=True)
class Include:
    """An ``_include`` / ``_revinclude``: ``source_type:parameter[:target_type]``.

    ``parameter`` is ``None`` for a wildcard (``*`` or ``Type:*``); ``source_type`` is ``None``
    for a bare ``*``.
    """

    source_type: str | None
    parameter: SearchParameter | None
    target_type: str | None
    iterate: bool


@dataclass(frozen=True, slots=True)
class ResultParameters:
    """The parameters that shape the result rather than select resources."""

    count: int | None = None
    offset: int | None = None
    sort: tuple[SortKey, ...] = ()
    total: str | None = None
    summary: str | None = None
    elements: tuple[str, ...] = ()
    include: tuple[Include, ...] = ()
    revinclude: tuple[Include, ...] = ()
    contained: str | None = None
    contained_type: str | None = None
    format: str | None = None
    pretty: bool | None = None


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed search: criteria (all must hold), result parameters, unknown parameter names."""

    resource_type: str
    criteria: tuple[Criterion, ...]
    result: ResultParameters = field(default_factory=ResultParameters)
    unknown: tuple[str, ...] = ()


# -- escaping --------------------------------------------------------------------------------


def split_escaped(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is not escaped by a backslash; escapes are kept.

    ``split_escaped("a\\\\,b,c", ",") == ["a\\\\,b", "c"]``: call :func:`unescape` on each piece
    once no further splitting is needed.
    """
    pieces: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index : index + 2])
            index += 2
            continue
        if char == separator:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    pieces.append("".join(current))
    return pieces


def unescape(text: str) -> str:
    """Remove the backslash before ``,`` ``|`` ``$`` and ``\\``; other backslashes stay."""
    return re.sub(r"\\([,|$\\])", r"\1", text)


def escape(text: str) -> str:
    """Escape backslash, comma, pipe and dollar so the text stays one value (undoes unescape)."""
    return re.sub(r"([\\,|$])", r"\\\1", text)


# -- parsing ---------------------------------------------------------------------------------

_RESULT_SINGLE = frozenset(
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
_ENUMS: dict[str, frozenset[str]] = {
    "_total": frozenset({"none", "estimate", "accurate"}),
    "_summary": frozenset({"true", "text", "data", "count", "false"}),
    "_contained": frozenset({"true", "false", "both"}),
    "_containedType": frozenset({"container", "contained"}),
}
_ELEMENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)?$")
_PREFIX_RE = re.compile(r"^([A-Za-z]{2})(.*)$", re.DOTALL)
_SPACE_OFFSET_RE = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:\d{2})$")
_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass
class _Context:
    now: datetime
    local_bases: tuple[str, ...]


def parse_query(
    resource_type: str,
    pairs: Iterable[tuple[str, str]],
    *,
    now: datetime | None = None,
    local_bases: tuple[str, ...] = (),
) -> SearchQuery:
    """Parse ``(name, value)`` pairs of a search on ``resource_type`` into a :class:`SearchQuery`.

    ``now`` anchors ``ap`` on dates (default: the current time); ``local_bases`` are the
    server's base URLs, so absolute references to local resources read as ``Type/id``. Pairs
    with an empty value are ignored, as the R4 search page asks.
    """
    if resource_type not in RESOURCE_TYPES:
        raise ValueError(f"unknown resource type {resource_type!r}")
    context = _Context(now or datetime.now(UTC), local_bases)
    criteria: list[Criterion] = []
    unknown: list[str] = []
    singles: dict[str, str] = {}
    includes: list[Include] = []
    revincludes: list[Include] = []
    for name, value in pairs:
        if value == "":
            continue
        base_name = name.split(":", 1)[0]
        if base_name in ("_include", "_revinclude"):
            target = includes if base_name == "_include" else revincludes
            target.extend(_parse_include(resource_type, name, value))
            continue
        if name in _RESULT_SINGLE:
            if name in singles:
                raise SearchParameterError(name, "may appear only once")
            singles[name] = value
            continue
        criterion = _parse_criterion(resource_type, name, value, context)
        if criterion is None:
            unknown.append(name)
        else:
            criteria.append(criterion)
    result = _result_parameters(resource_type, singles, includes, revincludes)
    return SearchQuery(resource_type, tuple(criteria), result, tuple(unknown))


def _parse_criterion(
    resource_type: str, name: str, value: str, context: _Context
) -> Criterion | None:
    if name.startswith("_has:"):
        return _parse_has(resource_type, name, value, context)
    head, dot, rest = name.partition(".")
    param_name, _, modifier = head.partition(":")
    param = get(resource_type, param_name)
    if param is None:
        return None
    if dot:
        return _parse_chain(resource_type, param, modifier or None, name, rest, value, context)
    return _parse_test(resource_type, param, modifier or None, name, value, context)


def _parse_chain(
    resource_type: str,
    param: SearchParameter,
    type_modifier: str | None,
    name: str,
    rest: str,
    value: str,
    context: _Context,
) -> Chain:
    if param.type != "reference":
        raise SearchParameterError(name, f"{param.name} is a {param.type} parameter: no chaining")
    if not rest:
        raise SearchParameterError(name, "empty chained parameter")
    if type_modifier is not None:
        _check_target_type(param, type_modifier, name)
        candidates: Iterable[str] = (type_modifier,)
    else:
        candidates = sorted(param.targets) if param.targets else resource_types()
    alternatives: list[Criterion] = []
    for target in candidates:
        try:
            inner = _parse_criterion(target, rest, value, context)
        except SearchParameterError as exc:
            raise SearchParameterError(name, exc.message) from exc
        if inner is not None:
            alternatives.append(inner)
    if not alternatives:
        raise SearchParameterError(
            name,
            f"{rest.split('.')[0].split(':')[0]!r} is not a search parameter of "
            f"{', '.join(candidates) if type_modifier else 'any target of ' + param.name}",
        )
    return Chain(resource_type, param, tuple(alternatives))


def _parse_has(resource_type: str, name: str, value: str, context: _Context) -> ReverseChain:
    parts = name.split(":", 3)
    if len(parts) != 4 or not all(parts[1:]):
        raise SearchParameterError(name, "expected _has:Type:reference:parameter")
    _, source_type, reference_name, rest = parts
    if source_type not in RESOURCE_TYPES:
        raise SearchParameterError(name, f"unknown resource type {source_type!r}")
    reference = get(source_type, reference_name)
    if reference is None or reference.type != "reference":
        raise SearchParameterError(
            name, f"{reference_name!r} is not a reference parameter of {source_type}"
        )
    if reference.targets and resource_type not in reference.targets:
        raise SearchParameterError(
            name, f"{source_type}.{reference_name} cannot refer to a {resource_type}"
        )
    try:
        inner = _parse_criterion(source_type, rest, value, context)
    except SearchParameterError as exc:
        raise SearchParameterError(name, exc.message) from exc
    if inner is None:
        raise SearchParameterError(name, f"{rest!r} is not a search parameter of {source_type}")
    return ReverseChain(resource_type, source_type, reference, inner)


def _check_target_type(param: SearchParameter, type_name: str, name: str) -> None:
    if type_name not in RESOURCE_TYPES:
        raise SearchParameterError(name, f"unknown modifier or resource type :{type_name}")
    if param.targets and type_name not in param.targets:
        raise SearchParameterError(name, f"{param.name} cannot refer to a {type_name}")


def _parse_test(
    resource_type: str,
    param: SearchParameter,
    modifier: str | None,
    name: str,
    value: str,
    context: _Context,
) -> ParameterTest:
    target_type = None
    if modifier is not None:
        if param.type == "reference" and modifier[:1].isupper():
            _check_target_type(param, modifier, name)
            target_type, modifier = modifier, None
        elif modifier not in param.modifiers:
            raise SearchParameterError(
                name, f"modifier :{modifier} is not allowed on a {param.type} parameter"
            )
    if modifier == "missing":
        if value not in ("true", "false"):
            raise SearchParameterError(name, ":missing takes true or false")
        return ParameterTest(resource_type, param, modifier, None, (MissingValue(value == "true"),))
    values = tuple(
        _parse_value(param, modifier, target_type, piece, name, context)
        for piece in split_escaped(value, ",")
        if piece != ""
    )
    return ParameterTest(resource_type, param, modifier, target_type, values)


def _parse_value(
    param: SearchParameter,
    modifier: str | None,
    target_type: str | None,
    piece: str,
    name: str,
    context: _Context,
) -> SearchValue:
    kind = param.type
    if kind == "token":
        return _token_value(modifier, piece, name)
    if kind == "string":
        text = unescape(piece)
        return StringValue(text, normalise_string(text))
    if kind == "uri":
        return UriValue(unescape(piece))
    if kind in PREFIXED_TYPES:
        prefix, rest = _split_prefix(piece, name)
        if kind == "date":
            return _date_value(prefix, rest, name, context)
        if kind == "number":
            number, low, high = _number(prefix, unescape(rest), name)
            return NumberValue(prefix, unescape(rest), number, low, high)
        return _quantity_value(prefix, rest, name)
    if kind == "reference":
        if modifier == "identifier":
            token = _token_value(None, piece, name)
            assert isinstance(token, TokenValue)
            return token
        return _reference_value(param, target_type, piece, name, context)
    if kind == "composite":
        return _composite_value(param, piece, name, context)
    return SpecialValue(unescape(piece))


def _token_value(modifier: str | None, piece: str, name: str) -> SearchValue:
    if modifier == "text":
        text = unescape(piece)
        return TextValue(text, normalise_string(text))
    if modifier in ("in", "not-in"):
        return UriValue(unescape(piece))
    parts = split_escaped(piece, "|")
    if modifier == "of-type":
        if len(parts) != 3 or not all(parts):
            raise SearchParameterError(name, ":of-type takes type-system|type-code|value")
        system, code, value = (unescape(part) for part in parts)
        return OfTypeValue(system, code, value)
    if len(parts) == 1:
        return TokenValue(TokenForm.CODE, None, unescape(parts[0]))
    if len(parts) != 2:
        raise SearchParameterError(name, f"too many '|' in token {piece!r}")
    system, code = unescape(parts[0]), unescape(parts[1])
    if not system and not code:
        raise SearchParameterError(name, "a token needs a system or a code")
    if not system:
        return TokenValue(TokenForm.NO_SYSTEM, None, code)
    if not code:
        return TokenValue(TokenForm.SYSTEM_ONLY, system, None)
    return TokenValue(TokenForm.SYSTEM_CODE, system, code)


def _split_prefix(piece: str, name: str) -> tuple[str, str]:
    match = _PREFIX_RE.match(piece)
    if match is None:
        return "eq", piece
    prefix = match.group(1)
    if prefix not in PREFIXES:
        raise SearchParameterError(name, f"unknown prefix {prefix!r}")
    if not match.group(2):
        raise SearchParameterError(name, f"prefix {prefix!r} without a value")
    return prefix, match.group(2)


def _date_value(prefix: str, raw: str, name: str, context: _Context) -> DateValue:
    text = unescape(raw)
    # a "+hh:mm" offset often arrives as " hh:mm" when a client forgets to encode the "+"
    text = _SPACE_OFFSET_RE.sub(r"\1+\2", text)
    try:
        parsed = parse_date_range(text)
    except ValueError as exc:
        raise SearchParameterError(name, f"invalid date {text!r}") from exc
    low, high = parsed.low, parsed.high
    if prefix == "ap":
        gap = abs(context.now - low)
        delta = gap / 10
        low = _shift(low, -delta)
        high = _shift(high, delta)
    return DateValue(prefix, text, low, high, parsed.precision)


def _shift(moment: datetime, delta: timedelta) -> datetime:
    try:
        return moment + delta
    except OverflowError:
        return DATE_MIN if delta < timedelta(0) else DATE_MAX


def _number(prefix: str, text: str, name: str) -> tuple[Decimal, Decimal, Decimal]:
    try:
        number = parse_decimal(text)
    except ValueError as exc:
        raise SearchParameterError(name, f"invalid number {text!r}") from exc
    low, high = decimal_range(number)
    if prefix == "ap":  # R4: approximately means within 10% of the stated value
        delta = abs(number) / 10
        low, high = min(low, number - delta), max(high, number + delta)
    return number, low, high


def _quantity_value(prefix: str, raw: str, name: str) -> QuantityValue:
    parts = split_escaped(raw, "|")
    if len(parts) not in (1, 3):
        raise SearchParameterError(name, "a quantity is number or number|system|code")
    text = unescape(parts[0])
    number, low, high = _number(prefix, text, name)
    system = unescape(parts[1]) if len(parts) == 3 and parts[1] else None
    code = unescape(parts[2]) if len(parts) == 3 and parts[2] else None
    if system is not None and code is None:
        raise SearchParameterError(name, "a quantity system needs a code")
    return QuantityValue(prefix, text, number, low, high, system, code)


def _reference_value(
    param: SearchParameter,
    target_type: str | None,
    piece: str,
    name: str,
    context: _Context,
) -> ReferenceValue:
    parts = split_escaped(piece, "|")
    if len(parts) > 2:
        raise SearchParameterError(name, f"malformed reference {piece!r}")
    text = unescape(parts[0])
    version = unescape(parts[1]) if len(parts) == 2 and parts[1] else None
    if _ID_RE.match(text) and "/" not in text:
        return ReferenceValue(text, target_type, text, None, version)
    parsed = parse_reference(text, context.local_bases)
    if parsed.kind == "relative" and parsed.target_type is None:
        raise SearchParameterError(name, f"malformed reference {text!r}")
    if parsed.kind in ("contained", "conditional"):
        raise SearchParameterError(name, f"cannot search on reference {text!r}")
    found_type = parsed.target_type
    if found_type is not None and parsed.kind == "relative":
        if target_type is not None and found_type != target_type:
            raise SearchParameterError(name, f"{text!r} is not a {target_type}")
        if param.targets and found_type not in param.targets:
            raise SearchParameterError(name, f"{param.name} cannot refer to a {found_type}")
    return ReferenceValue(
        text, found_type or target_type, parsed.target_id, parsed.url, version or parsed.version
    )


def _composite_value(
    param: SearchParameter, piece: str, name: str, context: _Context
) -> CompositeValue:
    parts = split_escaped(piece, "$")
    if len(parts) != len(param.components):
        raise SearchParameterError(
            name, f"expected {len(param.components)} '$'-separated parts, got {len(parts)}"
        )
    values: list[SearchValue] = []
    for component, part in zip(param.components, parts, strict=True):
        definition = get(param.resource_type, component.definition)
        if definition is None:  # pragma: no cover - guarded by the data tests
            raise SearchParameterError(name, f"unknown component {component.definition!r}")
        if not part:
            raise SearchParameterError(name, "empty composite component")
        values.append(_parse_value(definition, None, None, part, name, context))
    return CompositeValue(tuple(values))


# -- result parameters -----------------------------------------------------------------------


def _non_negative(name: str, value: str) -> int:
    if not value.isdigit():
        raise SearchParameterError(name, f"expected a non-negative integer, got {value!r}")
    return int(value)


def _result_parameters(
    resource_type: str,
    singles: dict[str, str],
    includes: list[Include],
    revincludes: list[Include],
) -> ResultParameters:
    for name, allowed in _ENUMS.items():
        if name in singles and singles[name] not in allowed:
            raise SearchParameterError(
                name, f"expected one of {', '.join(sorted(allowed))}, got {singles[name]!r}"
            )
    pretty = singles.get("_pretty")
    if pretty is not None and pretty not in ("true", "false"):
        raise SearchParameterError("_pretty", "expected true or false")
    elements: tuple[str, ...] = ()
    if "_elements" in singles:
        elements = tuple(part.strip() for part in singles["_elements"].split(",") if part.strip())
        for element in elements:
            if not _ELEMENT_RE.match(element):
                raise SearchParameterError("_elements", f"invalid element name {element!r}")
    return ResultParameters(
        count=_non_negative("_count", singles["_count"]) if "_count" in singles else None,
        offset=_non_negative("_offset", singles["_offset"]) if "_offset" in singles else None,
        sort=_parse_sort(resource_type, singles["_sort"]) if "_sort" in singles else (),
        total=singles.get("_total"),
        summary=singles.get("_summary"),
        elements=elements,
        include=tuple(includes),
        revinclude=tuple(revincludes),
        contained=singles.get("_contained"),
        contained_type=singles.get("_containedType"),
        format=singles.get("_format"),
        pretty=None if pretty is None else pretty == "true",
    )


def _parse_sort(resource_type: str, value: str) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    for raw in value.split(","):
        key = raw.strip()
        if not key:
            continue
        descending = key.startswith("-")
        name = key[1:] if descending else key
        param = get(resource_type, name)
        if param is None:
            raise SearchParameterError(
                "_sort", f"{name!r} is not a search parameter of {resource_type}"
            )
        if param.type in ("composite", "special"):
            raise SearchParameterError("_sort", f"cannot sort on {param.type} parameter {name!r}")
        keys.append(SortKey(param, descending))
    return tuple(keys)


def _parse_include(resource_type: str, name: str, value: str) -> list[Include]:
    base, _, modifier = name.partition(":")
    if modifier not in ("", "iterate", "recurse"):
        raise SearchParameterError(name, f"unknown modifier :{modifier}")
    iterate = modifier in ("iterate", "recurse")  # :recurse is the R3 spelling
    reverse = base == "_revinclude"
    results: list[Include] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "*":
            results.append(Include(None, None, None, iterate))
            continue
        parts = item.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise SearchParameterError(name, f"expected Type:parameter[:TargetType], got {item!r}")
        source_type, param_name = parts[0], parts[1]
        target_type = parts[2] if len(parts) == 3 else None
        if source_type not in RESOURCE_TYPES:
            raise SearchParameterError(name, f"unknown resource type {source_type!r}")
        if not iterate and not reverse and source_type != resource_type:
            raise SearchParameterError(
                name, f"{source_type} is not the searched type {resource_type} (use :iterate)"
            )
        if param_name == "*":
            results.append(Include(source_type, None, target_type, iterate))
            continue
        param = get(source_type, param_name)
        if param is None or param.type != "reference":
            raise SearchParameterError(
                name, f"{param_name!r} is not a reference parameter of {source_type}"
            )
        if target_type is not None:
            _check_target_type(param, target_type, name)
        if reverse and not iterate and param.targets and resource_type not in param.targets:
            raise SearchParameterError(
                name, f"{source_type}.{param_name} cannot refer to a {resource_type}"
            )
        results.append(Include(source_type, param, target_type, iterate))
    return results
