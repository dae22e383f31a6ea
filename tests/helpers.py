"""Small builders for test resources."""

from __future__ import annotations

from typing import Any

NHS = "https://fhir.nhs.uk/Id/nhs-number"


def patient(family: str = "Smith", given: str = "Ann", **extra: Any) -> dict[str, Any]:
    """A minimal valid Patient."""
    return {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        **extra,
    }


def observation(subject: str, code: str = "4548-4", value: float = 48.0, **extra: Any) -> dict:
    """A minimal valid laboratory Observation (HbA1c by default)."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": subject},
        "valueQuantity": {"value": value, "unit": "mmol/mol"},
        **extra,
    }


def strip_meta(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without server-set meta (for comparing what was sent and stored)."""
    out = {k: v for k, v in resource.items() if k != "meta"}
    meta = {
        k: v for k, v in resource.get("meta", {}).items() if k not in ("versionId", "lastUpdated")
    }
    if meta:
        out["meta"] = meta
    return out
