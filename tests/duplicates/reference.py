"""A plain reference model of the duplicate rules, written from the issue and the README's rules
table (not from ``register.duplicates``, which it never imports), for the property tests.

It reads the same clinician-tuned data files (they are data, not code) and works on the FHIR
resources of one patient's timeline, in the order they are written, the way the README says:

- repeat test: a test ordered (ServiceRequest) or resulted (Observation) with a code of a retest
  group, inside the group's interval of an earlier one of the same group that still stands
  (not cancelled, revoked or entered in error), unless they are one event (the same organisation
  within the hour) or the earlier result makes the repeat a confirmation (within the window,
  at least / below the threshold in the same unit). The nearest earlier one is the original.
- repeat referral: a ServiceRequest (a code in no retest group) still open while an open one
  for the same code is at another organisation; the latest such is the original.
- duplicate therapy: an active prescription of a medicine already active from another
  organisation or prescriber: same code, else same ingredient, else same class (ATC level 4);
  the strongest, then latest, is the original.
- repeat question: a completed questionnaire answering a question concept while a current
  answer was held (a record of the concept, or an earlier answer, no older than its freshness).
- one repeated event gives one finding: per rule and group, the repeating organisation's actions
  in one clock hour are one event.
- a clinician's stated reason is the mitigation (severity lowered).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "register" / "data" / "duplicates"
REASON_URL = "https://fhir.shared-care-register.nhs.uk/StructureDefinition/repeat-reason"
NOT_STANDING = {"cancelled", "entered-in-error", "revoked", "stopped"}
OPEN = {"draft", "active", "on-hold"}


def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


RETEST = _load("retest-intervals.json")["groups"]
MEDICINES = _load("medicines.json")
QUESTIONS = _load("question-concepts.json")

GROUP_OF = {f"{c['system']}|{c['code']}": g for g in RETEST for c in g["codes"]}
PRODUCTS = {
    f"{p['system']}|{p['code']}": [i.strip().lower() for i in p["ingredient"].split("+")]
    for p in MEDICINES["products"]
}
NAMES: dict[str, str] = {}
for _ingredient in MEDICINES["ingredients"]:
    NAMES[_ingredient["name"].lower()] = _ingredient["name"].lower()
    for _synonym in _ingredient.get("synonyms", []):
        NAMES[_synonym.lower()] = _ingredient["name"].lower()
ATC = {i["name"].lower(): i["atc"][:5] for i in MEDICINES["ingredients"]}


@dataclass
class Act:
    """One thing done, as the rules see it."""

    kind: str
    group: str
    ref: str
    when: datetime
    org: str
    standing: bool
    status: str = ""
    reason: str | None = None
    value: float | None = None
    unit: str | None = None
    codes: set[str] = field(default_factory=set)
    ingredients: set[str] = field(default_factory=set)
    classes: set[str] = field(default_factory=set)
    practitioner: str | None = None


@dataclass(frozen=True)
class Expected:
    """A finding the rules call for; ``originals``: every equally right original."""

    rule: str
    code: str
    group: str
    repeat: str
    originals: frozenset[str]
    severity: str
    mitigation: str | None


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _codes(concept: dict[str, Any] | None) -> set[str]:
    return {f"{c.get('system', '')}|{c['code']}" for c in (concept or {}).get("coding", [])}


def _reason(resource: dict[str, Any]) -> str | None:
    for ext in resource.get("extension", []):
        if ext["url"] == REASON_URL:
            return ext["valueString"]
    return None


def acts(resource: dict[str, Any], org: str) -> list[Act]:
    """What a resource records."""
    kind = resource["resourceType"]
    ref = f"{kind}/{resource['id']}"
    status = resource.get("status", "active")
    reason = _reason(resource)
    out: list[Act] = []
    if kind in ("Observation", "ServiceRequest"):
        codes = _codes(resource.get("code"))
        when = _time(resource.get("effectiveDateTime") or resource.get("authoredOn"))
        groups = sorted({GROUP_OF[c]["key"] for c in codes if c in GROUP_OF})
        quantity = resource.get("valueQuantity") or {}
        for group in groups:
            out.append(Act("test" if kind == "Observation" else "order", group, ref, when, org,
                           status not in NOT_STANDING, status, reason,
                           quantity.get("value"), quantity.get("code")))  # fmt: skip
        if kind == "ServiceRequest" and not groups:
            out.append(Act("referral", "sr:" + min(codes), ref, when, org, True, status, reason))
        if kind == "Observation":
            for concept in QUESTIONS["concepts"]:
                for held in concept["held_by"]:
                    wanted = {f"{c['system']}|{c['code']}" for c in held.get("codes", [])}
                    if held["resource"] == "Observation" and wanted & codes:
                        out.append(Act("fact", concept["key"], ref, when, org,
                                       status not in NOT_STANDING))  # fmt: skip
    elif kind == "AllergyIntolerance":
        verification = {c.split("|")[1] for c in _codes(resource.get("verificationStatus"))}
        out.append(Act("fact", "allergies", ref, _time(resource["recordedDate"]), org,
                       "entered-in-error" not in verification))  # fmt: skip
    elif kind == "MedicationRequest":
        when = _time(resource["authoredOn"])
        medicine = resource["medicationCodeableConcept"]
        codes = _codes(medicine)
        ingredients = {i for c in codes for i in PRODUCTS.get(c, [])}
        if not ingredients:
            words = " ".join(
                [medicine.get("text", "")]
                + [c.get("display", "") for c in medicine.get("coding", [])]
            ).lower()
            ingredients = {name for text, name in NAMES.items() if text in words}
        classes = {ATC[i] for i in ingredients if i in ATC}
        practitioner = (resource.get("requester") or {}).get("reference")
        out.append(Act("prescription", "medication", ref, when, org, True, status, reason,
                       codes=codes, ingredients=ingredients, classes=classes,
                       practitioner=practitioner))  # fmt: skip
        if status in ("active", "on-hold"):
            out.append(Act("fact", "medications", ref, when, org, True))
    elif kind == "QuestionnaireResponse" and status in ("completed", "amended"):
        links = QUESTIONS["questionnaire_link_ids"][resource["questionnaire"]]
        when = _time(resource["authored"])
        concepts = sorted({links[i["linkId"]] for i in resource["item"] if i.get("answer")})
        for concept in concepts:
            out.append(Act("question", concept, ref, when, org, True, status, reason))
    return out


def _group(key: str) -> dict[str, Any]:
    return next(g for g in RETEST if g["key"] == key)


def _one_event(a: Act, b: Act) -> bool:
    return a.ref == b.ref or (a.org == b.org and abs(a.when - b.when) <= timedelta(hours=1))


def _confirms(group: dict[str, Any], earlier: Act, gap: timedelta) -> bool:
    rule = group.get("confirmation")
    if not rule or gap > timedelta(days=rule["within_days"]) or earlier.value is None:
        return False
    bounds = []
    for name in ("when_prior_at_least", "when_prior_below"):
        spec = rule.get(name)
        if spec:
            bounds.append((name, spec["value"], spec["unit"]))
            if "alt_value" in spec:
                bounds.append((name, spec["alt_value"], spec["alt_unit"]))
    for name, value, unit in bounds:
        if earlier.unit == unit:
            if name == "when_prior_at_least" and earlier.value >= value:
                return True
            if name == "when_prior_below" and earlier.value < value:
                return True
    return False


def _repeat_test(new: Act, history: list[Act]) -> tuple[str, set[str], str] | None:
    group = _group(new.group)
    options: list[tuple[timedelta, str]] = []
    for old in history:
        if old.kind not in ("test", "order") or old.group != new.group or not old.standing:
            continue
        if _one_event(new, old):
            continue
        gap = new.when - old.when
        if gap >= timedelta(days=group["interval_days"]) or _confirms(group, old, gap):
            continue
        options.append((gap, old.ref))
    if not options:
        return None
    nearest = min(gap for gap, _ in options)
    return "MINFREQ", {ref for gap, ref in options if gap == nearest}, "moderate"


def _repeat_referral(new: Act, history: list[Act]) -> tuple[str, set[str], str] | None:
    if new.status not in OPEN:
        return None
    options = [
        old
        for old in history
        if old.kind == "referral"
        and old.group == new.group
        and old.status in OPEN
        and old.org != new.org
    ]
    if not options:
        return None
    latest = max(old.when for old in options)
    return "repeat-referral", {o.ref for o in options if o.when == latest}, "moderate"


def _therapy(new: Act, history: list[Act]) -> tuple[str, set[str], str] | None:
    if new.status not in ("active", "draft", "on-hold"):
        return None
    options: list[tuple[int, datetime, str]] = []
    for old in history:
        if old.kind != "prescription" or old.status not in ("active", "on-hold"):
            continue
        other = old.org != new.org or (
            old.practitioner and new.practitioner and old.practitioner != new.practitioner
        )
        if not other:
            continue
        if new.codes & old.codes:
            options.append((3, old.when, old.ref))
        elif new.ingredients & old.ingredients:
            options.append((2, old.when, old.ref))
        elif new.classes & old.classes:
            options.append((1, old.when, old.ref))
    if not options:
        return None
    best = max((s, w) for s, w, _ in options)
    code = {3: "DUPTHPY", 2: "DUPTHPGEN", 1: "DUPTHPCLS"}[best[0]]
    severity = "moderate" if best[0] == 1 else "high"
    return code, {r for s, w, r in options if (s, w) == best}, severity


def _question(new: Act, history: list[Act]) -> tuple[str, set[str], str] | None:
    concept = next(c for c in QUESTIONS["concepts"] if c["key"] == new.group)
    fresh = concept["freshness_days"]
    options = [
        old
        for old in history
        if old.kind in ("fact", "question")
        and old.group == new.group
        and old.standing
        and old.ref != new.ref
        and old.when <= new.when
        and (fresh is None or new.when - old.when <= timedelta(days=fresh))
    ]
    if not options:
        return None
    latest = max(o.when for o in options)
    return "repeat-question", {o.ref for o in options if o.when == latest}, "low"


RULES = {
    "test": ("repeat-test", _repeat_test),
    "order": ("repeat-test", _repeat_test),
    "referral": ("repeat-referral", _repeat_referral),
    "prescription": ("duplicate-therapy", _therapy),
    "question": ("repeat-question", _question),
}


def expected_findings(timeline: list[tuple[str, dict[str, Any]]]) -> list[Expected]:
    """The findings writing ``timeline`` ((organisation, resource) in order) should produce."""
    history: list[Act] = []
    events: set[tuple[str, str, str]] = set()
    found: list[Expected] = []
    for org, resource in timeline:
        new_acts = acts(resource, org)
        for new in new_acts:
            if new.kind not in RULES or not new.standing:
                continue
            rule, check = RULES[new.kind]
            outcome = check(new, history)
            if outcome is None:
                continue
            event = (rule, new.group, f"{new.org}:{new.when.strftime('%Y-%m-%dT%H')}")
            if event in events:
                continue
            events.add(event)
            code, originals, severity = outcome
            if new.reason and rule != "repeat-question":
                severity = "moderate" if rule == "duplicate-therapy" else "low"
            found.append(Expected(rule, code, new.group, new.ref, frozenset(originals),
                                  severity, new.reason))  # fmt: skip
        history.extend(new_acts)
    return found
