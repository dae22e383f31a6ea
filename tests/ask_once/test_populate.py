"""$populate on hand-made records: marks, freshness, candidates, withheld records, duplicates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_adapters.memory_search import MemoryFetch
from fhir_adapters.sdc import (
    CANDIDATES,
    FILLED,
    LAST_KNOWN,
    LAST_KNOWN_URL,
    NOT_ANSWERABLE,
    PREFILL_CANDIDATE_URL,
    PREFILL_SOURCE_URL,
    answer_digest,
    populate,
    prefill_marks,
)
from fhir_adapters.sourced import Sourced
from register.duplicates import actions
from register.duplicates.config import config_from

NOW = datetime(2026, 3, 1, 9, tzinfo=UTC)
PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "generalPractitioner": [{"reference": "Organization/gp", "display": "Riverside Surgery"}],
    "contact": [
        {
            "relationship": [
                {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}
                    ]
                },
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                            "code": "WIFE",
                            "display": "wife",
                        }
                    ]
                },
            ],
            "name": {"family": "Smith", "given": ["Jane"]},
            "telecom": [{"system": "phone", "value": "07700 900123"}],
        }
    ],
}


def smoking(oid: str, code: str, days_ago: float, org: str = "GP1") -> Sourced:
    return Sourced(
        {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": (NOW - timedelta(days=days_ago)).isoformat(),
            "valueCodeableConcept": {
                "coding": [{"system": "http://snomed.info/sct", "code": code}]
            },
        },
        org,
    )


def allergy(aid: str, code: str, org: str, **extra: Any) -> Sourced:
    return Sourced(
        {
            "resourceType": "AllergyIntolerance",
            "id": aid,
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
            "patient": {"reference": "Patient/p1"},
            "recordedDate": (NOW - timedelta(days=30)).date().isoformat(),
            **extra,
        },
        org,
    )


def run(questionnaire: dict[str, Any], records: list[Sourced], now: datetime = NOW):
    patient = Sourced(PATIENT, "GP1", NOW - timedelta(days=10))
    return populate(
        questionnaire,
        patient=patient,
        fetch=MemoryFetch([patient, *records], now=now),
        now=now,
        organisations={"GP1": "Riverside Surgery"},
    )


def test_fresh_answer_is_filled_and_marked(clerking: dict[str, Any]) -> None:
    response, report = run(
        clerking, [smoking("s-old", "8517006", 300), smoking("s-new", "266919005", 20)]
    )
    outcome = report.by_link_id()["smoking"]
    assert outcome.status == FILLED and outcome.sources == ("Observation/s-new",)
    (answer,) = next(i for i in response["item"] if i["linkId"] == "smoking")["answer"]
    assert answer["valueCoding"]["code"] == "266919005"  # the newest, not the older ex-smoker
    mark = {p["url"]: p for p in answer["extension"][0]["extension"]}
    assert answer["extension"][0]["url"] == PREFILL_SOURCE_URL
    assert mark["source"]["valueReference"] == {"reference": "Observation/s-new"}
    assert mark["digest"]["valueString"] == actions.answer_digest(answer)
    assert mark["date"]["valueDateTime"].startswith((NOW - timedelta(days=20)).date().isoformat())
    assert mark["author"]["valueReference"]["display"] == "Riverside Surgery"


def test_stale_answer_is_offered_as_last_known_not_filled(clerking: dict[str, Any]) -> None:
    response, report = run(clerking, [smoking("s1", "8517006", 400)])
    assert report.by_link_id()["smoking"].status == LAST_KNOWN
    item = next(i for i in response["item"] if i["linkId"] == "smoking")
    assert "answer" not in item
    (offer,) = item["extension"]
    assert offer["url"] == LAST_KNOWN_URL
    parts = {p["url"]: p for p in offer["extension"]}
    assert parts["value"]["valueCoding"]["code"] == "8517006"
    assert parts["source"]["valueReference"]["reference"] == "Observation/s1"
    assert parts["freshness"]["valueDuration"]["value"] == 365


@settings(max_examples=40, deadline=None)
@given(age=st.integers(min_value=0, max_value=800))
def test_filled_exactly_while_fresh(clerking: dict[str, Any], age: int) -> None:
    _, report = run(clerking, [smoking("s1", "8517006", age)])
    assert report.by_link_id()["smoking"].status == (FILLED if age <= 365 else LAST_KNOWN)


def test_patient_facts_and_candidates(clerking: dict[str, Any]) -> None:
    checkup = Sourced(
        {
            "resourceType": "Encounter",
            "id": "e1",
            "status": "finished",
            "class": {"code": "AMB"},
            "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "185349003"}]}],
            "subject": {"reference": "Patient/p1"},
            "period": {"start": (NOW - timedelta(days=40)).isoformat()},
            "serviceProvider": {"reference": "Organization/hill"},
        },
        "GP1",
    )
    response, report = run(clerking, [checkup])
    outcomes = report.by_link_id()
    assert outcomes["next-of-kin-name"].status == FILLED
    assert outcomes["next-of-kin-telephone"].sources == ("Patient/p1",)
    items = {i["linkId"]: i for i in response["item"]}
    nok = {i["linkId"]: i for i in items["next-of-kin"]["item"]}
    assert nok["next-of-kin-name"]["answer"][0]["valueString"] == "Jane Smith"
    assert nok["next-of-kin-relationship"]["answer"][0]["valueCoding"]["code"] == "WIFE"
    gp = items["registered-gp"]["answer"][0]["valueReference"]
    assert gp["reference"] == "Organization/gp"
    # Without a registered GP on the Patient, the check-up practice is only a candidate.
    patient = Sourced({k: v for k, v in PATIENT.items() if k != "generalPractitioner"}, "GP1")
    response, report = populate(
        clerking, patient=patient, fetch=MemoryFetch([patient, checkup]), now=NOW
    )
    assert report.by_link_id()["registered-gp"].status == CANDIDATES
    item = next(i for i in response["item"] if i["linkId"] == "registered-gp")
    assert "answer" not in item
    (offer,) = item["extension"]
    assert offer["url"] == PREFILL_CANDIDATE_URL
    parts = {p["url"]: p for p in offer["extension"]}
    assert parts["value"]["valueReference"] == {"reference": "Organization/hill"}
    assert parts["source"]["valueReference"] == {"reference": "Encounter/e1"}


def test_each_list_answer_names_its_own_source(clerking: dict[str, Any]) -> None:
    records = [allergy("a1", "91936005", "GP1"), allergy("a2", "300913006", "HOSP")]
    response, report = run(clerking, records)
    item = next(i for i in response["item"] if i["linkId"] == "allergies")
    sources = {
        a["valueCoding"]["code"]: a["extension"][0]["extension"][0]["valueReference"]["reference"]
        for a in item["answer"]
    }
    assert sources == {"91936005": "AllergyIntolerance/a1", "300913006": "AllergyIntolerance/a2"}
    assert report.by_link_id()["allergies"].status == FILLED


def test_withheld_record_never_appears(clerking: dict[str, Any]) -> None:
    """The server's fetch applies the access rules; what it withholds leaves no trace."""
    secret = allergy("secret", "294505008", "CLINIC", meta={"security": [{"code": "R"}]})
    records = [allergy("a1", "91936005", "GP1"), secret]
    visible = [r for r in records if not r.resource.get("meta", {}).get("security")]
    patient = Sourced(PATIENT, "GP1")
    response, report = populate(
        clerking, patient=patient, fetch=MemoryFetch([patient, *visible]), now=NOW
    )
    text = json.dumps(response)
    assert "secret" not in text and "294505008" not in text and "CLINIC" not in text
    assert report.by_link_id()["allergies"].sources == ("AllergyIntolerance/a1",)


def test_confirmed_answers_are_not_repeat_questions(clerking: dict[str, Any]) -> None:
    response, _ = run(clerking, [smoking("s1", "266919005", 10), allergy("a1", "91936005", "GP1")])
    config = config_from(None)
    completed = {**response, "id": "qr1", "status": "completed"}
    asked = {
        a.group: a
        for a in actions.actions_of(completed, config, author_org="HOSP", recorded_at=NOW)
    }
    assert asked["smoking"].confirmed is True
    assert asked["allergies"].confirmed is True
    assert asked["next-of-kin"].confirmed is True
    # The clinician changes the smoking answer: asked afresh despite the pre-fill.
    changed = json.loads(json.dumps(completed))
    smoking_item = next(i for i in changed["item"] if i["linkId"] == "smoking")
    smoking_item["answer"][0]["valueCoding"] = {
        "system": "http://snomed.info/sct",
        "code": "77176002",
    }
    asked = {
        a.group: a for a in actions.actions_of(changed, config, author_org="HOSP", recorded_at=NOW)
    }
    assert asked["smoking"].confirmed is False
    assert asked["allergies"].confirmed is True
    # An answer typed in without any pre-fill is a question asked.
    weight = next(i for i in changed["item"] if i["linkId"] == "weight")
    weight["answer"] = [{"valueQuantity": {"value": 80, "unit": "kg"}}]
    asked = {
        a.group: a for a in actions.actions_of(changed, config, author_org="HOSP", recorded_at=NOW)
    }
    assert asked["weight"].confirmed is False
    assert sum(1 for _ in prefill_marks(response)) >= 5


def test_marks_match_the_duplicate_rules_definitions() -> None:
    from fhir_adapters import sdc

    assert sdc.PREFILL_SOURCE_URL == actions.PREFILL_SOURCE_URL


scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8)
answers = st.dictionaries(
    st.sampled_from(["valueString", "valueCoding", "valueQuantity", "valueDate", "extension"]),
    scalars | st.dictionaries(st.sampled_from(["code", "system", "value", "unit"]), scalars),
    max_size=3,
)


@settings(deadline=None)  # a loaded CI machine must not fail a pure comparison
@given(answers)
def test_digest_is_the_duplicate_rules_digest(answer: dict[str, Any]) -> None:
    assert answer_digest(answer) == actions.answer_digest(answer)


def test_bad_expression_is_reported_and_the_rest_still_filled(clerking: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(clerking))
    problems = next(i for i in broken["item"] if i["linkId"] == "problems")
    problems["extension"][0]["valueExpression"]["expression"] = "%conditions.entry.resource.where("
    _, report = run(broken, [smoking("s1", "266919005", 10)])
    outcomes = report.by_link_id()
    assert outcomes["problems"].status == NOT_ANSWERABLE and outcomes["problems"].problems
    assert outcomes["smoking"].status == FILLED


def test_queries_are_for_the_launch_patient(clerking: dict[str, Any]) -> None:
    patient = Sourced(PATIENT)
    fetch = MemoryFetch([patient])
    populate(clerking, patient=patient, fetch=fetch, now=NOW)
    assert fetch.calls
    for _, params in fetch.calls:
        assert ("patient", "p1") in params
