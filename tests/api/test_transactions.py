"""Transaction and batch Bundles posted to the base URL."""

from __future__ import annotations

import base64
import json

import pytest

from tests.helpers import observation, patient


def _tx(*entries: dict, kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _post(resource: dict, full_url: str | None = None, **request: str) -> dict:
    entry = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


@pytest.mark.parametrize("path", ["/fhir", "/fhir/"])
def test_transaction_resolves_placeholders(client, path):
    bundle = _tx(
        _post(observation("urn:uuid:11111111-1111-1111-1111-111111111111")),
        _post(patient(), "urn:uuid:11111111-1111-1111-1111-111111111111"),
    )
    response = client.post(path, json=bundle)
    assert response.status_code == 200
    result = response.json()
    assert result["type"] == "transaction-response"
    obs_entry, pat_entry = result["entry"]
    assert obs_entry["response"]["status"].startswith("201")
    patient_id = pat_entry["response"]["location"].split("/")[1]
    assert obs_entry["resource"]["subject"]["reference"] == f"Patient/{patient_id}"
    assert obs_entry["response"]["etag"] == 'W/"1"'
    stored = client.get("/fhir/" + obs_entry["response"]["location"].rsplit("/_history", 1)[0])
    assert stored.json()["subject"]["reference"] == f"Patient/{patient_id}"


def test_transaction_is_all_or_nothing(client):
    before = client.get("/fhir/_history").json().get("entry", [])
    bundle = _tx(
        _post(patient(), "urn:uuid:a"),
        _post({"resourceType": "Observation", "code": {"text": "no status"}}),
    )
    response = client.post("/fhir", json=bundle)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[1]" in outcome["issue"][0]["diagnostics"]
    assert client.get("/fhir/_history").json().get("entry", []) == before


def test_transaction_order_delete_post_put_get(client):
    client.put("/fhir/Patient/gone", json=patient(id="gone"))
    client.put("/fhir/Patient/kept", json=patient(id="kept", family="Before"))
    bundle = _tx(
        {"request": {"method": "GET", "url": "Patient/kept"}},
        {
            "resource": patient(id="kept", family="After"),
            "request": {"method": "PUT", "url": "Patient/kept"},
        },
        {"request": {"method": "DELETE", "url": "Patient/gone"}},
        _post(patient(family="New")),
    )
    result = client.post("/fhir", json=bundle).json()
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses[0].startswith("200") and statuses[1].startswith("200")
    assert statuses[3].startswith("201")
    # GET ran last, so it sees the PUT's result.
    assert result["entry"][0]["resource"]["name"][0]["family"] == "After"
    assert client.get("/fhir/Patient/gone").status_code == 410


def test_transaction_runs_deletes_before_creates(client):
    """A conditional create listed before a delete of its match still runs after it: the
    delete takes the old patient away first, so the create finds none and makes a new one."""
    nhs = "https://fhir.nhs.uk/Id/nhs-number"
    number = [{"system": nhs, "value": "9000000001"}]
    old = client.post("/fhir/Patient", json=patient(family="Old", identifier=number)).json()
    bundle = _tx(
        _post(patient(family="New", identifier=number), ifNoneExist=f"identifier={nhs}|9000000001"),
        {"request": {"method": "DELETE", "url": f"Patient?identifier={nhs}|9000000001"}},
    )
    result = client.post("/fhir", json=bundle)
    assert result.status_code == 200, result.text
    created = result.json()["entry"][0]["response"]
    assert created["status"].startswith("201"), created
    assert client.get(f"/fhir/Patient/{old['id']}").status_code == 410
    found = client.get(f"/fhir/Patient?identifier={nhs}|9000000001").json()
    assert [e["resource"]["name"][0]["family"] for e in found.get("entry", [])] == ["New"]


def test_transaction_stale_if_match_rolls_back(client):
    client.put("/fhir/Patient/x", json=patient(id="x", family="One"))
    bundle = _tx(
        _post(patient(family="Should not exist")),
        {
            "resource": patient(id="x", family="Two"),
            "request": {"method": "PUT", "url": "Patient/x", "ifMatch": 'W/"7"'},
        },
    )
    assert client.post("/fhir", json=bundle).status_code == 412
    assert client.get("/fhir/Patient/x").json()["name"][0]["family"] == "One"
    assert len(client.get("/fhir/Patient/_history").json()["entry"]) == 1


def test_conditional_create_and_reference_inside_transaction(client):
    client.put("/fhir/Patient/known", json=patient(id="known"))
    bundle = _tx(
        _post(patient(), "urn:uuid:p", ifNoneExist="_id=known"),
        _post(observation("urn:uuid:p")),
        _post(observation("Patient?_id=known")),
    )
    result = client.post("/fhir", json=bundle).json()
    assert result["entry"][0]["response"]["status"].startswith("200")
    assert result["entry"][1]["resource"]["subject"]["reference"] == "Patient/known"
    assert result["entry"][2]["resource"]["subject"]["reference"] == "Patient/known"
    unresolvable = _tx(_post(observation("Patient?_id=nobody")))
    assert client.post("/fhir", json=unresolvable).status_code == 412
    dangling = _tx(_post(observation("urn:uuid:missing")))
    assert client.post("/fhir", json=dangling).status_code == 400


def test_transaction_patch_entry(client):
    client.put("/fhir/Patient/pp", json=patient(id="pp"))
    document = [{"op": "add", "path": "/gender", "value": "other"}]
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(json.dumps(document).encode()).decode(),
    }
    result = client.post(
        "/fhir", json=_tx({"resource": binary, "request": {"method": "PATCH", "url": "Patient/pp"}})
    )
    assert result.status_code == 200
    assert client.get("/fhir/Patient/pp").json()["gender"] == "other"


def test_batch_entries_are_independent(client):
    bundle = _tx(
        _post(patient(family="Good")),
        _post({"resourceType": "Observation", "code": {"text": "no status"}}),
        {"request": {"method": "GET", "url": "Patient/nobody"}},
        {"request": {"method": "BREW", "url": "Coffee"}},
        kind="batch",
    )
    response = client.post("/fhir", json=bundle)
    assert response.status_code == 200
    entries = response.json()["entry"]
    assert response.json()["type"] == "batch-response"
    assert entries[0]["response"]["status"].startswith("201")
    assert entries[1]["response"]["status"].startswith("422")
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert entries[2]["response"]["status"].startswith("404")
    assert entries[3]["response"]["status"].startswith("400")
    assert len(client.get("/fhir/Patient/_history").json()["entry"]) == 1


def test_other_bundles_are_not_processed_at_base(client):
    response = client.post("/fhir", json={"resourceType": "Bundle", "type": "collection"})
    assert response.status_code == 400
    assert client.post("/fhir", json=patient()).status_code == 400


def test_prefer_minimal_leaves_resources_out(client):
    response = client.post(
        "/fhir", json=_tx(_post(patient())), headers={"Prefer": "return=minimal"}
    )
    entry = response.json()["entry"][0]
    assert "resource" not in entry
    assert entry["response"]["location"].startswith("Patient/")
