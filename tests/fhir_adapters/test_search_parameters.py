"""The search parameter table: complete for the register's resource types, well formed, and
every expression compiles and evaluates (the fast path agreeing with fhirpathpy)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from fhir_adapters.search_parameters import (
    PARAM_TYPES,
    RESOURCE_TYPES,
    _plain_path,
    compile_fhirpath,
    evaluate_term,
    get,
    parameters_for,
    resource_types,
    split_union,
)

# The parameters the brief and the R4 specification require, per resource type (a subset of
# what the table holds: the point is that none of these can silently disappear).
REQUIRED: dict[str, set[str]] = {
    "Patient": {
        "identifier",
        "name",
        "family",
        "given",
        "birthdate",
        "gender",
        "address-postalcode",
        "general-practitioner",
        "organization",
        "active",
        "address",
        "address-city",
        "telecom",
        "phone",
        "email",
        "deceased",
        "death-date",
        "link",
    },
    "Practitioner": {"identifier", "name", "family", "given", "active", "telecom"},
    "PractitionerRole": {"practitioner", "organization", "role", "specialty", "identifier"},
    "Organization": {"identifier", "name", "partof", "type", "active", "address"},
    "Observation": {
        "subject",
        "patient",
        "code",
        "category",
        "date",
        "value-quantity",
        "status",
        "encounter",
        "performer",
        "based-on",
        "component-code",
        "value-concept",
        "value-string",
        "code-value-quantity",
        "combo-code",
    },
    "Condition": {"patient", "subject", "code", "clinical-status", "onset-date", "category"},
    "MedicationRequest": {
        "patient",
        "subject",
        "code",
        "medication",
        "status",
        "authoredon",
        "intent",
        "requester",
    },
    "MedicationStatement": {"patient", "subject", "code", "medication", "status", "effective"},
    "Medication": {"code", "ingredient", "form", "status"},
    "AllergyIntolerance": {
        "patient",
        "code",
        "clinical-status",
        "verification-status",
        "criticality",
        "date",
    },
    "Encounter": {
        "patient",
        "subject",
        "date",
        "status",
        "class",
        "service-provider",
        "participant",
        "practitioner",
        "type",
        "reason-code",
        "episode-of-care",
    },
    "EpisodeOfCare": {"patient", "status", "date", "organization", "care-manager"},
    "CareTeam": {"patient", "subject", "participant", "status", "category", "date", "encounter"},
    "Procedure": {"patient", "subject", "code", "date", "performer", "status"},
    "Immunization": {"patient", "vaccine-code", "date", "status"},
    "DiagnosticReport": {"patient", "subject", "code", "date", "result", "status", "category"},
    "ServiceRequest": {"patient", "subject", "code", "status", "requester", "performer"},
    "QuestionnaireResponse": {"patient", "subject", "questionnaire", "authored", "status"},
    "Questionnaire": {"url", "name", "title", "status", "code", "version"},
    "Consent": {"patient", "status", "category", "scope", "action", "actor", "period"},
    "AuditEvent": {"patient", "agent", "entity", "date", "type", "subtype", "action", "outcome"},
    "DetectedIssue": {"patient", "code", "implicated", "identified"},
    "Provenance": {"target", "patient", "agent", "recorded", "entity"},
    "DocumentReference": {"patient", "subject", "type", "date", "status", "category"},
    "Flag": {"patient", "subject", "date", "author"},
    "Location": {"name", "address", "identifier", "organization", "partof", "type"},
    "RelatedPerson": {"patient", "name", "identifier", "relationship", "birthdate"},
    "Composition": {"patient", "subject", "type", "date", "section", "status", "entry"},
    "List": {"patient", "subject", "code", "item", "status", "title"},
    "Goal": {"patient", "subject", "lifecycle-status", "target-date", "start-date"},
    "CarePlan": {
        "patient",
        "subject",
        "status",
        "category",
        "date",
        "activity-code",
        "care-team",
        "goal",
    },
}
RESOURCE_LEVEL = {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"}


def _raw_table() -> dict[str, Any]:
    text = resources.files("fhir_adapters").joinpath("data/search-parameters.json").read_text()
    return json.loads(text)


@pytest.mark.parametrize("resource_type", sorted(REQUIRED))
def test_required_parameters_are_defined(resource_type: str) -> None:
    params = parameters_for(resource_type)
    missing = (REQUIRED[resource_type] | RESOURCE_LEVEL) - set(params)
    assert not missing


def test_resource_level_parameters_apply_to_any_type() -> None:
    for resource_type in ("Patient", "Basic", "Binary"):
        params = parameters_for(resource_type)
        assert set(params) >= RESOURCE_LEVEL
        assert params["_id"].expression == f"{resource_type}.id"
        assert params["_lastUpdated"].type == "date"


def test_get_returns_none_for_unknown_parameters() -> None:
    assert get("Patient", "no-such-param") is None
    found = get("Observation", "code")
    assert found is not None and found.type == "token"


def test_data_file_has_one_parameter_per_line() -> None:
    text = resources.files("fhir_adapters").joinpath("data/search-parameters.json").read_text()
    lines = [line for line in text.splitlines() if line.strip().startswith('{"name"')]
    assert len(lines) == len(_raw_table()["parameters"])


def test_definitions_are_well_formed() -> None:
    seen: set[tuple[str, str]] = set()
    for item in _raw_table()["parameters"]:
        assert item["type"] in PARAM_TYPES
        for base in item["base"]:
            assert base == "Resource" or base in RESOURCE_TYPES, base
            assert (base, item["name"]) not in seen
            seen.add((base, item["name"]))
        for target in item.get("target", ()):
            assert target in RESOURCE_TYPES, (item["name"], target)
        if "target" in item:
            assert item["type"] == "reference"
        assert "resolve()" not in item["expression"]
        if item["type"] == "composite":
            assert len(item["components"]) >= 2


def test_composite_components_name_parameters_of_the_same_type() -> None:
    for resource_type in resource_types():
        for param in parameters_for(resource_type).values():
            for component in param.components:
                definition = get(resource_type, component.definition)
                assert definition is not None, (param, component.definition)
                assert definition.type not in ("composite", "special")


def test_every_expression_compiles() -> None:
    for resource_type in resource_types():
        for param in parameters_for(resource_type).values():
            assert param.terms
            for term in param.terms:
                assert term.startswith(resource_type)
                compile_fhirpath(term)
            for component in param.components:
                for term in component.terms:
                    compile_fhirpath(term)


def test_split_union_respects_brackets_and_quotes() -> None:
    assert split_union("A.b | (A.c as X) | A.d.where(e = 'x|y')") == [
        "A.b",
        "(A.c as X)",
        "A.d.where(e = 'x|y')",
    ]
    assert split_union("A.b") == ["A.b"]


def test_multi_type_expressions_are_narrowed_per_type() -> None:
    observation = parameters_for("Observation")["combo-code"]
    assert observation.terms == ("Observation.code", "Observation.component.code")


def test_plain_path_recognition() -> None:
    assert _plain_path("Observation.value.ofType(Quantity)") is not None
    assert _plain_path("Patient.telecom.where(system='email')") is not None
    assert _plain_path("Patient.deceased.exists() and Patient.deceased != false") is None
    assert _plain_path("NotAType.x") is None


def _sample(all_resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # every HL7 example and bulk resource, and every 5th Synthea resource (for test time)
    synthea = [r for r in all_resources if "synthea-5-2019" in json.dumps(r.get("meta", {}))]
    others = [r for r in all_resources if "synthea-5-2019" not in json.dumps(r.get("meta", {}))]
    return others + synthea[::5]


def test_fast_path_agrees_with_fhirpathpy(all_resources: list[dict[str, Any]]) -> None:
    """The direct JSON walk gives exactly fhirpathpy's typed results, on the sample data."""
    compared = 0
    for resource in _sample(all_resources):
        for param in parameters_for(resource["resourceType"]).values():
            for term in param.terms:
                if _plain_path(term) is None:
                    continue
                fast = evaluate_term(term, resource)
                slow = evaluate_term(term, resource, fast=False)
                assert fast == slow, (resource.get("id"), term)
                compared += bool(fast)
            for component in param.components:
                for root in param.evaluate(resource):
                    for term in component.terms:
                        assert evaluate_term(term, root) == evaluate_term(term, root, fast=False), (
                            resource.get("id"),
                            param.name,
                            term,
                        )
    assert compared > 10_000


def test_every_expression_evaluates_on_the_sample_data(
    all_resources: list[dict[str, Any]],
) -> None:
    """No expression raises on real data, and most parameters of the data's types find values."""
    found: set[tuple[str, str]] = set()
    for resource in all_resources:
        for param in parameters_for(resource["resourceType"]).values():
            if param.evaluate(resource):
                found.add((resource["resourceType"], param.name))
    for must in [
        ("Patient", "birthdate"),
        ("Observation", "value-quantity"),
        ("Observation", "code-value-quantity"),
        ("Encounter", "class"),
        ("Claim", "patient"),
        ("Patient", "deceased"),
        ("Patient", "death-date"),
        ("Consent", "actor"),
        ("AuditEvent", "patient"),
    ]:
        assert must in found
