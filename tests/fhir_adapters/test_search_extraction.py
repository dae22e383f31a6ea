"""Index extraction: each FHIR data type becomes the rows the R4 search rules call for."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from fhir_adapters.search_extraction import (
    CompositeEntry,
    DateEntry,
    IndexEntry,
    NumberEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    UriEntry,
    extract,
)
from fhir_adapters.search_values import DATE_MAX, DATE_MIN


def rows(resource: dict[str, Any], param: str, **kw: Any) -> list[IndexEntry]:
    return [entry for entry in extract(resource, **kw) if entry.param == param]


def utc(
    year: int,
    month: int = 1,
    day: int = 1,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    micro: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


@pytest.fixture
def patient(load_example: Any) -> dict[str, Any]:
    return load_example("patient-example.json")


# -- whole-data checks -----------------------------------------------------------------------


def test_every_sample_resource_extracts_well_typed_rows(
    all_resources: list[dict[str, Any]],
) -> None:
    kinds: set[str] = set()
    for resource in all_resources:
        before = copy.deepcopy(resource)
        entries = extract(resource)
        assert resource == before  # extraction never modifies its input
        assert len(entries) == len(set(entries))
        for entry in entries:
            kinds.add(entry.kind)
            _check_entry(entry)
    assert {"token", "string", "date", "reference", "quantity", "uri", "composite"} <= kinds


def _check_entry(entry: IndexEntry) -> None:
    if isinstance(entry, DateEntry):
        assert entry.low.tzinfo is UTC and entry.high.tzinfo is UTC
        assert entry.low <= entry.high
    elif isinstance(entry, TokenEntry):
        assert entry.system or entry.code or entry.text
    elif isinstance(entry, StringEntry):
        assert entry.value_norm and entry.value_norm == entry.value_norm.strip()
    elif isinstance(entry, QuantityEntry | NumberEntry):
        assert entry.low is None or entry.high is None or entry.low <= entry.high
        if entry.value is not None:
            assert isinstance(entry.value, Decimal)
    elif isinstance(entry, ReferenceEntry):
        assert entry.url or entry.identifier_value or entry.identifier_system
    elif isinstance(entry, CompositeEntry):
        for part in entry.components:
            _check_entry(part)
    else:
        assert isinstance(entry, UriEntry) and entry.uri


# -- token -----------------------------------------------------------------------------------


def test_identifier_gives_system_value_and_type_for_of_type(patient: dict[str, Any]) -> None:
    [row] = rows(patient, "identifier")
    assert isinstance(row, TokenEntry)
    assert (row.system, row.code) == ("urn:oid:1.2.36.146.595.217.0.1", "12345")
    assert (row.type_system, row.type_code) == (
        "http://terminology.hl7.org/CodeSystem/v2-0203",
        "MR",
    )


def test_codeable_concept_gives_one_row_per_coding_and_one_for_text() -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": [
                {"system": "http://loinc.org", "code": "4548-4", "display": "Hemoglobin A1c"},
                {"system": "http://snomed.info/sct", "code": "1019431000000105"},
            ],
            "text": "HbA1c  Level",
        },
    }
    code_rows = rows(obs, "code")
    assert TokenEntry("code", "http://loinc.org", "4548-4", "hemoglobin a1c") in code_rows
    assert TokenEntry("code", "http://snomed.info/sct", "1019431000000105", None) in code_rows
    assert TokenEntry("code", None, None, "hba1c level") in code_rows
    assert rows(obs, "status") == [TokenEntry("status", None, "final")]


def test_booleans_and_contact_points(patient: dict[str, Any]) -> None:
    assert rows(patient, "active") == [TokenEntry("active", None, "true")]
    assert rows(patient, "deceased") == [TokenEntry("deceased", None, "false")]
    phones = {row.code for row in rows(patient, "phone") if isinstance(row, TokenEntry)}
    assert phones == {"(03) 5555 6473", "(03) 3410 5613", "(03) 5555 8834"}
    assert rows(patient, "email") == []
    # the telecom without a value gives nothing; the three phones appear under telecom too
    assert len(rows(patient, "telecom")) == 3


def test_deceased_datetime_is_deceased_true_and_a_death_date() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p",
        "deceasedDateTime": "2015-02-14T13:42:00+10:00",
    }
    assert rows(patient, "deceased") == [TokenEntry("deceased", None, "true")]
    [death] = rows(patient, "death-date")
    assert death == DateEntry("death-date", utc(2015, 2, 14, 3, 42), utc(2015, 2, 14, 3, 42, 1))
    alive = {"resourceType": "Patient", "id": "q"}
    assert rows(alive, "deceased") == [TokenEntry("deceased", None, "false")]


def test_meta_parameters() -> None:
    obs = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "x"},
        "meta": {
            "lastUpdated": "2024-05-01T10:00:00.123Z",
            "source": "urn:src",
            "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation"],
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
            ],
            "tag": [{"system": "urn:t", "code": "a", "display": "A tag"}],
        },
    }
    assert rows(obs, "_id") == [TokenEntry("_id", None, "o1")]
    assert rows(obs, "_lastUpdated") == [
        DateEntry(
            "_lastUpdated", utc(2024, 5, 1, 10, 0, 0, 123000), utc(2024, 5, 1, 10, 0, 0, 124000)
        )
    ]
    assert rows(obs, "_security") == [
        TokenEntry("_security", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R")
    ]
    assert rows(obs, "_tag") == [TokenEntry("_tag", "urn:t", "a", "a tag")]
    assert rows(obs, "_profile") == [
        UriEntry("_profile", "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation")
    ]
    assert rows(obs, "_source") == [UriEntry("_source", "urn:src")]


# -- string ----------------------------------------------------------------------------------


def test_human_name_parts_and_whole_name(patient: dict[str, Any]) -> None:
    family = {row.value_exact for row in rows(patient, "family") if isinstance(row, StringEntry)}
    assert family == {"Chalmers", "Windsor"}
    name = {row.value_norm for row in rows(patient, "name") if isinstance(row, StringEntry)}
    assert {"peter", "james", "chalmers", "jim", "windsor", "peter james chalmers"} <= name
    given = [row for row in rows(patient, "given") if isinstance(row, StringEntry)]
    assert {row.value_norm for row in given} == {"peter", "james", "jim"}


def test_strings_are_normalised_but_kept_exact() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "  Ó'Brien-Ñúñez ", "given": ["ZOË"]}],
    }
    [family] = rows(patient, "family")
    assert family == StringEntry("family", "o'brien-nunez", "  Ó'Brien-Ñúñez ")
    assert StringEntry("given", "zoe", "ZOË") in rows(patient, "given")


def test_address_parts(patient: dict[str, Any]) -> None:
    values = {row.value_norm for row in rows(patient, "address") if isinstance(row, StringEntry)}
    assert {"534 erewhon st", "pleasantville", "rainbow", "vic", "3999"} <= values
    assert rows(patient, "address-postalcode") == [
        StringEntry("address-postalcode", "3999", "3999")
    ]


# -- date ------------------------------------------------------------------------------------


def test_dates_carry_their_precision_as_a_range(patient: dict[str, Any]) -> None:
    assert rows(patient, "birthdate") == [
        DateEntry("birthdate", utc(1974, 12, 25), utc(1974, 12, 26))
    ]
    year_only = {"resourceType": "Patient", "birthDate": "1974"}
    assert rows(year_only, "birthdate") == [
        DateEntry("birthdate", utc(1974, 1, 1), utc(1975, 1, 1))
    ]


def test_period_with_open_end_and_timing_outer_limits() -> None:
    encounter = {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {"code": "IMP"},
        "period": {"start": "2024-01-10T08:00:00Z"},
    }
    assert rows(encounter, "date") == [DateEntry("date", utc(2024, 1, 10, 8), DATE_MAX)]
    ended = {"resourceType": "Encounter", "period": {"end": "2024-01-12"}}
    assert rows(ended, "date") == [DateEntry("date", DATE_MIN, utc(2024, 1, 13))]
    # R4 MedicationRequest.date is ...timing.event: one row per event
    request = {
        "resourceType": "MedicationRequest",
        "dosageInstruction": [{"timing": {"event": ["2024-03-01", "2024-02-01T09:00:00Z"]}}],
    }
    assert set(rows(request, "date")) == {
        DateEntry("date", utc(2024, 3, 1), utc(2024, 3, 2)),
        DateEntry("date", utc(2024, 2, 1, 9), utc(2024, 2, 1, 9, 0, 1)),
    }
    # a parameter that points at a whole Timing indexes its outer limits (R4 search page)
    plan = {
        "resourceType": "CarePlan",
        "activity": [
            {
                "detail": {
                    "scheduledTiming": {
                        "event": ["2024-02-15"],
                        "repeat": {
                            "boundsPeriod": {"start": "2024-01-31", "end": "2024-03-24"},
                            "frequency": 1,
                            "period": 2,
                            "periodUnit": "d",
                        },
                    }
                }
            }
        ],
    }
    assert rows(plan, "activity-date") == [
        DateEntry("activity-date", utc(2024, 1, 31), utc(2024, 3, 25))
    ]


def test_free_text_schedules_are_not_dates() -> None:
    plan = {"resourceType": "CarePlan", "activity": [{"detail": {"scheduledString": "2024"}}]}
    assert rows(plan, "activity-date") == []


# -- reference -------------------------------------------------------------------------------


def test_reference_targets_filter_narrowed_parameters() -> None:
    obs = {"resourceType": "Observation", "subject": {"reference": "Group/g1"}}
    assert rows(obs, "subject") == [ReferenceEntry("subject", "Group", "g1", "Group/g1")]
    assert rows(obs, "patient") == []
    obs["subject"] = {"reference": "Patient/p1"}
    assert rows(obs, "patient") == [ReferenceEntry("patient", "Patient", "p1", "Patient/p1")]


def test_reference_forms() -> None:
    obs = {
        "resourceType": "Observation",
        "id": "o",
        "contained": [{"resourceType": "Practitioner", "id": "pr1"}],
        "performer": [
            {"reference": "#pr1"},
            {"reference": "https://register.example/fhir/Practitioner/42/_history/3"},
            {"reference": "https://elsewhere.example/fhir/Organization/7"},
            {"reference": "urn:uuid:1c4d8e2a-0000-0000-0000-000000000000"},
            {
                "type": "PractitionerRole",
                "identifier": {
                    "system": "https://fhir.nhs.uk/Id/sds-role-profile-id",
                    "value": "555",
                },
            },
            {"display": "Dr Nobody"},
            {"reference": "Medication/m1"},
        ],
    }
    found = rows(obs, "performer", local_bases=("https://register.example/fhir",))
    assert found == [
        ReferenceEntry("performer", "Practitioner", None, "#pr1"),
        ReferenceEntry("performer", "Practitioner", "42", "Practitioner/42"),
        ReferenceEntry(
            "performer", "Organization", None, "https://elsewhere.example/fhir/Organization/7"
        ),
        ReferenceEntry("performer", None, None, "urn:uuid:1c4d8e2a-0000-0000-0000-000000000000"),
        ReferenceEntry(
            "performer",
            "PractitionerRole",
            None,
            None,
            "https://fhir.nhs.uk/Id/sds-role-profile-id",
            "555",
        ),
    ]  # display-only and a Medication (not a performer type) give nothing


def test_conditional_references_of_the_bulk_sample(bulk_resources: list[dict[str, Any]]) -> None:
    encounter = next(r for r in bulk_resources if r["resourceType"] == "Encounter")
    [provider] = rows(encounter, "service-provider")
    assert isinstance(provider, ReferenceEntry)
    assert provider.target_type == "Organization" and provider.target_id is None
    assert provider.url is not None and provider.url.startswith("Organization?identifier=")


def test_canonical_references() -> None:
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "http://example.org/Questionnaire/phq-9|1.0",
    }
    assert rows(response, "questionnaire") == [
        ReferenceEntry(
            "questionnaire", "Questionnaire", None, "http://example.org/Questionnaire/phq-9"
        )
    ]


# -- quantity, number, composite ---------------------------------------------------------------


def test_quantity_value_and_precision_range() -> None:
    obs = {
        "resourceType": "Observation",
        "valueQuantity": {
            "value": 5.40,
            "unit": "mmol/L",
            "system": "http://unitsofmeasure.org",
            "code": "mmol/L",
        },
    }
    [row] = rows(obs, "value-quantity")
    # the JSON float 5.40 reads as 5.4: precision of the written digits after parsing
    assert row == QuantityEntry(
        "value-quantity",
        Decimal("5.4"),
        Decimal("5.35"),
        Decimal("5.45"),
        "http://unitsofmeasure.org",
        "mmol/L",
        "mmol/L",
    )
    exact = {"resourceType": "Observation", "valueQuantity": {"value": Decimal("5.40")}}
    [precise] = rows(exact, "value-quantity")
    assert isinstance(precise, QuantityEntry)
    assert (precise.low, precise.high) == (Decimal("5.395"), Decimal("5.405"))


def test_quantity_comparator_and_range() -> None:
    obs = {"resourceType": "Observation", "valueQuantity": {"value": 5, "comparator": "<"}}
    [row] = rows(obs, "value-quantity")
    assert isinstance(row, QuantityEntry) and (row.low, row.high) == (None, Decimal(5))
    condition = {
        "resourceType": "Condition",
        "onsetRange": {
            "low": {"value": 40, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"},
            "high": {"value": 50, "code": "a"},
        },
    }
    [onset] = rows(condition, "onset-age")
    assert onset == QuantityEntry(
        "onset-age", None, Decimal(40), Decimal(50), "http://unitsofmeasure.org", "a", "a"
    )


def test_composite_pairs_come_from_the_same_component(load_example: Any) -> None:
    bp = load_example("observation-example-bloodpressure.json")
    pairs = {
        (entry.components[0].code, entry.components[1].value)  # type: ignore[union-attr]
        for entry in rows(bp, "component-code-value-quantity")
        if isinstance(entry, CompositeEntry)
    }
    assert ("8480-6", Decimal(107)) in pairs and ("8462-4", Decimal(60)) in pairs
    assert ("8480-6", Decimal(60)) not in pairs and ("8462-4", Decimal(107)) not in pairs
    # the panel itself has no value, so code-value-quantity has no rows
    assert rows(bp, "code-value-quantity") == []


def test_numbers() -> None:
    assessment = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": "Patient/p"},
        "prediction": [{"probabilityDecimal": 0.25}, {"probabilityRange": {"low": {"value": 0.1}}}],
    }
    # the Range form of probability has no single number to index
    assert rows(assessment, "probability") == [
        NumberEntry("probability", Decimal("0.25"), Decimal("0.245"), Decimal("0.255"))
    ]
