"""$check-duplicates and Patient/$match over HTTP."""

from __future__ import annotations

NHS = "https://fhir.nhs.uk/Id/nhs-number"


def hba1c(patient_id: str, when: str) -> dict:
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "authoredOn": when,
    }


def patient(nhs: str | None = "9000000009", **extra) -> dict:
    body = {
        "resourceType": "Patient",
        "name": [{"family": "Smith", "given": ["Ann"]}],
        "birthDate": "1960-01-01",
        "gender": "female",
        "address": [{"postalCode": "PR1 1AA"}],
        **extra,
    }
    if nhs:
        body["identifier"] = [{"system": NHS, "value": nhs}]
    return body


def test_check_duplicates_answers_without_storing(client):
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    client.post("/fhir/ServiceRequest", json=hba1c(pid, "2026-01-01"))
    before = client.get("/fhir/_history").json()["entry"]
    soon = client.post("/fhir/ServiceRequest/$check-duplicates", json=hba1c(pid, "2026-01-20"))
    assert soon.status_code == 200
    issue = soon.json()["issue"][0]
    assert issue["severity"] == "warning" and "repeat-test" in issue["diagnostics"]
    later = client.post(
        "/fhir/ServiceRequest/$check-duplicates",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": hba1c(pid, "2026-06-01")}],
        },
    )
    assert later.json()["issue"][0]["severity"] == "information"
    assert client.get("/fhir/_history").json()["entry"] == before  # nothing stored
    bad = client.post("/fhir/ServiceRequest/$check-duplicates", json={"resourceType": "Basic"})
    assert bad.status_code == 400
    unknown = client.post("/fhir/ServiceRequest/$check-duplicates", json=hba1c("nobody", "2026"))
    assert unknown.status_code == 404


def test_match_scores_and_grades(client):
    first = client.post("/fhir/Patient", json=patient()).json()["id"]
    client.post(
        "/fhir/Patient", json=patient(nhs=None, name=[{"family": "Jones", "given": ["Bob"]}])
    )
    by_number = client.post(
        "/fhir/Patient/$match",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": patient()}],
        },
    ).json()
    assert by_number["entry"][0]["resource"]["id"] == first
    assert by_number["entry"][0]["search"]["score"] == 1.0
    assert by_number["entry"][0]["search"]["extension"][0]["valueCode"] == "certain"
    demographic = client.post("/fhir/Patient/$match", json=patient(nhs=None)).json()
    grades = {
        e["resource"]["id"]: e["search"]["extension"][0]["valueCode"]
        for e in demographic.get("entry", [])
    }
    assert grades.get(first) == "probable"
    assert len(grades) == 1  # Bob Jones shares the birth date but not the person
    nothing = client.post("/fhir/Patient/$match", json={"resourceType": "Patient"})
    assert nothing.status_code == 400
