"""Create, read, vread, update, patch and delete over HTTP, on both databases."""

from __future__ import annotations

import json

from tests.helpers import observation, patient, strip_meta

FHIR_JSON = "application/fhir+json"


def test_create_sets_id_version_and_headers(client):
    sent = patient(id="client-chosen")
    response = client.post("/fhir/Patient", json=sent)
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "client-chosen"  # POST ignores any id in the body
    assert body["meta"]["versionId"] == "1"
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"] == (
        f"http://testserver/fhir/Patient/{body['id']}/_history/1"
    )
    assert response.headers["content-type"].startswith(FHIR_JSON)
    assert "last-modified" in response.headers
    assert strip_meta(body) == {**{k: v for k, v in sent.items() if k != "id"}, "id": body["id"]}


def test_read_returns_exactly_the_stored_bytes(client):
    created = client.post("/fhir/Patient", json=patient())
    read = client.get(f"/fhir/Patient/{created.json()['id']}")
    assert read.status_code == 200
    assert read.content == created.content
    assert read.headers["etag"] == 'W/"1"'


def test_if_none_match_answers_not_modified(client):
    rid = client.post("/fhir/Patient", json=patient()).json()["id"]
    response = client.get(f"/fhir/Patient/{rid}", headers={"If-None-Match": 'W/"1"'})
    assert response.status_code == 304
    assert client.get(f"/fhir/Patient/{rid}", headers={"If-None-Match": 'W/"0"'}).status_code == 200


def test_update_bumps_version_and_vread_keeps_old(client):
    rid = client.post("/fhir/Patient", json=patient(family="Old")).json()["id"]
    updated = client.put(f"/fhir/Patient/{rid}", json=patient(family="New", id=rid))
    assert updated.status_code == 200
    assert updated.json()["meta"]["versionId"] == "2"
    assert updated.headers["etag"] == 'W/"2"'
    assert client.get(f"/fhir/Patient/{rid}/_history/1").json()["name"][0]["family"] == "Old"
    assert client.get(f"/fhir/Patient/{rid}/_history/2").json()["name"][0]["family"] == "New"
    assert client.get(f"/fhir/Patient/{rid}/_history/3").status_code == 404


def test_update_as_create_with_client_id(client):
    response = client.put("/fhir/Patient/nhs-9000000009", json=patient(id="nhs-9000000009"))
    assert response.status_code == 201
    assert response.json()["meta"]["versionId"] == "1"
    assert client.get("/fhir/Patient/nhs-9000000009").status_code == 200


def test_stale_if_match_is_refused_and_changes_nothing(client):
    rid = client.post("/fhir/Patient", json=patient(family="A")).json()["id"]
    client.put(f"/fhir/Patient/{rid}", json=patient(family="B", id=rid))
    stale = client.put(
        f"/fhir/Patient/{rid}", json=patient(family="C", id=rid), headers={"If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    current = client.get(f"/fhir/Patient/{rid}").json()
    assert current["name"][0]["family"] == "B"
    assert current["meta"]["versionId"] == "2"
    fresh = client.put(
        f"/fhir/Patient/{rid}", json=patient(family="C", id=rid), headers={"If-Match": 'W/"2"'}
    )
    assert fresh.status_code == 200


def test_update_with_mismatched_or_missing_id_is_400(client):
    rid = client.post("/fhir/Patient", json=patient()).json()["id"]
    mismatch = client.put(f"/fhir/Patient/{rid}", json=patient(id="other"))
    assert mismatch.status_code == 400
    assert mismatch.json()["issue"][0]["expression"] == ["Patient.id"]
    assert client.put(f"/fhir/Patient/{rid}", json=patient()).status_code == 400
    assert client.get(f"/fhir/Patient/{rid}").json()["meta"]["versionId"] == "1"


def test_delete_then_read_is_gone_and_history_keeps_it(client):
    rid = client.post("/fhir/Patient", json=patient()).json()["id"]
    deleted = client.delete(f"/fhir/Patient/{rid}")
    assert deleted.status_code == 204
    assert deleted.headers["etag"] == 'W/"2"'
    gone = client.get(f"/fhir/Patient/{rid}")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert client.get(f"/fhir/Patient/{rid}/_history/1").status_code == 200
    assert client.get(f"/fhir/Patient/{rid}/_history/2").status_code == 410
    history = client.get(f"/fhir/Patient/{rid}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert "resource" not in history["entry"][0]
    # Deleting again changes nothing; a later update brings the resource back as version 3.
    assert client.delete(f"/fhir/Patient/{rid}").status_code == 204
    revived = client.put(f"/fhir/Patient/{rid}", json=patient(id=rid))
    assert revived.status_code == 201
    assert revived.json()["meta"]["versionId"] == "3"


def test_delete_of_unknown_resource_is_204_without_a_version(client):
    response = client.delete("/fhir/Patient/never-was")
    assert response.status_code == 204
    assert client.get("/fhir/Patient/never-was").status_code == 404


def test_conditional_create_returns_existing_match(client):
    first = client.put("/fhir/Patient/p1", json=patient(id="p1"))
    assert first.status_code == 201
    again = client.post("/fhir/Patient", json=patient(), headers={"If-None-Exist": "_id=p1"})
    assert again.status_code == 200
    assert again.json()["id"] == "p1"
    fresh = client.post("/fhir/Patient", json=patient(), headers={"If-None-Exist": "_id=p2"})
    assert fresh.status_code == 201


def test_conditional_update_updates_the_match_or_creates(client):
    client.put("/fhir/Patient/p1", json=patient(id="p1", family="One"))
    updated = client.put("/fhir/Patient?_id=p1", json=patient(family="Two"))
    assert updated.status_code == 200
    assert updated.json()["id"] == "p1"
    assert updated.json()["meta"]["versionId"] == "2"
    created = client.put("/fhir/Patient?_id=none", json=patient(family="Three"))
    assert created.status_code == 201
    assert created.json()["id"] != "p1"


def test_conditional_update_with_several_matches_is_412_and_changes_nothing(client):
    client.put("/fhir/Patient/twin1", json=patient(id="twin1", family="Twin"))
    client.put("/fhir/Patient/twin2", json=patient(id="twin2", family="Twin"))
    refused = client.put("/fhir/Patient?family=Twin", json=patient(family="Changed"))
    assert refused.status_code == 412
    assert refused.json()["resourceType"] == "OperationOutcome"
    for pid in ("twin1", "twin2"):
        kept = client.get(f"/fhir/Patient/{pid}").json()
        assert kept["meta"]["versionId"] == "1" and kept["name"][0]["family"] == "Twin"
    assert len(client.get("/fhir/Patient?family=Changed").json().get("entry", [])) == 0


def test_json_patch(client):
    rid = client.post("/fhir/Patient", json=patient()).json()["id"]
    ops = [{"op": "add", "path": "/gender", "value": "female"}]
    response = client.patch(
        f"/fhir/Patient/{rid}",
        content=json.dumps(ops),
        headers={"Content-Type": "application/json-patch+json", "If-Match": 'W/"1"'},
    )
    assert response.status_code == 200
    assert response.json()["gender"] == "female"
    assert response.json()["meta"]["versionId"] == "2"
    history = client.get(f"/fhir/Patient/{rid}/_history").json()
    assert history["entry"][0]["request"]["method"] == "PATCH"


def test_json_patch_failures_change_nothing(client):
    rid = client.post("/fhir/Patient", json=patient()).json()["id"]
    headers = {"Content-Type": "application/json-patch+json"}
    failing_test = [{"op": "test", "path": "/gender", "value": "male"}]
    assert (
        client.patch(
            f"/fhir/Patient/{rid}", content=json.dumps(failing_test), headers=headers
        ).status_code
        == 422
    )
    change_id = [{"op": "replace", "path": "/id", "value": "x"}]
    assert (
        client.patch(
            f"/fhir/Patient/{rid}", content=json.dumps(change_id), headers=headers
        ).status_code
        == 422
    )
    invalid_result = [{"op": "add", "path": "/gender", "value": 12}]
    bad = client.patch(f"/fhir/Patient/{rid}", content=json.dumps(invalid_result), headers=headers)
    assert bad.status_code == 422
    assert bad.json()["issue"][0]["expression"] == ["Patient.gender"]
    not_a_patch = {"op": "add"}
    assert (
        client.patch(
            f"/fhir/Patient/{rid}", content=json.dumps(not_a_patch), headers=headers
        ).status_code
        == 400
    )
    stale = client.patch(
        f"/fhir/Patient/{rid}",
        content=json.dumps([{"op": "add", "path": "/gender", "value": "male"}]),
        headers={**headers, "If-Match": 'W/"9"'},
    )
    assert stale.status_code == 412
    assert client.get(f"/fhir/Patient/{rid}").json()["meta"]["versionId"] == "1"
    assert (
        client.patch("/fhir/Patient/missing", content=json.dumps([]), headers=headers).status_code
        == 404
    )


def test_prefer_return(client):
    minimal = client.post("/fhir/Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 201
    assert minimal.content == b""
    assert minimal.headers["location"]
    outcome = client.post(
        "/fhir/Patient", json=patient(), headers={"Prefer": "return=OperationOutcome"}
    )
    assert outcome.json()["resourceType"] == "OperationOutcome"
    representation = client.post(
        "/fhir/Patient", json=patient(), headers={"Prefer": "return=representation"}
    )
    assert representation.json()["resourceType"] == "Patient"


def test_unknown_type_and_bad_id(client):
    unknown = client.get("/fhir/Spaceship/1")
    assert unknown.status_code == 404
    assert unknown.json()["resourceType"] == "OperationOutcome"
    assert client.post("/fhir/Spaceship", json={"resourceType": "Spaceship"}).status_code == 404
    assert client.get("/fhir/Patient/bad_id!").status_code == 400
    assert client.get("/fhir/Patient/" + "x" * 65).status_code == 400


def test_resource_type_must_match_url(client):
    response = client.post("/fhir/Patient", json=observation("Patient/1"))
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["resourceType"]


def test_every_r4_type_is_accepted(client):
    # A type R4B dropped but R4 has, and a plain R4 type.
    assert (
        client.post(
            "/fhir/Basic", json={"resourceType": "Basic", "code": {"text": "note"}}
        ).status_code
        == 201
    )
    assert (
        client.post("/fhir/MedicinalProduct", json={"resourceType": "MedicinalProduct"}).status_code
        == 201
    )
