"""SMART on FHIR scopes: parsing (v1 and v2), checks, query constraints and narrowing.

Clinical scopes have the form ``<context>/<type>.<permissions>[?<constraints>]``:

- context: ``patient`` (the patient in context), ``user`` (what the user may see), ``system``
  (what the client's policy allows);
- type: a FHIR resource type or ``*``;
- permissions: v2 is a non-empty, in-order subset of ``cruds`` (create, read, update, delete,
  search); v1 is ``read`` (= ``rs``), ``write`` (= ``cud``) or ``*`` (= ``cruds``);
- constraints (v2 only): ``?param=value&param=value``, FHIR search syntax, e.g.
  ``patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory``.
  Every parameter must hold (AND); a comma inside a value separates alternatives (OR).

Scopes only ever *narrow* what the policy allows (SMART: "such rights are always limited by
underlying system policies and permissions"); they are one input of ``auth.policy``.

Constraint matching supports token-style equality (``code``, ``system|code``, ``|code``,
``system|``) on plain parameter names. Modifiers (``code:in``) and chains (``patient.birthdate``)
are parsed but never match anything: access they would grant is refused, not guessed.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote, unquote


class ScopeError(ValueError):
    """A scope that claims to be a clinical scope but breaks the grammar."""


class ScopeContext(StrEnum):
    """Whose data a clinical scope is about."""

    PATIENT = "patient"
    USER = "user"
    SYSTEM = "system"


class Interaction(StrEnum):
    """The five SMART v2 permissions, named after the FHIR interactions they allow."""

    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    SEARCH = "search"

    @property
    def letter(self) -> str:
        """The permission letter in a v2 scope (``c``, ``r``, ``u``, ``d``, ``s``)."""
        return _LETTERS[self]


_ORDER = "cruds"
_LETTERS: dict[Interaction, str] = {
    Interaction.CREATE: "c",
    Interaction.READ: "r",
    Interaction.UPDATE: "u",
    Interaction.DELETE: "d",
    Interaction.SEARCH: "s",
}
_BY_LETTER = {letter: interaction for interaction, letter in _LETTERS.items()}
_V1: dict[str, frozenset[Interaction]] = {
    "read": frozenset({Interaction.READ, Interaction.SEARCH}),
    "write": frozenset({Interaction.CREATE, Interaction.UPDATE, Interaction.DELETE}),
    "*": frozenset(Interaction),
}
_V1_BY_SET = {interactions: name for name, interactions in _V1.items()}

_CLINICAL = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{0,63})"
    r"\.(?P<perms>[^?]+)(?:\?(?P<query>.*))?$"
)
_V2_PERMS = re.compile(r"^c?r?u?d?s?$")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(?:[.:][A-Za-z0-9_\-]+)*$")
_SIMPLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_QUOTE_SAFE = "".join(c for c in string.punctuation if c not in "%&#")


TokenValue = tuple[str | None, str | None]
"""One coded value of a resource for a search parameter: ``(system, code)``."""

TokenValues = Mapping[str, Iterable[TokenValue]]
"""A resource's coded values by search parameter name, e.g.
``{"category": [("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory")]}``.
"""


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is not escaped with a backslash (FHIR search escaping)."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


@dataclass(frozen=True, order=True)
class Constraint:
    """One ``param=value`` of a scope's query; ``values`` are alternatives (FHIR comma = OR).

    Values are kept as written (percent-decoded, FHIR backslash escapes intact).
    """

    name: str
    values: tuple[str, ...]

    @property
    def supported(self) -> bool:
        """Whether this register can evaluate it: a plain name, no modifier or chain."""
        return bool(_SIMPLE_NAME.match(self.name))

    def tokens(self) -> tuple[tuple[str | None, str | None], ...]:
        """The alternatives as ``(system, code)``; ``None`` means "any".

        ``code`` -> ``(None, code)``; ``system|code``; ``|code`` -> ``("", code)`` (no system);
        ``system|`` -> ``(system, None)``.
        """
        out: list[tuple[str | None, str | None]] = []
        for value in self.values:
            parts = _split_unescaped(value, "|")
            if len(parts) == 1:
                out.append((None, _unescape(parts[0])))
            else:
                system, code = _unescape(parts[0]), _unescape("|".join(parts[1:]))
                out.append((system, code or None))
        return tuple(out)

    def matches(self, values: TokenValues) -> bool:
        """Whether a resource with these token values satisfies this constraint."""
        if not self.supported:
            return False
        have = list(values.get(self.name, ()))
        for want_system, want_code in self.tokens():
            for system, code in have:
                if want_code is not None and code != want_code:
                    continue
                if want_system is None:
                    return True
                if want_system == "" and not system:
                    return True
                if want_system != "" and system == want_system:
                    return True
        return False

    def render(self) -> str:
        """``name=value`` as it appears in a scope string (spaces and ``&`` percent-encoded)."""
        return f"{self.name}=" + ",".join(quote(v, safe=_QUOTE_SAFE) for v in self.values)


def _parse_constraints(query: str) -> tuple[Constraint, ...]:
    constraints = set()
    for item in query.split("&"):
        name, sep, raw = item.partition("=")
        if not sep or not _PARAM_NAME.match(name):
            raise ScopeError("a scope constraint must be param=value")
        # Percent-decode first (as a URL query would be), then split on commas that are not
        # backslash-escaped; the escapes stay in the values for tokens().
        values = tuple(_split_unescaped(unquote(raw), ","))
        if not values or any(v == "" for v in values):
            raise ScopeError("a scope constraint needs a value")
        constraints.add(Constraint(name, values))
    return tuple(sorted(constraints))


@dataclass(frozen=True)
class ResourceScope:
    """One clinical scope: context, resource type (or ``*``), permissions, constraints.

    ``v1`` records only how the scope was written, so it can be written back the same way; it
    plays no part in equality or in what the scope grants.
    """

    context: ScopeContext
    resource_type: str
    interactions: frozenset[Interaction]
    constraints: tuple[Constraint, ...] = ()
    v1: bool = field(default=False, compare=False)

    def covers(self, resource_type: str) -> bool:
        """Whether this scope is about ``resource_type`` (directly or through ``*``)."""
        return self.resource_type in ("*", resource_type)

    def grants(self, context: ScopeContext, resource_type: str, interaction: Interaction) -> bool:
        """Whether this scope allows the interaction (before its constraints are applied)."""
        return (
            self.context == context
            and self.covers(resource_type)
            and interaction in self.interactions
        )

    @property
    def supported(self) -> bool:
        """Whether every constraint can be evaluated here (see :attr:`Constraint.supported`)."""
        return all(c.supported for c in self.constraints)

    def __str__(self) -> str:
        perms: str
        if self.v1 and not self.constraints and self.interactions in _V1_BY_SET:
            perms = _V1_BY_SET[self.interactions]
        else:
            perms = "".join(c for c in _ORDER if _BY_LETTER[c] in self.interactions)
        text = f"{self.context.value}/{self.resource_type}.{perms}"
        if self.constraints:
            text += "?" + "&".join(c.render() for c in self.constraints)
        return text


def parse_scope(text: str) -> ResourceScope | None:
    """Parse one scope: a ``ResourceScope`` for a clinical scope, ``None`` for any other scope
    (``openid``, ``launch/patient``, ...); ``ScopeError`` for a malformed clinical scope.

    Malformed includes out-of-order or unknown permissions (``.dus``, ``.rd?``), v1 permissions
    with a query, and empty constraints. SMART lets a server ignore such requests; the caller
    decides whether to ignore or refuse (:func:`parse_scopes` collects them as ``invalid``).
    """
    if not text.startswith(("patient/", "user/", "system/")):
        return None
    match = _CLINICAL.match(text)
    if match is None:
        raise ScopeError("not a clinical scope of the form context/Type.permissions")
    perms, query = match.group("perms"), match.group("query")
    if perms in _V1:
        if query is not None:
            raise ScopeError("v1 scopes take no query constraints")
        interactions, v1 = _V1[perms], True
    elif perms and _V2_PERMS.match(perms):
        interactions, v1 = frozenset(_BY_LETTER[c] for c in perms), False
    else:
        raise ScopeError("permissions must be read, write, * or an in-order subset of cruds")
    constraints = _parse_constraints(query) if query is not None else ()
    return ResourceScope(
        context=ScopeContext(match.group("context")),
        resource_type=match.group("type"),
        interactions=interactions,
        constraints=constraints,
        v1=v1,
    )


@dataclass(frozen=True)
class ScopeSet:
    """A parsed ``scope`` string: clinical scopes, other scopes, and the malformed leftovers."""

    resource: tuple[ResourceScope, ...] = ()
    other: frozenset[str] = frozenset()
    invalid: tuple[str, ...] = ()

    def __str__(self) -> str:
        """The scope string (clinical scopes in order, then the others sorted); ``invalid``
        scopes are left out."""
        return " ".join([*(str(s) for s in self.resource), *sorted(self.other)])

    def __bool__(self) -> bool:
        return bool(self.resource or self.other)


def parse_scopes(text: str | Iterable[str]) -> ScopeSet:
    """Parse a space-separated scope string (or a list of scopes) into a :class:`ScopeSet`.

    Never raises: malformed clinical scopes land in ``invalid`` and grant nothing, so the token
    endpoint can refuse them (``invalid_scope``) while a verifier simply ignores them.
    """
    items = text.split() if isinstance(text, str) else [t for s in text for t in s.split()]
    resource: list[ResourceScope] = []
    other: set[str] = set()
    invalid: list[str] = []
    for item in items:
        try:
            parsed = parse_scope(item)
        except ScopeError:
            invalid.append(item)
            continue
        if parsed is None:
            other.add(item)
        elif parsed not in resource:
            resource.append(parsed)
    return ScopeSet(tuple(resource), frozenset(other), tuple(invalid))


def _resource_scopes(scopes: ScopeSet | Iterable[ResourceScope]) -> Iterable[ResourceScope]:
    return scopes.resource if isinstance(scopes, ScopeSet) else scopes


def _contexts(context: ScopeContext | Iterable[ScopeContext]) -> frozenset[ScopeContext]:
    if isinstance(context, ScopeContext):
        return frozenset({context})
    return frozenset(context)


@dataclass(frozen=True)
class Access:
    """What a set of scopes allows for one (contexts, resource type, interaction).

    - ``allowed`` False: nothing.
    - ``allowed`` True and no ``filters``: every resource of the type (as far as scopes go).
    - ``allowed`` True with ``filters``: only resources matching at least one group, where a
      group matches when all its constraints do. Search adds the groups as SQL filters; read,
      update and create check the resource with :meth:`matches`.
    """

    allowed: bool
    filters: tuple[tuple[Constraint, ...], ...] = ()

    @property
    def unrestricted(self) -> bool:
        """Allowed with no query constraint at all."""
        return self.allowed and not self.filters

    def matches(self, values: TokenValues) -> bool:
        """Whether a resource with these token values falls inside the access."""
        if not self.allowed:
            return False
        if not self.filters:
            return True
        return any(all(c.matches(values) for c in group) for group in self.filters)


def access(
    scopes: ScopeSet | Iterable[ResourceScope],
    context: ScopeContext | Iterable[ScopeContext],
    resource_type: str,
    interaction: Interaction | str,
) -> Access:
    """What ``scopes`` allow for ``interaction`` on ``resource_type`` in the given context(s).

    ``context`` says which scope prefixes count: the policy passes ``PATIENT`` when checking
    access to the patient in context, ``USER`` for a person's own permissions, ``SYSTEM`` for a
    backend client (or several at once).
    """
    wanted = Interaction(interaction)
    contexts = _contexts(context)
    groups: list[tuple[Constraint, ...]] = []
    for scope in _resource_scopes(scopes):
        if (
            scope.context in contexts
            and scope.covers(resource_type)
            and (wanted in scope.interactions)
        ):
            if not scope.constraints:
                return Access(allowed=True)
            if scope.constraints not in groups:
                groups.append(scope.constraints)
    return Access(allowed=bool(groups), filters=tuple(groups))


def permits(
    scopes: ScopeSet | Iterable[ResourceScope],
    context: ScopeContext | Iterable[ScopeContext],
    resource_type: str,
    interaction: Interaction | str,
) -> bool:
    """Whether any scope allows the interaction, possibly only under query constraints.

    A True answer with constraints still needs :func:`access` (``filters`` / ``matches``) to
    know *which* resources; use this for "may the request start at all".
    """
    return access(scopes, context, resource_type, interaction).allowed


# -- narrowing --------------------------------------------------------------------------------


def _intersect(requested: ResourceScope, registered: ResourceScope) -> ResourceScope | None:
    if requested.context != registered.context:
        return None
    if requested.resource_type == "*":
        resource_type = registered.resource_type
    elif registered.resource_type in ("*", requested.resource_type):
        resource_type = requested.resource_type
    else:
        return None
    interactions = requested.interactions & registered.interactions
    if not interactions:
        return None
    constraints = tuple(sorted(set(requested.constraints) | set(registered.constraints)))
    return ResourceScope(
        requested.context, resource_type, interactions, constraints, v1=requested.v1
    )


def _subsumes(broad: ResourceScope, narrow_: ResourceScope) -> bool:
    return (
        broad.context == narrow_.context
        and broad.resource_type in ("*", narrow_.resource_type)
        and narrow_.interactions <= broad.interactions
        and set(broad.constraints) <= set(narrow_.constraints)
    )


def simplify(scopes: Iterable[ResourceScope]) -> tuple[ResourceScope, ...]:
    """An equivalent, shorter list: scopes differing only in permissions are merged
    (``Observation.r`` + ``Observation.s`` -> ``Observation.rs``) and scopes implied by a
    broader one are dropped. Grants exactly what the input grants; sorted for stable output."""
    merged: dict[tuple[ScopeContext, str, tuple[Constraint, ...]], ResourceScope] = {}
    for scope in scopes:
        key = (scope.context, scope.resource_type, scope.constraints)
        if key in merged:
            seen = merged[key]
            merged[key] = ResourceScope(
                scope.context,
                scope.resource_type,
                seen.interactions | scope.interactions,
                scope.constraints,
                v1=seen.v1 and scope.v1,
            )
        else:
            merged[key] = scope
    unique = list(merged.values())
    kept = [s for s in unique if not any(o is not s and _subsumes(o, s) for o in unique)]
    return tuple(sorted(kept, key=str))


def narrow(requested: ScopeSet, registered: ScopeSet) -> ScopeSet:
    """The scopes to grant: what was requested, cut down to what the client is registered for.

    Clinical scopes are intersected pairwise (wildcards, v1/v2 equivalence and constraints
    understood: ``patient/*.read`` against ``patient/Observation.rs?category=x`` gives
    ``patient/Observation.rs?category=x``); the result allows a request exactly when both sides
    do. Other scopes (``openid``, ``launch/patient``, ...) pass only if registered verbatim.
    Malformed requested scopes are dropped.
    """
    pieces = [
        piece
        for want in requested.resource
        for have in registered.resource
        if (piece := _intersect(want, have)) is not None
    ]
    return ScopeSet(
        resource=simplify(pieces),
        other=requested.other & registered.other,
    )
