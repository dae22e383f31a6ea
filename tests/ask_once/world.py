"""A diabetic patient whose record three organisations keep, built over HTTP with real tokens.

Organisations (ODS): the GP practice ``GP001``, the community diabetes team ``DT002``, the
hospital ``HOS03``, and ``OTH04``, which has no relationship with the patient. The GP's system
registers ``Patient/p`` (and ``Patient/q``, someone else) and a CareTeam for ``p`` with all three
care organisations, so each may write to and read the record. Then each organisation's system
records what it knows, dated in the last weeks (the operations run at the real "now"):

- GP: type 2 diabetes, a penicillin allergy, metformin, smoking status (never smoked);
- diabetes team: HbA1c, metformin and gliclazide;
- hospital: a latex allergy, metformin, height and weight.

So the allergy lists disagree (penicillin only at the GP, latex only at the hospital) and so do
the medication lists (gliclazide only at the diabetes team).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ORGS = {"gp": ("GP001", "Riverside Surgery"), "dt": ("DT002", "Community Diabetes Team"),
        "hosp": ("HOS03", "City Hospital"), "other": ("OTH04", "Elsewhere Clinic")}  # fmt: skip
WRITERS = {"gp": "GP001", "dt": "DT002", "hosp": "HOS03"}
CLERKING = "https://fhir.shared-care-register.nhs.uk/Questionnaire/admission-clerking"
ANNUAL_REVIEW = "https://fhir.shared-care-register.nhs.uk/Questionnaire/diabetes-annual-review"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def days_ago(days: int) -> str:
    moment = datetime.now(UTC) - timedelta(days=days)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def allergy(rid: str, code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "id": rid,
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
        "code": {"coding": [{"system": SCT, "code": code, "display": text}], "text": text},
        "patient": {"reference": "Patient/p"},
        "recordedDate": days_ago(30),
    }


def medication(rid: str, code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": SCT, "code": code, "display": text}],
            "text": text,
        },
        "subject": {"reference": "Patient/p"},
        "authoredOn": days_ago(20),
    }


def observation(
    rid: str, code: str, text: str, days: int, category: str, **value: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": text}], "text": text},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": days_ago(days),
        **value,
    }


def quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": code,
        }
    }


RECORDS: dict[str, list[dict[str, Any]]] = {
    "gp": [
        {
            "resourceType": "Condition",
            "id": "cond-dm",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {"coding": [{"system": SCT, "code": "44054006"}], "text": "Type 2 diabetes"},
            "subject": {"reference": "Patient/p"},
            "onsetDateTime": days_ago(900),
        },
        allergy("all-pen", "764146007", "Penicillin"),
        medication("med-gp-met", "109081006", "Metformin"),
        observation(
            "obs-smoke",
            "72166-2",
            "Tobacco smoking status",
            40,
            "social-history",
            valueCodeableConcept={"coding": [{"system": SCT, "code": "266919005"}]},
        ),
    ],
    "dt": [
        observation(
            "obs-hba1c", "4548-4", "HbA1c", 10, "laboratory", **quantity(58, "mmol/mol", "mmol/mol")
        ),
        medication("med-dt-met", "109081006", "Metformin"),
        medication("med-dt-glic", "325278003", "Gliclazide"),
    ],
    "hosp": [
        allergy("all-latex", "300916003", "Latex"),
        medication("med-h-met", "109081006", "Metformin"),
        observation(
            "obs-height", "8302-2", "Body height", 5, "vital-signs", **quantity(175, "cm", "cm")
        ),
        observation(
            "obs-weight", "29463-7", "Body weight", 5, "vital-signs", **quantity(82, "kg", "kg")
        ),
    ],
}
AUTHOR = {r["id"]: WRITERS[org] for org, records in RECORDS.items() for r in records}
"""The ODS code of the organisation that recorded each record (the truth the tests check)."""


class World:
    """The register above, and tokens for everyone in it."""

    def __init__(self, http: TestClient, token_for: Callable[..., str]) -> None:
        self.http = http
        self.token_for = token_for
        self.tokens = {
            "gp_system": token_for("system", org="GP001"),
            "dt_system": token_for("system", org="DT002"),
            "hosp_system": token_for("system", org="HOS03"),
            "hosp_clinician": token_for(
                "clinician", org="HOS03", fhir_user="Practitioner/h1", subject="dr-h1"
            ),
            "other_clinician": token_for(
                "clinician", org="OTH04", fhir_user="Practitioner/o1", subject="dr-o1"
            ),
            "patient_p": token_for("patient", fhir_user="Patient/p", subject="pat-p"),
            "patient_q": token_for("patient", fhir_user="Patient/q", subject="pat-q"),
        }

    def headers(self, who: str) -> dict[str, str]:
        token = self.tokens.get(who) or who
        return bearer(token)

    def put(self, who: str, resource: dict[str, Any]) -> dict[str, Any]:
        response = self.http.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}",
            json=resource,
            headers=self.headers(who),
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    def get(self, who: str, path: str, **params: str) -> Any:
        return self.http.get(f"/fhir/{path}", params=params, headers=self.headers(who))

    def post(self, who: str, path: str, body: dict[str, Any], **headers: str) -> Any:
        return self.http.post(f"/fhir/{path}", json=body, headers={**self.headers(who), **headers})

    def build(self) -> World:
        """Organisations, the two patients, the care team and each organisation's records."""
        for rid, (code, name) in ORGS.items():
            self.put(
                "gp_system",
                {
                    "resourceType": "Organization",
                    "id": rid,
                    "identifier": [{"system": ODS, "value": code}],
                    "name": name,
                },
            )
        for rid, nhs in (("p", "9990000018"), ("q", "9990000026")):
            self.put(
                "gp_system",
                {
                    "resourceType": "Patient",
                    "id": rid,
                    "identifier": [{"system": NHS, "value": nhs}],
                    "name": [{"family": f"Family{rid.upper()}", "given": ["Sam"]}],
                    "generalPractitioner": [{"reference": "Organization/gp"}],
                },
            )
        self.put(
            "gp_system",
            {
                "resourceType": "CareTeam",
                "id": "team-p",
                "status": "active",
                "subject": {"reference": "Patient/p"},
                "participant": [
                    {"member": {"reference": f"Organization/{org}"}} for org in WRITERS
                ],
            },
        )
        for org, records in RECORDS.items():
            for record in records:
                self.put(f"{org}_system", record)
        return self
