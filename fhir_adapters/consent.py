"""A FHIR R4 Consent about sharing (scope ``patient-privacy``), read into flat provision rules.

The register enforces a patient's Consent in SQL (``register/visibility.py``), so the nested
provisions of R4 (https://hl7.org/fhir/R4/consent.html) are flattened here into
:class:`ProvisionRule`\\ s: one rule per combination of the criteria a provision states, each
carrying the criteria of the provisions it is nested in (a nested provision is an exception
*within* its parent, so its parent's criteria hold too), its depth and its effect. Evaluation:
the deepest rules that match a resource decide, deny winning a tie.

Criteria understood, per provision: ``type`` (permit | deny, required), ``actor.reference``
(an Organization: ``Organization/id`` or an ODS-code identifier), ``purpose`` (v3-ActReason
codes), ``class`` (resource types), ``code`` (any coding), ``securityLabel``, ``dataPeriod``
(the data's clinical date) and ``period`` (when the provision applies). ``action`` is accepted
and not evaluated (every provision governs disclosure); ``data`` (specific resources) is refused,
as are actors that are not organisations. Without a root ``provision``, ``policyRule`` OPTIN
(permit) or OPTOUT (deny) sets the base rule; with neither, the Consent agrees to the
register's default model and adds no rule.

Pure: no database. Organisation references are resolved to ODS codes by the caller's function.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_adapters.operation_outcome import Issue, error
from fhir_adapters.resource_types import is_resource_type
from fhir_adapters.search_values import parse_date_range

SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
PATIENT_PRIVACY = "patient-privacy"
RESOURCE_TYPES_SYSTEM = "http://hl7.org/fhir/resource-types"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
MAX_RULES = 500
"""Most flat rules one Consent may expand into (a provision's criteria multiply)."""
MAX_DEPTH = 8

OrgResolver = Callable[[str], str | None]
"""``Organization/id`` -> its ODS code, or None when the register does not know it."""


@dataclass(frozen=True)
class ProvisionRule:
    """One flat rule: when every stated criterion holds, the rule's effect applies."""

    path: str
    """The provision it comes from, as a FHIRPath (``Consent.provision.provision[1]``)."""
    depth: int
    effect: str  # permit | deny
    actor: str | None = None  # ODS code
    purpose: str | None = None  # v3-ActReason code
    resource_type: str | None = None
    code: tuple[str | None, str] | None = None  # (system, code)
    label: tuple[str | None, str] | None = None  # (system, code)
    data_start: datetime | None = None
    data_end: datetime | None = None  # exclusive
    valid_from: datetime | None = None
    valid_to: datetime | None = None  # exclusive


class ConsentInvalid(Exception):
    """The Consent cannot be enforced as written; ``issues`` name the elements at fault."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(i.diagnostics for i in issues))
        self.issues = issues


def is_sharing_consent(resource: dict[str, Any]) -> bool:
    """Whether a Consent is about sharing the patient's record (scope ``patient-privacy``)."""
    scope = resource.get("scope")
    codings = scope.get("coding") if isinstance(scope, dict) else None
    return any(
        isinstance(c, dict)
        and c.get("code") == PATIENT_PRIVACY
        and c.get("system") in (None, SCOPE_SYSTEM)
        for c in codings or []
    )


def patient_reference(resource: dict[str, Any]) -> str | None:
    """The id of the Patient a Consent is about (``Consent.patient``: ``Patient/id``)."""
    patient = resource.get("patient")
    ref = patient.get("reference") if isinstance(patient, dict) else None
    if not isinstance(ref, str):
        return None
    kind, _, rid = ref.rstrip("/").rpartition("/")
    return rid if kind.endswith("Patient") and rid else None


def in_force(resource: dict[str, Any]) -> bool:
    """Whether a sharing Consent is in force (status ``active``)."""
    return resource.get("status") == "active"


def rules_of(resource: dict[str, Any], resolve_org: OrgResolver) -> list[ProvisionRule]:
    """The flat rules of a sharing Consent; raises :class:`ConsentInvalid` naming each element
    the register cannot enforce as written."""
    issues: list[Issue] = []
    if patient_reference(resource) is None:
        issues.append(
            error("required", "A sharing Consent must name its Patient.", "Consent.patient")
        )
    root = resource.get("provision")
    rules: list[ProvisionRule] = []
    if isinstance(root, dict):
        _walk(root, "Consent.provision", 0, _Criteria(), resolve_org, rules, issues)
    else:
        # No provisions: OPTIN/OPTOUT policy rules set the base; otherwise the patient agrees
        # to the register's default model, and no rule is added.
        effect = _policy_rule_effect(resource)
        if effect is not None:
            rules.append(ProvisionRule("Consent.policyRule", 0, effect))
    if len(rules) > MAX_RULES:
        issues.append(
            error(
                "too-costly",
                f"The provisions expand into more than {MAX_RULES} rules; state fewer "
                "combinations of actors, classes, codes and labels per provision.",
                "Consent.provision",
            )
        )
    if issues:
        raise ConsentInvalid(issues)
    return rules


def _policy_rule_effect(resource: dict[str, Any]) -> str | None:
    rule = resource.get("policyRule")
    for coding in (rule.get("coding") if isinstance(rule, dict) else None) or []:
        if isinstance(coding, dict) and coding.get("system") in (None, ACT_CODE):
            if coding.get("code") == "OPTIN":
                return "permit"
            if coding.get("code") == "OPTOUT":
                return "deny"
    return None


@dataclass(frozen=True)
class _Criteria:
    """The criteria in force at one provision: None means "any"; a set, "one of these"."""

    actor: frozenset[str] | None = None
    purpose: frozenset[str] | None = None
    resource_type: frozenset[str] | None = None
    code: frozenset[tuple[str | None, str]] | None = None
    label: frozenset[tuple[str | None, str]] | None = None
    data: tuple[datetime | None, datetime | None] = (None, None)
    valid: tuple[datetime | None, datetime | None] = (None, None)

    def narrowed(self, **values: Any) -> _Criteria:
        """These criteria and a nested provision's (both must hold)."""
        merged = dict(self.__dict__)
        for name, value in values.items():
            if value is None:
                continue
            if name in ("data", "valid"):
                merged[name] = _intersect(merged[name], value)
            else:
                merged[name] = value if merged[name] is None else merged[name] & value
        return _Criteria(**merged)

    @property
    def empty(self) -> bool:
        """No resource can meet these criteria (an empty intersection)."""
        sets = (self.actor, self.purpose, self.resource_type, self.code, self.label)
        if any(s is not None and not s for s in sets):
            return True
        return any(
            lo is not None and hi is not None and lo >= hi for lo, hi in (self.data, self.valid)
        )


def _intersect(
    a: tuple[datetime | None, datetime | None], b: tuple[datetime | None, datetime | None]
) -> tuple[datetime | None, datetime | None]:
    starts = [x for x in (a[0], b[0]) if x is not None]
    ends = [x for x in (a[1], b[1]) if x is not None]
    return (max(starts) if starts else None, min(ends) if ends else None)


def _walk(
    node: dict[str, Any],
    path: str,
    depth: int,
    inherited: _Criteria,
    resolve_org: OrgResolver,
    rules: list[ProvisionRule],
    issues: list[Issue],
) -> None:
    if depth >= MAX_DEPTH:
        issues.append(error("too-costly", f"Provisions nest at most {MAX_DEPTH} deep.", path))
        return
    effect = node.get("type")
    if effect not in ("permit", "deny"):
        issues.append(
            error("required", "Each provision needs a type: permit or deny.", f"{path}.type")
        )
    if node.get("data"):
        issues.append(
            error(
                "not-supported",
                "Provisions about specific resources (data) are not supported; use class, "
                "code, securityLabel or dataPeriod.",
                f"{path}.data",
            )
        )
    before = len(issues)
    criteria = inherited.narrowed(
        actor=_actors(node.get("actor"), path, resolve_org, issues),
        purpose=_codings(node.get("purpose"), f"{path}.purpose", issues, code_only=True),
        resource_type=_classes(node.get("class"), path, issues),
        code=_concepts(node.get("code"), f"{path}.code", issues),
        label=_codings(node.get("securityLabel"), f"{path}.securityLabel", issues),
        data=_period(node.get("dataPeriod"), f"{path}.dataPeriod", issues),
        valid=_period(node.get("period"), f"{path}.period", issues),
    )
    if len(issues) == before and effect in ("permit", "deny") and not criteria.empty:
        rules.extend(_expand(criteria, path, depth, effect))
        if len(rules) > MAX_RULES:
            return
    children = node.get("provision") or []
    for index, child in enumerate(children if isinstance(children, list) else []):
        if isinstance(child, dict):
            _walk(
                child, f"{path}.provision[{index}]", depth + 1, criteria, resolve_org, rules, issues
            )


def _expand(criteria: _Criteria, path: str, depth: int, effect: str) -> Iterable[ProvisionRule]:
    def options(values: frozenset[Any] | None) -> list[Any]:
        return [None] if values is None else sorted(values, key=repr)

    for actor, purpose, rtype, code, label in itertools.product(
        options(criteria.actor),
        options(criteria.purpose),
        options(criteria.resource_type),
        options(criteria.code),
        options(criteria.label),
    ):
        yield ProvisionRule(
            path,
            depth,
            effect,
            actor=actor,
            purpose=purpose,
            resource_type=rtype,
            code=code,
            label=label,
            data_start=criteria.data[0],
            data_end=criteria.data[1],
            valid_from=criteria.valid[0],
            valid_to=criteria.valid[1],
        )


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _actors(
    value: Any, path: str, resolve_org: OrgResolver, issues: list[Issue]
) -> frozenset[str] | None:
    if not value:
        return None
    found: set[str] = set()
    for index, actor in enumerate(_items(value)):
        where = f"{path}.actor[{index}].reference"
        ref = actor.get("reference") if isinstance(actor, dict) else None
        if not isinstance(ref, dict):
            issues.append(error("required", "An actor needs a reference.", where))
            continue
        ident = ref.get("identifier")
        if isinstance(ident, dict) and ident.get("system") == ODS_SYSTEM and ident.get("value"):
            found.add(str(ident["value"]))
            continue
        text = ref.get("reference")
        kind, _, rid = (text or "").rstrip("/").rpartition("/")
        if not kind.endswith("Organization") or not rid:
            issues.append(
                error(
                    "not-supported",
                    "Actors must be organisations (Organization/id, or an identifier with an "
                    "ODS code).",
                    where,
                )
            )
            continue
        code = resolve_org(f"Organization/{rid}")
        if code is None:
            issues.append(
                error("not-found", f"Organization/{rid} is not known here with an ODS code.", where)
            )
            continue
        found.add(code)
    return frozenset(found)


def _classes(value: Any, path: str, issues: list[Issue]) -> frozenset[str] | None:
    if not value:
        return None
    found: set[str] = set()
    for index, coding in enumerate(_items(value)):
        where = f"{path}.class[{index}]"
        code = coding.get("code") if isinstance(coding, dict) else None
        system = coding.get("system") if isinstance(coding, dict) else None
        if system not in (None, RESOURCE_TYPES_SYSTEM) or not isinstance(code, str):
            issues.append(
                error(
                    "not-supported",
                    f"A class must be a resource type (system {RESOURCE_TYPES_SYSTEM}).",
                    where,
                )
            )
        elif not is_resource_type(code):
            issues.append(
                error("code-invalid", f"'{code[:64]}' is not an R4 resource type.", where)
            )
        else:
            found.add(code)
    return frozenset(found)


def _codings(
    value: Any, path: str, issues: list[Issue], *, code_only: bool = False
) -> frozenset[Any] | None:
    if not value:
        return None
    found: set[Any] = set()
    for index, coding in enumerate(_items(value)):
        code = coding.get("code") if isinstance(coding, dict) else None
        if not isinstance(code, str) or not code:
            issues.append(error("required", "A coding needs a code.", f"{path}[{index}]"))
            continue
        found.add(code if code_only else (coding.get("system"), code))
    return frozenset(found)


def _concepts(value: Any, path: str, issues: list[Issue]) -> frozenset[Any] | None:
    if not value:
        return None
    found: set[Any] = set()
    for index, concept in enumerate(_items(value)):
        codings = concept.get("coding") if isinstance(concept, dict) else None
        got = _codings(codings, f"{path}[{index}].coding", issues)
        if not got:
            issues.append(
                error("required", "A code needs at least one coding.", f"{path}[{index}]")
            )
            continue
        found |= got
    return frozenset(found)


def _period(
    value: Any, path: str, issues: list[Issue]
) -> tuple[datetime | None, datetime | None] | None:
    if not isinstance(value, dict):
        return None
    bounds: list[datetime | None] = []
    for key, edge in (("start", "low"), ("end", "high")):
        text = value.get(key)
        if text is None:
            bounds.append(None)
            continue
        try:
            bounds.append(getattr(parse_date_range(str(text)), edge))
        except ValueError:
            issues.append(error("value", "Not a valid date.", f"{path}.{key}"))
            return None
    start, end = bounds
    if start is not None and end is not None and start >= end:
        issues.append(error("value", "The period ends before it starts.", path))
        return None
    return start, end
