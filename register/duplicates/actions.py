"""A resource read as the care actions it records: tests, orders, prescriptions, questions asked,
facts held, registrations. Pure functions of the resource and the configuration.

An action is what the duplicate rules compare; the register keeps every action in its action
log (``care_action``), which also gives the denominators for rates ("per 1,000 tests").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from fhir_adapters.sourced import parse_instant
from register.duplicates.config import DuplicateConfig

# The register's own extension for a clinician's reason to repeat an action on purpose.
REPEAT_REASON_URL = "https://fhir.shared-care-register.nhs.uk/StructureDefinition/repeat-reason"
# Set by $populate on an answer it pre-filled, with the source record and a digest of the value;
# an answer whose value still matches the digest was confirmed, not asked afresh.
PREFILL_SOURCE_URL = "https://fhir.shared-care-register.nhs.uk/StructureDefinition/prefill-source"

INACTIVE_STATUSES = frozenset(
    {"cancelled", "entered-in-error", "revoked", "stopped", "completed-in-error", "refuted"}
)
OPEN_ORDER_STATUSES = frozenset({"draft", "active", "on-hold"})


@dataclass(frozen=True)
class CareAction:
    """One thing done or recorded for a patient, in the terms the duplicate rules need."""

    kind: str  # test | order | referral | prescription | question | fact | registration
    group: str  # retest group, "medication", question concept, or "sr:<code>"
    resource_type: str
    resource_id: str
    occurred_at: datetime
    status: str = "active"
    codes: frozenset[str] = frozenset()
    ingredients: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()
    org: str | None = None
    practitioner: str | None = None
    encounter: str | None = None
    linked: frozenset[str] = field(default_factory=frozenset)  # basedOn, result, partOf ...
    value: float | None = None
    unit: str | None = None
    reason: str | None = None
    confirmed: bool = False  # a question answered by confirming a pre-filled answer

    @property
    def reference(self) -> str:
        """``Type/id`` of the resource that records the action."""
        return f"{self.resource_type}/{self.resource_id}"

    @property
    def active(self) -> bool:
        """Whether the action still stands (not cancelled, stopped or entered in error)."""
        return self.status not in INACTIVE_STATUSES


def _codes(concept: Any) -> frozenset[str]:
    if not isinstance(concept, dict):
        return frozenset()
    return frozenset(
        f"{c.get('system', '')}|{c['code']}"
        for c in concept.get("coding", [])
        if isinstance(c, dict) and c.get("code")
    )


def _ref(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        return value["reference"]
    return None


def _refs(values: Any) -> frozenset[str]:
    if isinstance(values, dict):
        values = [values]
    if not isinstance(values, list):
        return frozenset()
    return frozenset(r for r in (_ref(v) for v in values) if r)


def _first_time(resource: dict[str, Any], *names: str) -> datetime | None:
    for name in names:
        value = resource.get(name)
        if isinstance(value, dict):  # Period
            value = value.get("start") or value.get("end")
        moment = parse_instant(value)
        if moment is not None:
            return moment
    return None


def _reason(resource: dict[str, Any]) -> str | None:
    for ext in resource.get("extension", []) or []:
        if isinstance(ext, dict) and ext.get("url") == REPEAT_REASON_URL:
            text = ext.get("valueString")
            if isinstance(text, str) and text.strip():
                return text.strip()[:500]
            concept = ext.get("valueCodeableConcept")
            if isinstance(concept, dict):
                return (concept.get("text") or next(iter(_codes(concept)), ""))[:500] or None
    return None


def _practitioner(resource: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = resource.get(name)
        for ref in [_ref(v) for v in value] if isinstance(value, list) else [_ref(value)]:
            if ref and ref.split("/", 1)[0] in ("Practitioner", "PractitionerRole"):
                return ref
    return None


def _org_reference(resource: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = resource.get(name)
        for ref in [_ref(v) for v in value] if isinstance(value, list) else [_ref(value)]:
            if ref and ref.startswith("Organization/"):
                return ref
    return None


def actions_of(
    resource: dict[str, Any],
    config: DuplicateConfig,
    *,
    author_org: str | None,
    recorded_at: datetime,
) -> list[CareAction]:
    """The care actions a resource records (empty for resources that record none)."""
    kind = resource.get("resourceType")
    handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
    if handler is None or not isinstance(resource.get("id"), str):
        return []
    return list(handler(resource, config, author_org, recorded_at))


def _base(
    resource: dict[str, Any],
    author_org: str | None,
    occurred: datetime,
    *,
    org_fields: tuple[str, ...] = (),
    practitioner_fields: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "resource_type": resource["resourceType"],
        "resource_id": resource["id"],
        "occurred_at": occurred,
        "status": str(resource.get("status") or "active"),
        "org": author_org or _org_reference(resource, *org_fields),
        "practitioner": _practitioner(resource, *practitioner_fields),
        "encounter": _ref(resource.get("encounter")) or _ref(resource.get("context")),
        "reason": _reason(resource),
    }


def _tests(
    resource: dict[str, Any], config: DuplicateConfig, author_org: str | None, recorded: datetime
) -> Iterator[CareAction]:
    codes = _codes(resource.get("code"))
    groups = {config.code_to_group[c] for c in codes if c in config.code_to_group}
    kind = resource["resourceType"]
    if kind == "ServiceRequest":
        occurred = _first_time(resource, "occurrenceDateTime", "authoredOn") or recorded
        base = _base(
            resource,
            author_org,
            occurred,
            org_fields=("requester",),
            practitioner_fields=("requester",),
        )
        linked = _refs(resource.get("basedOn")) | _refs(resource.get("replaces"))
        for group in sorted(groups):
            yield CareAction(kind="order", group=group, codes=codes, linked=linked, **base)
        if not groups and codes and resource.get("intent") != "proposal":
            yield CareAction(
                kind="referral", group="sr:" + min(codes), codes=codes, linked=linked, **base
            )
        return
    occurred = (
        _first_time(resource, "effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued")
        or recorded
    )
    base = _base(
        resource,
        author_org,
        occurred,
        org_fields=("performer",),
        practitioner_fields=("performer",),
    )
    linked = (
        _refs(resource.get("basedOn"))
        | _refs(resource.get("result"))
        | _refs(resource.get("hasMember"))
        | _refs(resource.get("derivedFrom"))
        | _refs(resource.get("partOf"))
    )
    value = unit = None
    quantity = resource.get("valueQuantity")
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), (int, float)):
        value = float(quantity["value"])
        unit = quantity.get("code") or quantity.get("unit")
    for group in sorted(groups):
        yield CareAction(
            kind="test", group=group, codes=codes, linked=linked, value=value, unit=unit, **base
        )
    if kind == "Observation":
        yield from _facts(resource, config, base, codes)


def _facts(
    resource: dict[str, Any],
    config: DuplicateConfig,
    base: dict[str, Any],
    codes: frozenset[str],
) -> Iterator[CareAction]:
    """Records that answer a question concept (smoking status, allergies, ...)."""
    resource_type = resource["resourceType"]
    for concept in config.concepts:
        for held in concept.held_by:
            if held.resource != resource_type:
                continue
            if held.codes and not (held.codes & codes):
                continue
            if held.status and base["status"] not in held.status:
                continue
            if held.element and not resource.get(held.element):
                continue
            yield CareAction(kind="fact", group=concept.key, codes=codes, **base)
            break


def _record_facts(
    resource: dict[str, Any], config: DuplicateConfig, author_org: str | None, recorded: datetime
) -> Iterator[CareAction]:
    occurred = (
        _first_time(resource, "recordedDate", "onsetDateTime", "dateAsserted", "authoredOn")
        or recorded
    )
    base = _base(resource, author_org, occurred, org_fields=("recorder", "asserter"))
    status = base["status"]
    clinical = resource.get("clinicalStatus")
    clinical_codes = {c.split("|")[-1] for c in _codes(clinical)}
    verification = {c.split("|")[-1] for c in _codes(resource.get("verificationStatus"))}
    if "entered-in-error" in verification or "refuted" in verification:
        status = "entered-in-error"
    elif clinical_codes & {"inactive", "resolved"}:
        status = "completed"
    base["status"] = status
    codes = _codes(resource.get("code")) | _codes(resource.get("medicationCodeableConcept"))
    yield from _facts(resource, config, base, codes)
    if resource["resourceType"] == "MedicationRequest":
        yield from _prescription(resource, config, author_org, recorded)


def _medication_identity(
    concept: Any, config: DuplicateConfig
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    codes = _codes(concept)
    ingredients: set[str] = set()
    for code in codes:
        ingredients.update(config.product_ingredients.get(code, ()))
    if not ingredients and isinstance(concept, dict):
        texts = [concept.get("text") or ""] + [
            c.get("display") or "" for c in concept.get("coding", []) if isinstance(c, dict)
        ]
        words = " ".join(texts).lower()
        for name, ingredient in config.ingredients.items():
            if name in words:
                ingredients.add(ingredient)
    classes = {config.ingredient_class[i] for i in ingredients if i in config.ingredient_class}
    return codes, frozenset(ingredients), frozenset(classes)


def _prescription(
    resource: dict[str, Any], config: DuplicateConfig, author_org: str | None, recorded: datetime
) -> Iterator[CareAction]:
    codes, ingredients, classes = _medication_identity(
        resource.get("medicationCodeableConcept"), config
    )
    if not codes and not ingredients:
        return
    occurred = _first_time(resource, "authoredOn") or recorded
    base = _base(
        resource,
        author_org,
        occurred,
        org_fields=("requester",),
        practitioner_fields=("requester",),
    )
    validity = (resource.get("dispenseRequest") or {}).get("validityPeriod") or {}
    ends = parse_instant(validity.get("end")) if isinstance(validity, dict) else None
    if ends is not None and ends < occurred:
        base["status"] = "completed"
    yield CareAction(
        kind="prescription",
        group="medication",
        codes=codes,
        ingredients=ingredients,
        classes=classes,
        linked=_refs(resource.get("basedOn")) | _refs(resource.get("priorPrescription")),
        **base,
    )


def _patient_facts(
    resource: dict[str, Any], config: DuplicateConfig, author_org: str | None, recorded: datetime
) -> Iterator[CareAction]:
    base = _base(resource, author_org, recorded, org_fields=("managingOrganization",))
    base["status"] = "active" if resource.get("active", True) is not False else "completed"
    # Every registration is logged: the denominator of the duplicate-registration rate.
    yield CareAction(kind="registration", group="patient", **base)
    yield from _facts(resource, config, base, frozenset())


def _questions(
    resource: dict[str, Any], config: DuplicateConfig, author_org: str | None, recorded: datetime
) -> Iterator[CareAction]:
    occurred = _first_time(resource, "authored") or recorded
    base = _base(resource, author_org, occurred, practitioner_fields=("author",))
    if base["status"] not in ("completed", "amended"):
        return  # only submitted answers count as questions asked
    questionnaire = resource.get("questionnaire")
    link_map = (
        config.link_ids.get(questionnaire.split("|")[0], {})
        if isinstance(questionnaire, str)
        else {}
    )
    asked: dict[str, bool] = {}
    for item in _items(resource.get("item")):
        concept = link_map.get(str(item.get("linkId")))
        if concept is None:
            for code in _item_codes(item):
                concept = config.item_code_to_concept.get(code)
                if concept:
                    break
        answers = item.get("answer")
        if concept is None or not answers:
            continue
        confirmed = all(_confirmed(a) for a in answers if isinstance(a, dict))
        asked[concept] = asked.get(concept, True) and confirmed
    for concept, confirmed in sorted(asked.items()):
        yield CareAction(kind="question", group=concept, confirmed=confirmed, **base)


def _items(items: Any) -> Iterator[dict[str, Any]]:
    stack = list(items) if isinstance(items, list) else []
    while stack:
        item = stack.pop(0)
        if not isinstance(item, dict):
            continue
        yield item
        stack.extend(item.get("item") or [])
        for answer in item.get("answer") or []:
            if isinstance(answer, dict):
                stack.extend(answer.get("item") or [])


def _item_codes(item: dict[str, Any]) -> frozenset[str]:
    codes = {
        f"{c.get('system', '')}|{c['code']}"
        for c in item.get("code", []) or []
        if isinstance(c, dict) and c.get("code")
    }
    return frozenset(codes)


def answer_digest(answer: dict[str, Any]) -> str:
    """A short digest of an answer's value[x], recorded by $populate with a pre-filled answer."""
    value = {k: v for k, v in answer.items() if k.startswith("value")}
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _confirmed(answer: dict[str, Any]) -> bool:
    """Whether an answer is a pre-filled one left as it was (the clinician confirmed it)."""
    for ext in answer.get("extension", []) or []:
        if not isinstance(ext, dict) or ext.get("url") != PREFILL_SOURCE_URL:
            continue
        for part in ext.get("extension", []) or []:
            if isinstance(part, dict) and part.get("url") == "digest":
                return part.get("valueString") == answer_digest(answer)
    return False


_HANDLERS = {
    "Observation": _tests,
    "DiagnosticReport": _tests,
    "ServiceRequest": _tests,
    "AllergyIntolerance": _record_facts,
    "Condition": _record_facts,
    "MedicationStatement": _record_facts,
    "MedicationRequest": _record_facts,
    "Patient": _patient_facts,
    "QuestionnaireResponse": _questions,
}
