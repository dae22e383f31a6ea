"""DetectedIssue resources for duplicated actions (https://hl7.org/fhir/R4/detectedissue.html)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
RULE_SYSTEM = "https://fhir.shared-care-register.nhs.uk/CodeSystem/duplicate-rule"
FINDING_EXTENSION = "https://fhir.shared-care-register.nhs.uk/StructureDefinition/duplicate-finding"
SOURCE_SYSTEM = "https://fhir.shared-care-register.nhs.uk/CodeSystem/finding-source"
PATIENT_REPORTED_TAG = {
    "system": SOURCE_SYSTEM,
    "code": "patient-reported",
    "display": "Reported by the patient",
}

V3_DISPLAY = {
    "MINFREQ": "Too soon within frequency based on the usage",
    "DUPTHPY": "Duplicate Therapy Alert",
    "DUPTHPGEN": "Duplicate Generic Alert",
    "DUPTHPCLS": "Duplicate Therapeutic Class Alert",
    "ALLDONE": "already performed",
}
RULE_DISPLAY = {
    "repeat-test": "Repeat investigation inside its minimum retesting interval",
    "repeat-question": "Question asked again although the answer was held",
    "duplicate-therapy": "Duplicate therapy from another prescriber or organisation",
    "duplicate-registration": "Duplicate patient registration",
    "repeat-referral": "Repeated referral or procedure order while one is open elsewhere",
}


@dataclass(frozen=True)
class IssueFacts:
    """What a DetectedIssue about a duplicated action says."""

    rule: str
    code: str
    severity: str
    patient: str  # Patient/id
    identified: str  # instant
    implicated: tuple[str, ...]  # the repeat first, then the original
    detail: str
    group: str
    repeat_org: str | None
    original_org: str | None
    service: str
    gap_days: float | None
    mitigation: str | None = None
    mitigation_author: str | None = None
    patient_reported: bool = False


def detected_issue(facts: IssueFacts) -> dict[str, Any]:
    """The DetectedIssue resource for a finding (without id and meta: storage sets those)."""
    coding = []
    if facts.code in V3_DISPLAY:
        coding.append(
            {"system": V3_ACT_CODE, "code": facts.code, "display": V3_DISPLAY[facts.code]}
        )
    coding.append(
        {
            "system": RULE_SYSTEM,
            "code": facts.rule,
            "display": RULE_DISPLAY.get(facts.rule, facts.rule),
        }
    )
    parts: list[dict[str, Any]] = [
        {"url": "rule", "valueCode": facts.rule},
        {"url": "group", "valueString": facts.group},
        {"url": "service", "valueString": facts.service},
        {"url": "patientReported", "valueBoolean": facts.patient_reported},
    ]
    if facts.repeat_org:
        parts.append({"url": "repeatOrganization", "valueString": facts.repeat_org})
    if facts.original_org:
        parts.append({"url": "originalOrganization", "valueString": facts.original_org})
    if facts.gap_days is not None:
        parts.append({"url": "gapDays", "valueDecimal": round(facts.gap_days, 2)})
    issue: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "extension": [{"url": FINDING_EXTENSION, "extension": parts}],
        "status": "final",
        "code": {"coding": coding, "text": RULE_DISPLAY.get(facts.rule, facts.rule)},
        "severity": facts.severity,
        "patient": {"reference": facts.patient},
        "identifiedDateTime": facts.identified,
        "author": {"display": "Shared Care Register duplicate check"}
        if not facts.patient_reported
        else {"reference": facts.patient},
        "implicated": [{"reference": ref} for ref in facts.implicated],
        "detail": facts.detail,
    }
    if facts.patient_reported:
        # Searchable as DetectedIssue?_tag=<system>|patient-reported, besides the extension.
        issue["meta"] = {"tag": [dict(PATIENT_REPORTED_TAG)]}
    if facts.mitigation:
        mitigation: dict[str, Any] = {
            "action": {
                "coding": [
                    {
                        "system": RULE_SYSTEM,
                        "code": "stated-reason",
                        "display": "Clinician stated a reason to repeat",
                    }
                ],
                "text": facts.mitigation,
            },
            "date": facts.identified,
        }
        if facts.mitigation_author:
            mitigation["author"] = {"reference": facts.mitigation_author}
        issue["mitigation"] = [mitigation]
    return issue
