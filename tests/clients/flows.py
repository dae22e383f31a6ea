"""What the client tests send: a patient, HbA1c results, a transaction Bundle."""

from __future__ import annotations

from typing import Any

NHS = "https://fhir.nhs.uk/Id/nhs-number"


def patient(nhs_number: str) -> dict[str, Any]:
    """A UK Core-style Patient."""
    return {
        "resourceType": "Patient",
        "identifier": [{"system": NHS, "value": nhs_number}],
        "name": [{"family": "Client", "given": ["Test"]}],
        "birthDate": "1961-04-02",
    }


def hba1c(patient_id: str, day: int) -> dict[str, Any]:
    """An HbA1c Observation on a day of 2024."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": f"2024-01-{day:02d}",
        "valueQuantity": {
            "value": 40 + day,
            "unit": "mmol/mol",
            "system": "http://unitsofmeasure.org",
            "code": "mmol/mol",
        },
    }


def transaction(nhs_number: str) -> dict[str, Any]:
    """A transaction Bundle: a patient and a linked observation (urn:uuid references)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:3f8b2c1e-0000-4000-8000-000000000001",
                "resource": patient(nhs_number),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:3f8b2c1e-0000-4000-8000-000000000002",
                "resource": {
                    **hba1c("x", 1),
                    "subject": {"reference": "urn:uuid:3f8b2c1e-0000-4000-8000-000000000001"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
