"""Reference search: Type/id, id, absolute URLs, :Type, :identifier, chains and _has."""

from __future__ import annotations

import pytest

from tests.helpers import NHS, observation, patient
from tests.search.conftest import Fhir


@pytest.fixture
def record(fhir: Fhir) -> dict[str, str]:
    ann = fhir.create(patient("Smith", "Ann", identifier=[{"system": NHS, "value": "9000000009"}]))
    bob = fhir.create(patient("Jones", "Bob", identifier=[{"system": NHS, "value": "9000000017"}]))
    org = fhir.create(
        {
            "resourceType": "Organization",
            "name": "Preston GP",
            "identifier": [
                {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "P81001"}
            ],
        }
    )
    gp = fhir.create({"resourceType": "Practitioner", "name": [{"family": "Who"}]})
    ann = fhir.put(
        {
            **ann,
            "managingOrganization": {"reference": f"Organization/{org['id']}"},
            "generalPractitioner": [{"reference": f"Practitioner/{gp['id']}"}],
        }
    )
    hba1c = fhir.create(
        observation(f"Patient/{ann['id']}", performer=[{"reference": f"Practitioner/{gp['id']}"}])
    )
    lipid = fhir.create(observation(f"Patient/{bob['id']}", code="2093-3"))
    group = fhir.create({"resourceType": "Group", "type": "person", "actual": True})
    grouped = fhir.create(observation(f"Group/{group['id']}"))
    return {
        "ann": ann["id"],
        "bob": bob["id"],
        "org": org["id"],
        "gp": gp["id"],
        "hba1c": hba1c["id"],
        "lipid": lipid["id"],
        "group": group["id"],
        "grouped": grouped["id"],
    }


def test_type_and_id_forms(fhir: Fhir, record: dict[str, str]) -> None:
    ann = record["ann"]
    assert fhir.ids(f"Observation?subject=Patient/{ann}") == [record["hba1c"]]
    assert fhir.ids(f"Observation?subject={ann}") == [record["hba1c"]]
    assert fhir.ids(f"Observation?patient={ann}") == [record["hba1c"]]
    assert fhir.ids(f"Observation?subject:Patient={ann}") == [record["hba1c"]]
    assert fhir.ids(f"Observation?subject:Group={ann}") == []
    assert fhir.ids(f"Observation?subject=Group/{record['group']}") == [record["grouped"]]
    # patient only follows Patient references; subject any type
    assert fhir.ids(f"Observation?patient={record['group']}") == []


def test_absolute_url_under_the_base_is_local(fhir: Fhir, record: dict[str, str]) -> None:
    url = f"http://testserver/fhir/Patient/{record['ann']}"
    assert fhir.ids(f"Observation?subject={url}") == [record["hba1c"]]


def test_external_absolute_reference(fhir: Fhir) -> None:
    external = "https://other.example.org/fhir/Patient/77"
    made = fhir.create(observation(external))["id"]
    assert fhir.ids(f"Observation?subject={external}") == [made]
    assert fhir.ids("Observation?subject=Patient/77") == []


def test_reference_written_as_absolute_local_url_is_local(
    fhir: Fhir, record: dict[str, str]
) -> None:
    made = fhir.create(observation(f"http://testserver/fhir/Patient/{record['bob']}", code="x"))
    assert made["id"] in fhir.ids(f"Observation?subject=Patient/{record['bob']}")


def test_identifier_modifier_and_missing(fhir: Fhir) -> None:
    logical = fhir.create(
        {
            **observation("Patient/none"),
            "subject": {"identifier": {"system": NHS, "value": "9000000009"}},
        }
    )["id"]
    assert fhir.ids(f"Observation?subject:identifier={NHS}|9000000009") == [logical]
    undirected = fhir.create(
        {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    )["id"]
    assert fhir.ids("Observation?subject:missing=true") == [undirected]


def test_chains(fhir: Fhir, record: dict[str, str]) -> None:
    assert fhir.ids(f"Observation?subject:Patient.identifier={NHS}|9000000009") == [record["hba1c"]]
    assert fhir.ids("Observation?patient.name=jones") == [record["lipid"]]
    assert fhir.ids("Observation?subject.name=smith") == [record["hba1c"]]
    # two levels: Observation -> Patient -> Organization
    assert fhir.ids("Observation?patient.organization.name=preston") == [record["hba1c"]]
    assert fhir.ids(
        "Observation?patient.organization.identifier="
        "https://fhir.nhs.uk/Id/ods-organization-code|P81001"
    ) == [record["hba1c"]]
    assert fhir.ids("Observation?patient.general-practitioner.name=who") == [record["hba1c"]]
    assert fhir.ids("Observation?patient.name=nobody") == []


def test_chain_errors_name_the_parameter(fhir: Fhir) -> None:
    bad = fhir.search("Observation?code.name=x", status=400)
    assert bad["issue"][0]["expression"] == ["code.name"]
    bad = fhir.search("Observation?patient.birthdate=notadate", status=400)
    assert bad["issue"][0]["expression"] == ["patient.birthdate"]


def test_reverse_chains(fhir: Fhir, record: dict[str, str]) -> None:
    assert fhir.ids("Patient?_has:Observation:patient:code=4548-4") == [record["ann"]]
    assert fhir.ids("Patient?_has:Observation:patient:code=2093-3") == [record["bob"]]
    assert set(fhir.ids("Patient?_has:Observation:subject:status=final")) == {
        record["ann"],
        record["bob"],
    }
    # nested: practitioners who performed an observation on a patient named Smith
    assert fhir.ids("Practitioner?_has:Observation:performer:subject:Patient.name=smith") == [
        record["gp"]
    ]
    assert fhir.ids(
        "Organization?_has:Patient:organization:_has:Observation:patient:code=4548-4"
    ) == [record["org"]]


def test_has_errors(fhir: Fhir) -> None:
    bad = fhir.search("Patient?_has:Observation:code:status=final", status=400)
    assert bad["issue"][0]["expression"] == ["_has:Observation:code:status"]
