"""Realistic searches over Synthea patient records loaded as transaction Bundles.

The questions an integrated care team asks: find the patient by NHS number, or by name and
birth date; HbA1c results for a patient in a date range; active medications; encounters at an
organisation; the whole record with $everything.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from tests.conftest import shared_data
from tests.helpers import NHS
from tests.search.conftest import Fhir, next_link, typed_ids

BUNDLES = (
    "Tom_Goodwin_e20de9eb-6f2d-4871-a43f-bbede53293ed.json",
    "Marcos_Delagarza_4acb6705-25a7-430a-b799-a4ad8d7fbb38.json",
    "Alfreda_Wyman_3287b938-4670-47eb-91e5-e0ce3df71405.json",
)


def _post(fhir: Fhir, bundle: dict[str, Any]) -> dict[str, str]:
    response = fhir.client.post("/fhir", json=bundle)
    assert response.status_code == 200, response.text[:500]
    locations = {}
    for sent, got in zip(bundle["entry"], response.json()["entry"], strict=True):
        location = got["response"]["location"].split("/fhir/")[-1]
        locations[sent["fullUrl"]] = "/".join(location.split("/")[:2])
    return locations


@pytest.fixture
def loaded(fhir: Fhir) -> dict[str, Any]:
    folder = shared_data("synthea")
    tom: dict[str, Any] = {}
    for index, name in enumerate(BUNDLES):
        bundle = orjson.loads((folder / name).read_bytes())
        if index == 0:  # a UK patient: give Tom an NHS number
            patient = bundle["entry"][0]["resource"]
            patient["identifier"].append({"system": NHS, "value": "9000000009"})
            tom = {"bundle": bundle}
        ids = _post(fhir, bundle)
        if index == 0:
            tom["ids"] = ids
    return tom


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_find_the_patient(fhir: Fhir, loaded: dict[str, Any]) -> None:
    tom = loaded["ids"][loaded["bundle"]["entry"][0]["fullUrl"]]
    assert typed_ids(fhir.search(f"Patient?identifier={NHS}|9000000009")) == [tom]
    assert typed_ids(fhir.search("Patient?family=goodwin&given=tom&birthdate=1968-04-30")) == [tom]
    assert typed_ids(fhir.search("Patient?name=GOOD&birthdate=1968")) == [tom]
    assert fhir.ids("Patient?family=goodwin&birthdate=1968-05-01") == []


def test_hba1c_in_a_date_range_newest_first(fhir: Fhir, loaded: dict[str, Any]) -> None:
    tom = loaded["ids"][loaded["bundle"]["entry"][0]["fullUrl"]]
    bundle = fhir.search(
        f"Observation?patient={tom}&code=http://loinc.org|4548-4"
        "&date=ge2018-01-01&date=lt2020-01-01&_sort=-date"
    )
    found = [e["resource"]["effectiveDateTime"][:10] for e in bundle["entry"]]
    assert found == ["2019-05-07", "2018-05-01"]
    # 6.20 means [6.195, 6.205): above it lie 6.234 (2019), not 6.160 (2020)
    high = fhir.search(f"Observation?subject={tom}&code-value-quantity=4548-4$gt6.20")
    assert [e["resource"]["effectiveDateTime"][:4] for e in high["entry"]] == ["2019"]
    by_identifier = fhir.search(
        f"Observation?subject:Patient.identifier={NHS}|9000000009&code=4548-4&_summary=count"
    )
    assert by_identifier["total"] == 4


def test_active_medications_and_encounters_at_an_organisation(
    fhir: Fhir, loaded: dict[str, Any]
) -> None:
    tom = loaded["ids"][loaded["bundle"]["entry"][0]["fullUrl"]]
    meds = fhir.search(f"MedicationRequest?patient={tom}&status=active")
    assert [e["resource"]["medicationCodeableConcept"]["text"] for e in meds["entry"]] == [
        "Simvistatin 10 MG"
    ]
    org_url = _resources(loaded["bundle"], "Encounter")[0]["serviceProvider"]["reference"]
    org = loaded["ids"][org_url]
    encounters = fhir.all_ids(f"Encounter?service-provider={org}&patient={tom}&_count=3")
    assert len(encounters) == 8
    with_practitioners = fhir.search(
        f"Encounter?patient={tom}&_include=Encounter:practitioner&_include=Encounter:service-provider"
    )
    included = Counter(r.split("/")[0] for r in typed_ids(with_practitioners, "include"))
    assert included == {"Practitioner": 1, "Organization": 1}


def test_everything_returns_the_whole_record(fhir: Fhir, loaded: dict[str, Any]) -> None:
    tom = loaded["ids"][loaded["bundle"]["entry"][0]["fullUrl"]].split("/")[1]
    bundle = fhir.search(f"Patient/{tom}/$everything?_count=50")
    found = typed_ids(bundle)
    while (link := next_link(bundle)) is not None:
        bundle = fhir.search(link)
        found += typed_ids(bundle)
    assert len(found) == len(set(found))
    record = [ref for ref in found if not ref.startswith("Provenance/")]
    assert sorted(record) == sorted(loaded["ids"].values())  # 191 resources, nothing else
