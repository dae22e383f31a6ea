"""The duplicate rules: given a new care action and the patient's earlier ones, what repeats.

Pure functions; the README's duplicates section states the same rules in plain words, and the
tests compare them with an independent reference implementation on random timelines.

Legitimate repeats are not duplicates: outside the interval, another patient (never compared),
an earlier action cancelled or entered in error, the same test event (same encounter, linked
order/result, or the same organisation within the hour), a confirmation the retest table allows,
or the same prescriber re-issuing. A clinician's stated reason does not hide a repeat: it is
recorded as the finding's mitigation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from register.duplicates.actions import OPEN_ORDER_STATUSES, CareAction
from register.duplicates.config import DuplicateConfig, RetestGroup

V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
RULE_SYSTEM = "https://fhir.shared-care-register.nhs.uk/CodeSystem/duplicate-rule"
SAME_EVENT_WINDOW = timedelta(hours=1)

RULES = (
    "repeat-test",
    "repeat-question",
    "duplicate-therapy",
    "duplicate-registration",
    "repeat-referral",
)


@dataclass(frozen=True)
class Finding:
    """A duplicated action: the repeat, the original it repeats, and how they relate."""

    rule: str
    code: str  # v3-ActCode where one fits (MINFREQ, DUPTHPY, ...), else the rule's own code
    group: str
    repeat: CareAction
    original: CareAction
    severity: str  # high | moderate | low
    mitigation: str | None = None

    @property
    def gap_days(self) -> float:
        """Days between the original and the repeat."""
        return abs((self.repeat.occurred_at - self.original.occurred_at).total_seconds()) / 86400


def same_event(a: CareAction, b: CareAction) -> bool:
    """Whether two actions are parts of one clinical event rather than a repeat."""
    if a.reference == b.reference:
        return True
    if a.reference in b.linked or b.reference in a.linked or (a.linked & b.linked):
        return True
    if a.encounter is not None and a.encounter == b.encounter:
        return True
    return a.org == b.org and abs(a.occurred_at - b.occurred_at) <= SAME_EVENT_WINDOW


def _confirms(group: RetestGroup, original: CareAction, gap: timedelta) -> bool:
    rule = group.confirmation
    if rule is None or gap > timedelta(days=rule.within_days) or original.value is None:
        return False
    unit = (original.unit or "").strip()
    if any(unit == u and original.value >= v for v, u in rule.at_least):
        return True
    return any(unit == u and original.value < v for v, u in rule.below)


def _ordered(a: CareAction, b: CareAction) -> tuple[CareAction, CareAction]:
    """(original, repeat): the earlier action is the original."""
    return (a, b) if a.occurred_at <= b.occurred_at else (b, a)


def repeat_test(
    new: CareAction, earlier: Iterable[CareAction], config: DuplicateConfig
) -> Finding | None:
    """A test ordered or resulted within its minimum retesting interval of another."""
    if new.kind not in ("test", "order") or not new.active:
        return None
    group = config.group(new.group)
    interval = timedelta(days=group.interval_days)
    best: tuple[timedelta, CareAction] | None = None
    for prior in earlier:
        if prior.kind not in ("test", "order") or prior.group != new.group or not prior.active:
            continue
        if same_event(new, prior):
            continue
        gap = abs(new.occurred_at - prior.occurred_at)
        if gap >= interval:
            continue
        original, _ = _ordered(prior, new)
        if _confirms(group, original, gap):
            continue
        if best is None or gap < best[0]:
            best = (gap, prior)
    if best is None:
        return None
    original, repeat = _ordered(best[1], new)
    mitigation = repeat.reason or new.reason
    return Finding(
        rule="repeat-test",
        code="MINFREQ",
        group=new.group,
        repeat=repeat,
        original=original,
        severity="low" if mitigation else "moderate",
        mitigation=mitigation,
    )


def repeat_referral(new: CareAction, earlier: Iterable[CareAction]) -> Finding | None:
    """An order for the same code while one is still open at another organisation."""
    if new.kind != "referral" or new.status not in OPEN_ORDER_STATUSES:
        return None
    candidates = [
        prior
        for prior in earlier
        if prior.kind == "referral"
        and prior.group == new.group
        and prior.status in OPEN_ORDER_STATUSES
        and prior.org != new.org
        and not same_event(new, prior)
    ]
    if not candidates:
        return None
    prior = max(candidates, key=lambda a: a.occurred_at)
    original, repeat = _ordered(prior, new)
    return Finding(
        rule="repeat-referral",
        code="repeat-referral",
        group=new.group,
        repeat=repeat,
        original=original,
        severity="low" if new.reason else "moderate",
        mitigation=new.reason,
    )


def _different_prescriber(a: CareAction, b: CareAction) -> bool:
    if a.org != b.org:
        return True
    return (
        a.practitioner is not None
        and b.practitioner is not None
        and (a.practitioner != b.practitioner)
    )


def duplicate_therapy(new: CareAction, earlier: Iterable[CareAction]) -> Finding | None:
    """A prescription for a medicine already active for the patient from another prescriber."""
    if new.kind != "prescription" or new.status not in ("active", "draft", "on-hold"):
        return None
    best: tuple[int, CareAction, str] | None = None
    for prior in earlier:
        if prior.kind != "prescription" or prior.status not in ("active", "on-hold"):
            continue
        if prior.reference == new.reference or prior.reference in new.linked:
            continue
        if not _different_prescriber(new, prior):
            continue
        if new.codes & prior.codes:
            strength, code = 3, "DUPTHPY"
        elif new.ingredients & prior.ingredients:
            strength, code = 2, "DUPTHPGEN"
        elif new.classes & prior.classes:
            strength, code = 1, "DUPTHPCLS"
        else:
            continue
        if best is None or (strength, prior.occurred_at) > (best[0], best[1].occurred_at):
            best = (strength, prior, code)
    if best is None:
        return None
    strength, prior, code = best
    original, repeat = _ordered(prior, new)
    return Finding(
        rule="duplicate-therapy",
        code=code,
        group="medication",
        repeat=repeat,
        original=original,
        severity="moderate" if new.reason or strength == 1 else "high",
        mitigation=new.reason,
    )


def repeat_question(
    new: CareAction, earlier: Iterable[CareAction], config: DuplicateConfig
) -> Finding | None:
    """A question asked afresh although the register held a current answer."""
    if new.kind != "question" or new.confirmed:
        return None
    concept = config.concept(new.group)
    freshness = None if concept.freshness_days is None else timedelta(days=concept.freshness_days)
    held = [
        prior
        for prior in earlier
        if prior.kind in ("fact", "question")
        and prior.group == new.group
        and prior.active
        and prior.resource_id != new.resource_id
        and prior.occurred_at <= new.occurred_at
        and (freshness is None or new.occurred_at - prior.occurred_at <= freshness)
    ]
    if not held:
        return None
    prior = max(held, key=lambda a: a.occurred_at)
    return Finding(
        rule="repeat-question",
        code="repeat-question",
        group=new.group,
        repeat=new,
        original=prior,
        severity="low",
        mitigation=new.reason,
    )


def evaluate(
    new_actions: Iterable[CareAction], earlier: list[CareAction], config: DuplicateConfig
) -> list[Finding]:
    """Every finding the new actions produce against the patient's earlier actions."""
    findings: list[Finding] = []
    for action in new_actions:
        if action.kind in ("test", "order"):
            finding = repeat_test(action, earlier, config)
        elif action.kind == "referral":
            finding = repeat_referral(action, earlier)
        elif action.kind == "prescription":
            finding = duplicate_therapy(action, earlier)
        elif action.kind == "question":
            finding = repeat_question(action, earlier, config)
        else:
            finding = None
        if finding is not None:
            findings.append(finding)
    return findings
