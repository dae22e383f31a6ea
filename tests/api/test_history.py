"""History at instance, type and system level, with _since, _count and stable paging."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from tests.helpers import observation, patient


def _next(bundle: dict) -> str | None:
    return next(
        (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
    )


def _follow(client, url: str) -> list[dict]:
    entries: list[dict] = []
    pages = 0
    while url and pages < 100:
        assert url.startswith("http://testserver/fhir/")
        bundle = client.get(url).json()
        assert bundle["type"] == "history"
        entries.extend(bundle.get("entry", []))
        url = _next(bundle)
        pages += 1
    return entries


def test_type_and_system_history(client):
    p = client.post("/fhir/Patient", json=patient()).json()["id"]
    client.post("/fhir/Observation", json=observation(f"Patient/{p}"))
    client.put(f"/fhir/Patient/{p}", json=patient(id=p, family="Changed"))
    patients = client.get("/fhir/Patient/_history").json()
    assert [e["resource"]["meta"]["versionId"] for e in patients["entry"]] == ["2", "1"]
    everything = client.get("/fhir/_history").json()
    # Every write also records its Provenance (who wrote it), which system history shows too.
    entries = [e for e in everything["entry"] if e["resource"]["resourceType"] != "Provenance"]
    assert [e["fullUrl"].split("/fhir/")[1].split("/")[0] for e in entries] == [
        "Patient",
        "Observation",
        "Patient",
    ]
    assert entries[0]["response"]["etag"] == 'W/"2"'
    provenance = [e["resource"] for e in everything["entry"] if e not in entries]
    assert [p["target"][0]["reference"] for p in provenance] == [
        f"Patient/{p}/_history/2",
        f"Observation/{everything['entry'][3]['resource']['id']}/_history/1",
        f"Patient/{p}/_history/1",
    ]


def test_since_filters_by_last_updated(client):
    p = client.post("/fhir/Patient", json=patient()).json()["id"]
    client.post("/fhir/Patient", json=patient(family="Unchanged"))  # before the cut: left out
    time.sleep(0.01)
    cut = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    time.sleep(0.01)
    client.put(f"/fhir/Patient/{p}", json=patient(id=p, family="Later"))
    entries = client.get(f"/fhir/Patient/{p}/_history", params={"_since": cut}).json()["entry"]
    assert [e["resource"]["meta"]["versionId"] for e in entries] == ["2"]
    o = client.post("/fhir/Observation", json=observation(f"Patient/{p}")).json()["id"]

    def since(path: str) -> set[str]:
        """What changed after the cut, by Type/id (the register's own Provenance aside)."""
        entries = client.get(path, params={"_since": cut}).json()["entry"]
        found = {e["fullUrl"].split("/fhir/")[1].split("/_history")[0] for e in entries}
        return {f for f in found if not f.startswith("Provenance/")}

    assert since("/fhir/Patient/_history") == {f"Patient/{p}"}  # type level
    assert since("/fhir/_history") == {f"Patient/{p}", f"Observation/{o}"}  # system level
    bad = client.get("/fhir/_history", params={"_since": "last tuesday"})
    assert bad.status_code == 400
    assert bad.json()["issue"][0]["expression"] == ["_since"]


def test_paging_is_complete_and_stable_while_others_write(client):
    ids = [
        client.post("/fhir/Patient", json=patient(family=f"P{i}")).json()["id"] for i in range(7)
    ]
    first = client.get("/fhir/Patient/_history", params={"_count": 3}).json()
    assert len(first["entry"]) == 3
    # A write between pages must not shift what later pages hold.
    client.post("/fhir/Patient", json=patient(family="Intruder"))
    rest = _follow(client, _next(first))
    seen = [e["resource"]["id"] for e in first["entry"] + rest]
    assert seen == list(reversed(ids))
    query = parse_qs(urlsplit(_next(first)).query)
    assert query["_count"] == ["3"]


def test_history_of_unknown_resource_is_404(client):
    assert client.get("/fhir/Patient/nobody/_history").status_code == 404


def test_bad_page_token_is_400(client):
    response = client.get("/fhir/_history", params={"_page": "%%%not-a-token"})
    assert response.status_code == 400
