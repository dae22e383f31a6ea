"""The facts the access policy needs about a resource, derived on every write."""

from __future__ import annotations

from typing import Any

from register.storage import Facts

_PATIENT_ELEMENTS = ("subject", "patient", "beneficiary", "individual")


def facts_for(resource: dict[str, Any], *, author_org: str | None) -> Facts:
    """Whose record ``resource`` belongs to, and which organisation recorded it."""
    return Facts(patient_id=primary_patient(resource), author_org=author_org)


def primary_patient(resource: dict[str, Any]) -> str | None:
    """The id of the Patient whose record this resource is part of, if any."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id")
    for element in _PATIENT_ELEMENTS:
        value = resource.get(element)
        if isinstance(value, dict):
            reference = value.get("reference")
            if isinstance(reference, str) and reference.startswith("Patient/"):
                return reference.split("/", 2)[1]
    return None
