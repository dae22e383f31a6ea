"""A small shared care register for access tests, built over HTTP as its users would.

Organisations (ODS codes): the GP practice ``GP001`` (Organization/gp), the hospital ``HOS03``
(Organization/hosp), another organisation ``OTH04`` (Organization/other).

The GP's system registers two patients, ``Patient/p`` (NHS 9990000018) and ``Patient/q``
(9990000026), and records an Observation, a Condition and an Encounter for each (ids
``obs-p``, ``cond-p``, ``enc-p``, ``obs-q``...). The hospital's relationship with ``p`` is then
set to one of :data:`STATES`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
ORGS = {"gp": "GP001", "hosp": "HOS03", "other": "OTH04"}
NHS_NUMBERS = {"p": "9990000018", "q": "9990000026"}
STATES = ("none", "active", "careteam", "ended_in_window", "ended_outside_window", "break_glass")
OPEN_STATES = frozenset({"active", "careteam", "ended_in_window", "break_glass"})
BREAK_GLASS_REASON = "Collapsed in ED, needs medication history"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def encounter(
    patient: str,
    org: str,
    *,
    status: str = "in-progress",
    ended_days_ago: int | None = None,
    by_nhs_number: bool = False,
    practitioner: str | None = None,
) -> dict[str, Any]:
    subject: dict[str, Any] = (
        {"identifier": {"system": NHS, "value": NHS_NUMBERS[patient]}}
        if by_nhs_number
        else {"reference": f"Patient/{patient}"}
    )
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": subject,
        "serviceProvider": {"reference": f"Organization/{org}"},
    }
    if ended_days_ago is not None:
        now = datetime.now(UTC)
        resource["period"] = {
            "start": _instant(now - timedelta(days=ended_days_ago, hours=2)),
            "end": _instant(now - timedelta(days=ended_days_ago)),
        }
    if practitioner:
        resource["participant"] = [{"individual": {"reference": practitioner}}]
    return resource


def observation(patient: str, value: float = 48.0) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "59261-8"}], "text": "HbA1c"},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": value, "unit": "mmol/mol"},
    }


class World:
    """The register above, and tokens for everyone in it."""

    def __init__(self, http: TestClient, token_for: Callable[..., str]) -> None:
        self.http = http
        self.token_for = token_for
        self.tokens = {
            "gp_system": token_for("system", org="GP001"),
            "hosp_system": token_for("system", org="HOS03"),
            "hosp_clinician": token_for(
                "clinician", org="HOS03", fhir_user="Practitioner/h1", subject="dr-h1"
            ),
            "other_clinician": token_for(
                "clinician", org="OTH04", fhir_user="Practitioner/o1", subject="dr-o1"
            ),
            "patient_p": token_for("patient", fhir_user="Patient/p", subject="pat-p"),
            "patient_q": token_for("patient", fhir_user="Patient/q", subject="pat-q"),
            "reviewer": token_for("reviewer", org="HOS03"),
            "admin": token_for("admin", org=None),
        }

    def as_(self, who: str, **headers: str) -> dict[str, str]:
        return {**bearer(self.tokens[who]), **headers}

    def put(self, who: str, resource: dict[str, Any]) -> dict[str, Any]:
        response = self.http.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}",
            json=resource,
            headers=self.as_(who),
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    def post(self, who: str, resource: dict[str, Any], **headers: str) -> Any:
        return self.http.post(
            f"/fhir/{resource['resourceType']}", json=resource, headers=self.as_(who, **headers)
        )

    def build(self) -> World:
        """Organisations, two patients registered by the GP, and their GP records."""
        for rid, code in ORGS.items():
            self.put(
                "gp_system",
                {
                    "resourceType": "Organization",
                    "id": rid,
                    "identifier": [{"system": ODS, "value": code}],
                    "name": rid,
                },
            )
        for patient in ("p", "q"):
            self.put(
                "gp_system",
                {
                    "resourceType": "Patient",
                    "id": patient,
                    "identifier": [{"system": NHS, "value": NHS_NUMBERS[patient]}],
                    "name": [{"family": f"Secret{patient.upper()}family"}],
                },
            )
            self.put("gp_system", {**observation(patient), "id": f"obs-{patient}"})
            self.put(
                "gp_system",
                {
                    "resourceType": "Condition",
                    "id": f"cond-{patient}",
                    "code": {"text": "Type 2 diabetes"},
                    "subject": {"reference": f"Patient/{patient}"},
                },
            )
            self.put(
                "gp_system",
                {**encounter(patient, "gp", status="finished", ended_days_ago=100),
                 "id": f"enc-{patient}"},
            )  # fmt: skip
        return self

    def relate(self, state: str) -> dict[str, str]:
        """Give the hospital the relationship ``state`` with Patient/p; the extra headers a
        hospital clinician's requests then carry (break-glass)."""
        if state == "active":
            response = self.post("hosp_system", encounter("p", "hosp", by_nhs_number=True))
            assert response.status_code == 201, response.text
        elif state == "careteam":
            self.put(
                "gp_system",
                {
                    "resourceType": "CareTeam",
                    "id": "team-p",
                    "status": "active",
                    "subject": {"reference": "Patient/p"},
                    "participant": [
                        {"member": {"reference": "Organization/gp"}},
                        {"member": {"reference": "Organization/hosp"}},
                    ],
                },
            )
        elif state in ("ended_in_window", "ended_outside_window"):
            days = 10 if state == "ended_in_window" else 40
            response = self.post(
                "hosp_system", encounter("p", "hosp", status="finished", ended_days_ago=days)
            )
            assert response.status_code == 201, response.text
        if state == "break_glass":
            return {"X-Break-Glass-Reason": BREAK_GLASS_REASON}
        return {}
