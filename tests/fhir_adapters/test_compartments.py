"""Patient compartment membership and the primary patient, from the R4 CompartmentDefinition."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fhir_adapters.compartments import (
    compartment_parameters,
    patient_compartment,
    primary_patient,
)
from fhir_adapters.search_parameters import get, resource_types

# Types the register defines parameters for but the R4 Patient compartment leaves out.
NOT_IN_COMPARTMENT = {
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Medication",
    "Questionnaire",
    "Device",
}


def test_every_compartment_parameter_of_a_defined_type_exists() -> None:
    """For each type with parameters of its own, the compartment names only known references."""
    defined = set(resource_types())
    for resource_type, names in compartment_parameters().items():
        if resource_type not in defined:
            continue
        for name in names:
            param = get(resource_type, name)
            assert param is not None, (resource_type, name)
            assert param.type == "reference"
            assert not param.targets or "Patient" in param.targets, (resource_type, name)


def test_defined_types_are_in_the_compartment_unless_the_spec_leaves_them_out() -> None:
    for resource_type in resource_types():
        in_compartment = resource_type in compartment_parameters()
        assert in_compartment != (resource_type in NOT_IN_COMPARTMENT), resource_type


def test_patient_is_in_its_own_compartment_and_in_linked_ones() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "link": [
            {"other": {"reference": "Patient/p0"}, "type": "replaces"},
            {"other": {"reference": "RelatedPerson/r1"}, "type": "seealso"},
        ],
    }
    assert patient_compartment(patient) == ["p1", "p0"]
    assert primary_patient(patient) == "p1"


def test_subject_comes_before_performer() -> None:
    obs = {
        "resourceType": "Observation",
        "performer": [{"reference": "Patient/self"}],
        "subject": {"reference": "Patient/p2"},
    }
    assert patient_compartment(obs) == ["p2", "self"]
    assert primary_patient(obs) == "p2"
    group_obs = {
        "resourceType": "Observation",
        "subject": {"reference": "Group/g"},
        "performer": [{"reference": "Patient/p3"}],
    }
    assert primary_patient(group_obs) == "p3"


def test_only_local_patients_count() -> None:
    obs = {
        "resourceType": "Observation",
        "subject": {"reference": "https://elsewhere.example/fhir/Patient/x"},
    }
    assert patient_compartment(obs) == []
    obs["subject"] = {"reference": "https://register.example/fhir/Patient/x"}
    assert patient_compartment(obs, local_bases=("https://register.example/fhir/",)) == ["x"]
    logical = {
        "resourceType": "Observation",
        "subject": {
            "identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}
        },
    }
    assert patient_compartment(logical) == []


def test_resources_outside_the_compartment() -> None:
    assert patient_compartment({"resourceType": "Practitioner", "id": "d"}) == []
    assert primary_patient({"resourceType": "Organization", "id": "o"}) is None


def test_every_synthea_record_belongs_to_its_patient(
    synthea_records: list[list[dict[str, Any]]],
) -> None:
    """With references resolved as a server would, each resource's primary patient is the
    Bundle's Patient (Organizations and Practitioners belong to nobody)."""
    seen: Counter[str] = Counter()
    for resources in synthea_records:
        [patient] = [r for r in resources if r["resourceType"] == "Patient"]
        for resource in resources:
            kind = resource["resourceType"]
            owner = primary_patient(resource)
            if kind in ("Organization", "Practitioner"):
                assert owner is None
            else:
                assert owner == patient["id"], (kind, resource["id"])
                assert patient_compartment(resource) == [patient["id"]]
            seen[kind] += 1
    assert seen["Observation"] > 1000 and seen["Claim"] > 0 and seen["ImagingStudy"] > 0


def test_bulk_records_belong_to_their_patient(bulk_resources: list[dict[str, Any]]) -> None:
    patients = {r["id"] for r in bulk_resources if r["resourceType"] == "Patient"}
    for resource in bulk_resources:
        owner = primary_patient(resource)
        if resource["resourceType"] in NOT_IN_COMPARTMENT:
            assert owner is None
        else:
            assert owner in patients, (resource["resourceType"], resource["id"])
