"""Patient/$everything: the compartment, then what it refers to; _since, _type, paging."""

from __future__ import annotations

import pytest

from tests.helpers import observation, patient
from tests.search.conftest import Fhir, next_link, typed_ids


@pytest.fixture
def record(fhir: Fhir) -> dict[str, str]:
    org = fhir.create({"resourceType": "Organization", "name": "Hospital"})["id"]
    gp = fhir.create({"resourceType": "Practitioner", "name": [{"family": "Who"}]})["id"]
    loc = fhir.create({"resourceType": "Location", "name": "Ward 1"})["id"]
    med = fhir.create({"resourceType": "Medication", "code": {"text": "metformin"}})["id"]
    unrelated = fhir.create({"resourceType": "Organization", "name": "Elsewhere"})["id"]
    ann = fhir.create(
        patient("Smith", "Ann", managingOrganization={"reference": f"Organization/{org}"})
    )["id"]
    bob = fhir.create(patient("Jones", "Bob"))["id"]
    enc = fhir.create(
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": f"Patient/{ann}"},
            "participant": [{"individual": {"reference": f"Practitioner/{gp}"}}],
            "location": [{"location": {"reference": f"Location/{loc}"}}],
        }
    )["id"]
    rx = fhir.create(
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": f"Patient/{ann}"},
            "medicationReference": {"reference": f"Medication/{med}"},
        }
    )["id"]
    obs = fhir.create(observation(f"Patient/{ann}"))["id"]
    fhir.create(observation(f"Patient/{bob}"))
    return {
        "org": org,
        "gp": gp,
        "loc": loc,
        "med": med,
        "unrelated": unrelated,
        "ann": ann,
        "bob": bob,
        "enc": enc,
        "rx": rx,
        "obs": obs,
    }


def _everything(fhir: Fhir, url: str) -> list[str]:
    bundle = fhir.search(url)
    assert bundle["type"] == "searchset"
    found = typed_ids(bundle)
    while (link := next_link(bundle)) is not None:
        assert link.startswith("http://testserver/fhir/Patient/")
        bundle = fhir.search(link)
        found += typed_ids(bundle)
    return found


def test_everything_holds_the_compartment_and_its_references(
    fhir: Fhir, record: dict[str, str]
) -> None:
    everything = _everything(fhir, f"Patient/{record['ann']}/$everything")
    # Provenance of the Patient's own versions is in the compartment too (access issue).
    assert any(ref.startswith("Provenance/") for ref in everything)
    found = [ref for ref in everything if not ref.startswith("Provenance/")]
    r = record
    assert found == [
        f"Patient/{r['ann']}",
        f"Encounter/{r['enc']}",
        f"MedicationRequest/{r['rx']}",
        f"Observation/{r['obs']}",
        f"Organization/{r['org']}",
        f"Practitioner/{r['gp']}",
        f"Location/{r['loc']}",
        f"Medication/{r['med']}",
    ]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 8, 9])
def test_paging_across_both_parts(fhir: Fhir, record: dict[str, str], count: int) -> None:
    whole = _everything(fhir, f"Patient/{record['ann']}/$everything")
    paged = _everything(fhir, f"Patient/{record['ann']}/$everything?_count={count}")
    assert paged == whole


def test_type_and_since(fhir: Fhir, record: dict[str, str]) -> None:
    ann = record["ann"]
    assert _everything(fhir, f"Patient/{ann}/$everything?_type=Observation,Practitioner") == [
        f"Observation/{record['obs']}",
        f"Practitioner/{record['gp']}",
    ]
    later = fhir.create(observation(f"Patient/{ann}", code="2093-3"))
    since = later["meta"]["lastUpdated"]
    assert _everything(fhir, f"Patient/{ann}/$everything?_since={since}") == [
        f"Observation/{later['id']}"
    ]
    fhir.search(f"Patient/{ann}/$everything?_type=Nonsense", status=400)
    fhir.search(f"Patient/{ann}/$everything?_since=yesterday", status=400)


def test_unknown_patient_and_post(fhir: Fhir, record: dict[str, str]) -> None:
    fhir.search("Patient/nobody/$everything", status=404)
    response = fhir.client.post(
        f"/fhir/Patient/{record['ann']}/$everything",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "_type", "valueString": "Encounter"}],
        },
    )
    assert response.status_code == 200
    assert typed_ids(response.json()) == [f"Encounter/{record['enc']}"]


def test_listed_in_the_capability_statement(fhir: Fhir) -> None:
    statement = fhir.client.get("/fhir/metadata").json()
    patient_entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert any(op["name"] == "everything" for op in patient_entry["operation"])
    names = {p["name"] for p in patient_entry["searchParam"]}
    assert {
        "identifier",
        "birthdate",
        "_id",
        "_lastUpdated",
        "_tag",
        "_profile",
        "_security",
    } <= names
    assert "1000" in statement["rest"][0]["documentation"]
