"""The diabetes-team scenario, built over HTTP by its three organisations with their own tokens.

Organisations: Ribble Valley Medical Practice (GP, ``GP001``), East Lancs Diabetes Team
(``DT002``), Preston Royal Hospital (``HOS03``). The GP registers Ann (and Bob) and records a
CareTeam with all three organisations, which gives each a care relationship to write into the
record. Every write below is a real HTTP request with that organisation's token; :data:`EXPECTED`
says which of them must produce a finding, and every other write must produce none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
REASON_URL = "https://fhir.shared-care-register.nhs.uk/StructureDefinition/repeat-reason"
CLERKING = "https://fhir.shared-care-register.nhs.uk/Questionnaire/admission-clerking"

ORGS = {
    "gp": ("GP001", "Ribble Valley Medical Practice"),
    "dt": ("DT002", "East Lancs Diabetes Team"),
    "hosp": ("HOS03", "Preston Royal Hospital"),
}


def nhs_number(seed: int) -> str:
    """A valid (Modulus 11) NHS number in the 999 test range, from ``seed``."""
    while True:
        body = f"999{seed:06d}"
        total = sum(int(d) * w for d, w in zip(body, range(10, 1, -1), strict=True))
        check = 11 - total % 11
        check = 0 if check == 11 else check
        if check != 10:
            return body + str(check)
        seed += 1


ANN_NHS = nhs_number(123)
BOB_NHS = nhs_number(456)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def lab(rid: str, patient: str, code: str, when: str, value: float, unit: str, **extra: Any):
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": extra.pop("status", "final"),
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
        **extra,
    }


def order(rid: str, patient: str, system: str, code: str, when: str, status: str = "active"):
    return {
        "resourceType": "ServiceRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "authoredOn": when,
    }


def metformin(rid: str, patient: str, when: str, prescriber: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "860975", "display": "metformin 500 MG"}]
        },
        "subject": {"reference": f"Patient/{patient}"},
        "authoredOn": when,
        "requester": {"reference": prescriber},
    }


def person(rid: str | None, nhs: str | None, family: str, given: str, birth: str, gender: str):
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": family, "given": [given]}],
        "birthDate": birth,
        "gender": gender,
        "address": [{"use": "home", "postalCode": "PR1 2AB"}],
    }
    if rid:
        body["id"] = rid
    if nhs:
        body["identifier"] = [{"system": NHS, "value": nhs}]
    return body


def clerking(rid: str, patient: str, when: str) -> dict[str, Any]:
    def item(link: str, text: str) -> dict[str, Any]:
        return {"linkId": link, "answer": [{"valueString": text}]}

    return {
        "resourceType": "QuestionnaireResponse",
        "id": rid,
        "questionnaire": CLERKING,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": when,
        "item": [
            item("allergies", "Penicillin - rash"),
            item("medications", "Metformin 500mg twice daily"),
            item("height", "164 cm"),  # nothing held: asking is not a repeat
        ],
    }


@dataclass(frozen=True)
class Write:
    """One write of the scenario: who writes what, and the finding it must produce (if any)."""

    who: str
    resource: dict[str, Any]
    finding: tuple[str, str, str] | None = None  # (rule, code, group)
    mitigation: str | None = None
    method: str = "PUT"


def steps() -> list[Write]:
    """The scenario in the order it is written."""
    gp, dt, hosp = "gp", "dt", "hosp"
    ann, bob = "ann", "bob"
    return [
        # Registration and records the GP holds.
        Write(gp, person(ann, ANN_NHS, "Smith", "Ann", "1961-04-12", "female")),
        Write(gp, person(bob, BOB_NHS, "Jones", "Robert", "1958-09-30", "male")),
        Write(
            gp,
            {
                "resourceType": "AllergyIntolerance",
                "id": "ann-allergy",
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                            "code": "active",
                        }
                    ]
                },
                "code": {"text": "Penicillin"},
                "patient": {"reference": "Patient/ann"},
                "recordedDate": "2026-02-01",
            },
        ),
        Write(gp, metformin("ann-metformin-gp", ann, "2026-02-15", "Practitioner/gp-doc")),
        # 1. Repeat HbA1c after 3 weeks by the diabetes team.
        Write(gp, lab("ann-hba1c-gp", ann, "59261-8", "2026-03-02T09:00:00Z", 58, "mmol/mol")),
        Write(
            dt,
            lab("ann-hba1c-dt", ann, "59261-8", "2026-03-23T10:00:00Z", 57, "mmol/mol"),
            ("repeat-test", "MINFREQ", "hba1c"),
        ),
        # Legitimate: a different patient; outside the interval.
        Write(dt, lab("bob-hba1c-dt", bob, "59261-8", "2026-03-23T11:00:00Z", 49, "mmol/mol")),
        Write(hosp, lab("ann-hba1c-hosp", ann, "59261-8", "2026-07-01T08:00:00Z", 55, "mmol/mol")),
        # Legitimate: the earlier lipids were entered in error; the earlier TSH order revoked.
        Write(
            gp,
            lab(
                "ann-lipids-gp",
                ann,
                "2093-3",
                "2026-04-01T09:00:00Z",
                5.1,
                "mmol/L",
                status="entered-in-error",
            ),
        ),
        Write(hosp, lab("ann-lipids-hosp", ann, "2093-3", "2026-04-10T09:00:00Z", 5.0, "mmol/L")),
        Write(gp, order("ann-tsh-gp", ann, LOINC, "3016-3", "2026-04-02", status="revoked")),
        Write(hosp, order("ann-tsh-hosp", ann, LOINC, "3016-3", "2026-04-12")),
        # Clinician's stated reason: still a finding, with the reason as mitigation.
        Write(gp, lab("ann-creat-gp", ann, "2160-0", "2026-05-01T09:00:00Z", 80, "umol/L")),
        Write(
            hosp,
            lab(
                "ann-creat-hosp",
                ann,
                "2160-0",
                "2026-05-02T22:00:00Z",
                150,
                "umol/L",
                extension=[
                    {"url": REASON_URL, "valueString": "Acute kidney injury suspected on admission"}
                ],
            ),
            ("repeat-test", "MINFREQ", "renal"),
            mitigation="Acute kidney injury suspected on admission",
        ),
        # 2. Admission clerking re-asks allergies and medications.
        Write(
            hosp,
            clerking("ann-clerking", ann, "2026-04-10T14:00:00Z"),
            ("repeat-question", "repeat-question", "allergies"),
        ),
        # 3. The GP re-issuing its own metformin is not a duplicate; the hospital's second is.
        Write(gp, metformin("ann-metformin-gp2", ann, "2026-03-15", "Practitioner/gp-doc")),
        Write(
            hosp,
            metformin("ann-metformin-hosp", ann, "2026-04-10", "Practitioner/hosp-dr"),
            ("duplicate-therapy", "DUPTHPY", "medication"),
        ),
        # 5. A repeated open referral at another organisation; one after a completed one is not.
        Write(gp, order("ann-retinal-gp", ann, SCT, "408403008", "2026-03-05")),
        Write(
            dt,
            order("ann-retinal-dt", ann, SCT, "408403008", "2026-03-20"),
            ("repeat-referral", "repeat-referral", "sr:http://snomed.info/sct|408403008"),
        ),
        Write(
            gp, order("ann-podiatry-gp", ann, SCT, "306094000", "2026-02-01", status="completed")
        ),
        Write(hosp, order("ann-podiatry-hosp", ann, SCT, "306094000", "2026-03-01")),
        # 4. Second registrations: same NHS number; a strong demographic match; not a match.
        Write(
            hosp,
            person(None, ANN_NHS, "Smith", "Ann", "1961-04-12", "female"),
            ("duplicate-registration", "duplicate-registration", "patient"),
            method="POST",
        ),
        Write(
            dt,
            person(None, None, "SMITH", "Ann", "1961-04-12", "female"),
            ("duplicate-registration", "duplicate-registration", "patient"),
            method="POST",
        ),
        Write(dt, person(None, None, "Smith", "Annabel", "1975-01-01", "female"), method="POST"),
    ]


# The clerking response also re-asks medications: a second finding from that one write.
EXTRA_FROM_CLERKING = ("repeat-question", "repeat-question", "medications")


class Scenario:
    """The three organisations, their tokens, and the scenario written over HTTP."""

    def __init__(self, http: TestClient, token_for: Callable[..., str]) -> None:
        self.http = http
        self.tokens = {
            "gp": token_for("system", org="GP001", subject="gp-system"),
            "dt": token_for(
                "clinician", org="DT002", fhir_user="Practitioner/dt-nurse", subject="dt-nurse"
            ),
            "hosp": token_for(
                "clinician", org="HOS03", fhir_user="Practitioner/hosp-dr", subject="hosp-dr"
            ),
            "ann": token_for("patient", fhir_user="Patient/ann", subject="ann"),
            "bob": token_for("patient", fhir_user="Patient/bob", subject="bob"),
            "reviewer": token_for("reviewer", org=None, subject="qi-lead"),
        }
        self.responses: list[tuple[Write, Any]] = []

    def headers(self, who: str, **extra: str) -> dict[str, str]:
        return {**bearer(self.tokens[who]), **extra}

    def directory(self) -> None:
        """The organisations, and a care team for Ann and Bob with all three of them."""
        for rid, (code, name) in ORGS.items():
            self._put(
                "gp",
                {
                    "resourceType": "Organization",
                    "id": rid,
                    "identifier": [{"system": ODS, "value": code}],
                    "name": name,
                },
            )

    def care_teams(self) -> None:
        self.care_teams_for(["ann", "bob"])

    def care_teams_for(self, patients: list[str]) -> None:
        for patient in patients:
            self._put(
                "gp",
                {
                    "resourceType": "CareTeam",
                    "id": f"team-{patient}",
                    "status": "active",
                    "subject": {"reference": f"Patient/{patient}"},
                    "participant": [
                        {"member": {"reference": f"Organization/{org}"}} for org in ORGS
                    ],
                },
            )

    def _put(self, who: str, resource: dict[str, Any]) -> Any:
        response = self.http.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}",
            json=resource,
            headers=self.headers(who, Prefer="return=OperationOutcome"),
        )
        assert response.status_code in (200, 201), response.text
        return response

    def write(self, step: Write) -> Any:
        if step.method == "PUT":
            response = self._put(step.who, step.resource)
        else:
            response = self.http.post(
                f"/fhir/{step.resource['resourceType']}",
                json=step.resource,
                headers=self.headers(step.who, Prefer="return=OperationOutcome"),
            )
            assert response.status_code == 201, response.text
        self.responses.append((step, response))
        return response

    def build(self) -> Scenario:
        self.directory()
        all_steps = steps()
        for step in all_steps[:2]:  # the two registrations, then their care teams
            self.write(step)
        self.care_teams()
        for step in all_steps[2:]:
            self.write(step)
        return self
