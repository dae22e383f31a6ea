"""fhirpy (sync) against a real server: create, read, update, search with paging, transaction,
$everything; base URL with and without a trailing slash."""

from __future__ import annotations

import pytest
from fhirpy import SyncFHIRClient

from tests.clients.flows import NHS, hba1c, patient, transaction


@pytest.mark.parametrize("slash", ["", "/"])
def test_main_flows(live_base: str, live_token: str, slash: str) -> None:
    client = SyncFHIRClient(live_base + slash, authorization=f"Bearer {live_token}")
    ann = client.resource("Patient", **patient("9000000009"))
    ann.save()
    assert ann.id
    read = client.reference("Patient", ann.id).to_resource()
    assert read["identifier"][0]["value"] == "9000000009"
    read["birthDate"] = "1961-04-03"
    read.save()
    assert client.reference("Patient", ann.id).to_resource()["meta"]["versionId"] == "2"

    for day in range(1, 26):
        client.resource("Observation", **hba1c(ann.id, day)).save()
    search = client.resources("Observation").search(subject=f"Patient/{ann.id}").limit(7)
    every = search.fetch_all()
    assert len(every) == 25 and len({o.id for o in every}) == 25
    assert search.count() == 25
    newest = client.resources("Observation").search(patient=ann.id).sort("-date").first()
    assert newest["effectiveDateTime"] == "2024-01-25"
    found = client.resources("Patient").search(identifier=f"{NHS}|9000000009").fetch()
    assert [p.id for p in found] == [ann.id]

    response = client.execute("/" if slash else "", method="post", data=transaction("9000000017"))
    assert response["type"] == "transaction-response"
    assert [e["response"]["status"][:3] for e in response["entry"]] == ["201", "201"]

    everything = client.resource("Patient", id=ann.id).execute("$everything", method="get")
    assert everything["resourceType"] == "Bundle"
    # The record, and the Provenance of the Patient's own versions (who registered/updated it).
    assert {e["resource"]["resourceType"] for e in everything["entry"]} == {
        "Patient",
        "Observation",
        "Provenance",
    }
