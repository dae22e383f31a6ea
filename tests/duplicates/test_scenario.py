"""The diabetes-team scenario end to end over HTTP (SQLite and PostgreSQL): exactly the expected
DetectedIssues, a warning on each write that caused one, nothing for the legitimate repeats."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import select

from fhir_adapters.detected_issue import FINDING_EXTENSION, RULE_SYSTEM, V3_ACT_CODE
from register import storage
from register.db import read_transaction
from tests.duplicates.scenario import EXTRA_FROM_CLERKING, Scenario, Write, lab, steps


def stored_issues(engine) -> list[dict[str, Any]]:
    """Every DetectedIssue in the database, whoever may see it."""
    with read_transaction(engine) as conn:
        rows = conn.execute(
            select(storage.R.c.content).where(
                storage.R.c.resource_type == "DetectedIssue", storage.R.c.deleted.is_(False)
            )
        ).all()
    return [orjson.loads(row.content) for row in rows]


def finding_of(issue: dict[str, Any]) -> dict[str, Any]:
    codes = {c["system"]: c["code"] for c in issue["code"]["coding"]}
    parts = {
        p["url"]: next(v for k, v in p.items() if k.startswith("value"))
        for p in issue["extension"][0]["extension"]
    }
    assert issue["extension"][0]["url"] == FINDING_EXTENSION
    return {
        "rule": codes[RULE_SYSTEM],
        "code": codes.get(V3_ACT_CODE, codes[RULE_SYSTEM]),
        "group": parts["group"],
        "patient": issue["patient"]["reference"],
        "implicated": [i["reference"] for i in issue.get("implicated", [])],
        "mitigation": (issue.get("mitigation") or [{}])[0].get("action", {}).get("text"),
        "severity": issue["severity"],
        "detail": issue["detail"],
        "patient_reported": parts["patientReported"],
    }


@pytest.fixture
def scenario(client, token_for) -> Scenario:
    return Scenario(client, token_for).build()


def _warnings(response: Any) -> list[dict[str, Any]]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return [i for i in body.get("issue", []) if i["severity"] == "warning"]


def test_exactly_the_expected_findings_and_warnings(scenario, engine):
    new_patients: list[str] = []
    for step, response in scenario.responses:
        warnings = _warnings(response)
        expected = 0 if step.finding is None else 1
        if step.resource.get("id") == "ann-clerking":
            expected = 2  # allergies and medications
        assert len(warnings) == expected, (step.resource.get("id"), warnings)
        assert ("Warning" in response.headers) == bool(expected)
        for warning in warnings:
            assert warning["code"] == "business-rule"
            assert "DetectedIssue/" in warning["diagnostics"]
        if step.method == "POST":
            new_patients.append(response.headers["Location"].split("/")[-3])

    found = [finding_of(issue) for issue in stored_issues(engine)]
    expected = {
        (
            "repeat-test",
            "MINFREQ",
            "hba1c",
            "Patient/ann",
            "Observation/ann-hba1c-dt",
            "Observation/ann-hba1c-gp",
        ),
        (
            "repeat-test",
            "MINFREQ",
            "renal",
            "Patient/ann",
            "Observation/ann-creat-hosp",
            "Observation/ann-creat-gp",
        ),
        (
            "repeat-question",
            "repeat-question",
            "allergies",
            "Patient/ann",
            "QuestionnaireResponse/ann-clerking",
            "AllergyIntolerance/ann-allergy",
        ),
        (
            *EXTRA_FROM_CLERKING,
            "Patient/ann",
            "QuestionnaireResponse/ann-clerking",
            "MedicationRequest/ann-metformin-gp",
        ),
        (
            "duplicate-therapy",
            "DUPTHPY",
            "medication",
            "Patient/ann",
            "MedicationRequest/ann-metformin-hosp",
            "MedicationRequest/ann-metformin-gp2",
        ),
        (
            "repeat-referral",
            "repeat-referral",
            "sr:http://snomed.info/sct|408403008",
            "Patient/ann",
            "ServiceRequest/ann-retinal-dt",
            "ServiceRequest/ann-retinal-gp",
        ),
    }
    clinical = {
        (f["rule"], f["code"], f["group"], f["patient"], *f["implicated"])
        for f in found
        if f["rule"] != "duplicate-registration"
    }
    assert clinical == expected
    assert len(found) == len(expected) + 2  # and exactly two duplicate registrations

    registrations = [f for f in found if f["rule"] == "duplicate-registration"]
    by_nhs, by_demographics, _not_a_match = new_patients
    assert {f["patient"] for f in registrations} == {
        f"Patient/{by_nhs}",
        f"Patient/{by_demographics}",
    }
    for f in registrations:
        assert f["implicated"][0] == f["patient"]
        assert f["implicated"][1] in {"Patient/ann", f"Patient/{by_nhs}"}
        assert f["implicated"][1] != f["patient"]
    first = next(f for f in registrations if f["patient"] == f"Patient/{by_nhs}")
    assert first["implicated"][1] == "Patient/ann"
    assert "same NHS number" in first["detail"]

    mitigated = [f for f in found if f["mitigation"]]
    assert [(f["group"], f["mitigation"], f["severity"]) for f in mitigated] == [
        ("renal", "Acute kidney injury suspected on admission", "low")
    ]
    hba1c = next(f for f in found if f["group"] == "hba1c")
    assert hba1c["detail"].startswith(
        "HbA1c was measured by Ribble Valley Medical Practice 21 days earlier; measured again "
        "by East Lancs Diabetes Team"
    )
    assert not any(f["patient_reported"] for f in found)


def test_care_team_sees_the_findings_in_the_record(scenario, engine):
    """The findings belong to Ann's record: her care team reads them through the API."""
    answer = scenario.http.get(
        "/fhir/DetectedIssue",
        params={"patient": "Patient/ann", "_count": "50"},
        headers=scenario.headers("hosp"),
    )
    assert answer.status_code == 200, answer.text
    seen = {e["resource"]["id"] for e in answer.json().get("entry", [])}
    in_db = {i["id"] for i in stored_issues(engine) if i["patient"]["reference"] == "Patient/ann"}
    assert seen == in_db and len(seen) == 6


def test_precheck_tells_the_orderer_before_ordering(scenario):
    """$check-duplicates: the hospital asks before a second TSH order (the revoked one is no
    repeat, the active one is) and before another HbA1c."""
    proposal = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"coding": [{"system": "http://loinc.org", "code": "59261-8"}]},
        "subject": {"reference": "Patient/ann"},
        "authoredOn": "2026-07-20",
    }
    answer = scenario.http.post(
        "/fhir/ServiceRequest/$check-duplicates", json=proposal, headers=scenario.headers("dt")
    )
    assert answer.status_code == 200
    issues = answer.json()["issue"]
    assert [i["severity"] for i in issues] == ["warning"]
    assert "Observation/ann-hba1c-hosp" in issues[0]["diagnostics"]
    before = len(
        scenario.http.get(
            "/fhir/DetectedIssue",
            params={"patient": "Patient/ann"},
            headers=scenario.headers("hosp"),
        )
        .json()
        .get("entry", [])
    )
    assert before == 6  # nothing stored by asking


def test_transaction_entries_carry_their_findings(client, token_for, engine):
    """A repeat inside a transaction: the entry's response.outcome carries the warning, the
    other entries none, and the finding is stored with the transaction."""
    scenario = Scenario(client, token_for)
    scenario.directory()
    for step in steps()[:1]:
        scenario.write(step)
    scenario.care_teams_for(["ann"])
    scenario.write(
        Write("gp", lab("ann-hba1c-gp", "ann", "59261-8", "2026-03-02T09:00:00Z", 44, "mmol/mol"))
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": resource,
                "request": {"method": "PUT", "url": f"Observation/{resource['id']}"},
            }
            for resource in (
                lab("ann-lipids-tx", "ann", "2093-3", "2026-03-20T10:00:00Z", 4.2, "mmol/L"),
                lab("ann-hba1c-tx", "ann", "59261-8", "2026-03-20T10:00:00Z", 45, "mmol/mol"),
            )
        ],
    }
    answer = client.post("/fhir", json=bundle, headers=scenario.headers("hosp"))
    assert answer.status_code == 200, answer.text
    first, second = answer.json()["entry"]
    assert "outcome" not in first["response"]
    issues = second["response"]["outcome"]["issue"]
    assert [(i["severity"], i["code"]) for i in issues] == [("warning", "business-rule")]
    assert "HbA1c" in issues[0]["diagnostics"]
    found = [finding_of(issue) for issue in stored_issues(engine)]
    assert [(f["group"], f["implicated"]) for f in found] == [
        ("hba1c", ["Observation/ann-hba1c-tx", "Observation/ann-hba1c-gp"])
    ]
