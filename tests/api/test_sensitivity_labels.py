"""Resources whose codes are in the sensitive list are labelled on write."""

from __future__ import annotations

from register.sensitivity import label_sensitive, load, sensitive_categories

SCT = "http://snomed.info/sct"


def condition(code: str) -> dict:
    return {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": SCT, "code": code}]},
    }


def test_sensitive_codes_are_labelled_on_write(client):
    client.put("/fhir/Patient/p", json={"resourceType": "Patient", "id": "p"})
    created = client.post("/fhir/Condition", json=condition("86406008")).json()
    labels = {(s["system"], s["code"]) for s in created["meta"]["security"]}
    assert ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "HIV") in labels
    again = client.put(
        f"/fhir/Condition/{created['id']}", json={**created, "meta": created["meta"]}
    )
    assert len(again.json()["meta"]["security"]) == 1  # labelling is idempotent
    plain = client.post("/fhir/Condition", json=condition("44054006")).json()
    assert "security" not in plain["meta"]


def test_categories_from_labels_and_confidentiality():
    config = load()
    labelled = label_sensitive(condition("93461009"), config)
    assert sensitive_categories(labelled, config) == {"gender-identity"}
    restricted = {
        **condition("44054006"),
        "meta": {
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
            ]
        },
    }
    assert sensitive_categories(restricted, config) == {"restricted"}
    psy = {
        **condition("44054006"),
        "meta": {
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}
            ]
        },
    }
    assert sensitive_categories(psy, config) == {"mental-health"}
    assert label_sensitive(condition("44054006"), config) == condition("44054006")
