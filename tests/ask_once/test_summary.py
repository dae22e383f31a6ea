"""IPS $summary: sections, per-entry attribution, disagreements, withheld records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_adapters.ips import NOTE_URL, RECORDED_BY_URL, patient_summary
from fhir_adapters.memory_search import MemoryFetch
from fhir_adapters.sdc import populate
from fhir_adapters.sourced import Sourced
from fhir_adapters.validation import validate_resource
from tests.ask_once.synthea import SyntheaPatient

NOW = datetime(2026, 3, 1, 9, tzinfo=UTC)
PATIENT = Sourced({"resourceType": "Patient", "id": "p1", "name": [{"family": "Smith"}]}, "GP1")
NAMES = {"GP1": "Riverside Surgery", "HOSP": "City Hospital", "DIAB": "Diabetes Team"}


def allergy(aid: str, code: str, org: str, status: str = "active", **extra: Any) -> Sourced:
    return Sourced(
        {
            "resourceType": "AllergyIntolerance",
            "id": aid,
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        "code": status,
                    }
                ]
            },
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}], "text": code},
            "patient": {"reference": "Patient/p1"},
            "recordedDate": "2025-06-01",
            **extra,
        },
        org,
        NOW - timedelta(days=200),
    )


def medication(mid: str, code: str, org: str, status: str = "active") -> Sourced:
    return Sourced(
        {
            "resourceType": "MedicationRequest",
            "id": mid,
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": {
                "coding": [{"system": "https://dmd.nhs.uk", "code": code}]
            },
            "subject": {"reference": "Patient/p1"},
            "authoredOn": "2026-01-10",
        },
        org,
    )


def condition(cid: str, code: str, org: str, **extra: Any) -> Sourced:
    return Sourced(
        {
            "resourceType": "Condition",
            "id": cid,
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
            "subject": {"reference": "Patient/p1"},
            "recordedDate": "2024-02-02",
            **extra,
        },
        org,
    )


def sections(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    composition = bundle["entry"][0]["resource"]
    return {s["code"]["coding"][0]["code"]: s for s in composition["section"]}


def test_diabetic_patient_with_three_organisations(
    synthea: list[SyntheaPatient], annual_review: dict[str, Any]
) -> None:
    patient = next(
        p for p in synthea if p.diabetic and len({r.org for r in p.records if r.org}) >= 3
    )
    bundle = patient_summary(
        patient.patient,
        patient.records,
        now=patient.now,
        organisations=patient.organisations,
        care_processes=annual_review,
    )
    assert validate_resource(bundle) == "Bundle"
    assert bundle["type"] == "document" and bundle["identifier"]["value"].startswith("urn:uuid:")
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["type"]["coding"][0]["code"] == "60591-5"
    assert bundle["entry"][1]["resource"]["resourceType"] == "Patient"
    full_urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(full_urls) == len(set(full_urls))
    by_code = sections(bundle)
    for code in ("48765-2", "10160-0", "11450-4", "11369-6", "30954-2", "8716-3", "47519-4"):
        assert code in by_code, code
    assert "diabetes-care-processes" in by_code and "85847-2" in by_code
    in_bundle = {
        f"{e['resource']['resourceType']}/{e['resource'].get('id')}" for e in bundle["entry"]
    }
    records = {r.reference: r for r in patient.records}
    authors: set[str] = set()
    for section in composition["section"]:
        for entry in section.get("entry", []):
            reference = entry["reference"]
            if reference.startswith("urn:uuid:"):
                assert reference in full_urls
                continue
            assert reference in in_bundle  # every entry is in the document
            record = records[reference]
            (mark,) = [e for e in entry["extension"] if e["url"] == RECORDED_BY_URL]
            parts = {p["url"]: p for p in mark["extension"]}
            org = parts["author"]["valueReference"]["identifier"]["value"]
            assert org == record.org
            assert parts["author"]["valueReference"]["display"] == patient.organisations[org]
            assert parts["date"]["valueDateTime"][:10] == record.when.date().isoformat()
            authors.add(org)
    assert len(authors) >= 3
    diabetes = by_code["diabetes-care-processes"]["text"]["div"]
    assert "HbA1c" in diabetes and "Recorded by" in diabetes


def test_allergy_recorded_at_the_gp_but_not_the_hospital_is_flagged() -> None:
    records = [
        allergy("a-gp", "91936005", "GP1"),  # allergy to penicillin, at the GP practice
        condition("c-hosp", "38341003", "HOSP"),  # the hospital holds a record, no such allergy
    ]
    bundle = patient_summary(PATIENT, records, now=NOW, organisations=NAMES)
    assert validate_resource(bundle) == "Bundle"
    by_code = sections(bundle)
    (flag_ref,) = by_code["104605-1"]["entry"]
    flag = next(e["resource"] for e in bundle["entry"] if e["fullUrl"] == flag_ref["reference"])
    assert flag["resourceType"] == "Flag" and flag["status"] == "active"
    assert "Riverside Surgery" in flag["code"]["text"] and "City Hospital" in flag["code"]["text"]
    assert {"reference": "AllergyIntolerance/a-gp"} in [
        e["valueReference"] for e in flag["extension"]
    ]
    allergies = by_code["48765-2"]
    (note,) = [e for e in allergies["extension"] if e["url"] == NOTE_URL]
    assert "City Hospital" in note["valueAnnotation"]["text"]
    assert "disagree" in allergies["text"]["div"]
    # The entry itself stays, attributed to the GP practice: nothing silently dropped.
    assert [e["reference"] for e in allergies["entry"]] == ["AllergyIntolerance/a-gp"]


def test_agreeing_and_contradicting_allergy_records() -> None:
    agreeing = [allergy("a-gp", "91936005", "GP1"), allergy("a-h", "91936005", "HOSP")]
    bundle = patient_summary(PATIENT, agreeing, now=NOW, organisations=NAMES)
    assert "104605-1" not in sections(bundle)
    refuted = allergy(
        "a-h",
        "91936005",
        "HOSP",
        verificationStatus={
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                    "code": "refuted",
                }
            ]
        },
    )
    no_known = allergy("nka", "716186003", "DIAB")
    bundle = patient_summary(
        PATIENT, [agreeing[0], refuted, no_known], now=NOW, organisations=NAMES
    )
    (flag,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Flag"]
    assert "City Hospital" in flag["code"]["text"] and "Diabetes Team" in flag["code"]["text"]


def test_different_current_medication_lists_are_flagged() -> None:
    records = [
        medication("m1", "metformin", "GP1"),
        medication("m2", "metformin", "HOSP"),
        medication("m3", "gliclazide", "GP1"),
        medication("m4", "old", "HOSP", status="stopped"),
        condition("c1", "44054006", "DIAB"),  # keeps no medication list: not compared
    ]
    bundle = patient_summary(PATIENT, records, now=NOW, organisations=NAMES)
    flags = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Flag"]
    assert len(flags) == 1
    assert "gliclazide" in flags[0]["code"]["text"] and "City Hospital" in flags[0]["code"]["text"]
    meds = sections(bundle)["10160-0"]
    assert sorted(e["reference"] for e in meds["entry"]) == [
        "MedicationRequest/m1",
        "MedicationRequest/m2",
        "MedicationRequest/m3",
    ]


def test_consent_restricted_record_is_absent_from_summary_and_prefill(
    annual_review: dict[str, Any], clerking: dict[str, Any]
) -> None:
    """Both builders see only what the requester's search returns; the restricted record
    (here a diagnosis under a consent restriction) leaves no trace, not even via the diabetes
    section, which pre-fills the annual review internally."""
    restricted = condition("c-secret", "44054006", "DIAB", meta={"security": [{"code": "R"}]})
    records = [condition("c1", "38341003", "GP1"), allergy("a1", "91936005", "GP1"), restricted]

    def visible(rs: list[Sourced]) -> list[Sourced]:
        return [r for r in rs if not r.resource.get("meta", {}).get("security")]

    shown = visible(records)
    bundle = patient_summary(
        PATIENT, shown, now=NOW, organisations=NAMES, care_processes=annual_review
    )
    response, _ = populate(clerking, patient=PATIENT, fetch=MemoryFetch([PATIENT, *shown]), now=NOW)
    for document in (bundle, response):
        text = json.dumps(document)
        assert "c-secret" not in text and "44054006" not in text and "Diabetes Team" not in text
    assert "diabetes-care-processes" not in sections(bundle)
    # With the restriction lifted the same record shows in both: the test above is not vacuous.
    bundle = patient_summary(
        PATIENT, records, now=NOW, organisations=NAMES, care_processes=annual_review
    )
    assert "c-secret" in json.dumps(bundle)
    assert "diabetes-care-processes" in sections(bundle)


def test_empty_required_sections_say_so() -> None:
    bundle = patient_summary(PATIENT, [], now=NOW)
    assert validate_resource(bundle) == "Bundle"
    by_code = sections(bundle)
    for code in ("48765-2", "10160-0", "11450-4"):
        assert by_code[code]["emptyReason"]["coding"][0]["code"] == "unavailable"
        assert "entry" not in by_code[code]
