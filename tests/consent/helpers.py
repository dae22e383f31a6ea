"""Consent resources for tests, built from the reference model's provisions."""

from __future__ import annotations

from typing import Any

from tests.consent.reference import Provision

SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
SENS = "https://fhir.shared-care-register.nhs.uk/CodeSystem/sensitivity"
NOT_FOR_PATIENT = {"system": SENS, "code": "not-for-patient"}
TYPES = "http://hl7.org/fhir/resource-types"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def _coding(value: str) -> dict[str, str]:
    system, _, code = value.rpartition("|")
    return {"system": system, "code": code} if system else {"code": code}


def provision_json(node: Provision) -> dict[str, Any]:
    """A reference-model provision as FHIR JSON."""
    out: dict[str, Any] = {"type": node.effect}
    if node.actors:
        out["actor"] = [
            {
                "role": {"coding": [{"system": PARTICIPATION,
                                     "code": "IRCP"}]},
                "reference": {"identifier": {"system": ODS, "value": code}},
            }
            for code in sorted(node.actors)
        ]  # fmt: skip
    if node.purposes:
        out["purpose"] = [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": p}
            for p in sorted(node.purposes)
        ]
    if node.classes:
        out["class"] = [{"system": TYPES, "code": c} for c in sorted(node.classes)]
    if node.codes:
        out["code"] = [{"coding": [_coding(c)]} for c in sorted(node.codes)]
    if node.labels:
        out["securityLabel"] = [_coding(label) for label in sorted(node.labels)]
    if node.data_start is not None or node.data_end is not None:
        period: dict[str, str] = {}
        if node.data_start is not None:
            period["start"] = node.data_start.isoformat().replace("+00:00", "Z")
        if node.data_end is not None:
            period["end"] = node.data_end.isoformat().replace("+00:00", "Z")
        out["dataPeriod"] = period
    if node.children:
        out["provision"] = [provision_json(child) for child in node.children]
    return out


def consent(
    patient: str,
    root: Provision | dict[str, Any] | None,
    *,
    status: str = "active",
    rid: str | None = None,
    policy_rule: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A sharing Consent (scope patient-privacy) for ``patient`` with ``root`` provisions."""
    body: dict[str, Any] = {
        "resourceType": "Consent",
        "status": status,
        "scope": {"coding": [{"system": SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        **extra,
    }
    if policy_rule is not None:
        body["policyRule"] = {"coding": [{"system": ACT, "code": policy_rule}]}
    if rid is not None:
        body["id"] = rid
    if root is not None:
        body["provision"] = provision_json(root) if isinstance(root, Provision) else root
    return body


ON_BEHALF = {
    "performer": [{"reference": "Patient/p"}],
    "verification": [
        {
            "verified": True,
            "verifiedWith": {"reference": "Patient/p"},
            "verificationDate": "2026-11-01",
        }
    ],
}
"""What a clinician recording a Consent for Patient/p adds: who gave it, how it was verified."""


def ids(bundle: dict[str, Any], mode: str | None = None) -> list[str]:
    """``Type/id`` of the Bundle's entries (of one search mode)."""
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["resource"]["resourceType"] != "OperationOutcome"
        and (mode is None or e.get("search", {}).get("mode") == mode)
    ]


def has_notice(bundle: dict[str, Any]) -> bool:
    """Whether the Bundle carries the withheld-items notice."""
    return any(
        e["resource"]["resourceType"] == "OperationOutcome"
        and any(i.get("code") == "suppressed" for i in e["resource"]["issue"])
        for e in bundle.get("entry", [])
    )
