"""Both Questionnaires' FHIRPath and observation links evaluated on the Synthea patients."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from fhir_adapters.sdc import FILLED, PREFILL_SOURCE_URL, populate, prefill_marks
from fhir_adapters.validation import validate_resource
from register.duplicates.actions import answer_digest
from tests.ask_once.synthea import SyntheaPatient

pytestmark = pytest.mark.slow


def _run(q: dict[str, Any], p: SyntheaPatient):
    return populate(q, patient=p.patient, fetch=p.fetch(), now=p.now, organisations=p.organisations)


def _mark(answer: dict[str, Any]) -> dict[str, Any]:
    ext = next(e for e in answer["extension"] if e["url"] == PREFILL_SOURCE_URL)
    return {p["url"]: p for p in ext["extension"]}


def _items(items: list[dict[str, Any]]):
    for item in items:
        yield item
        yield from _items(item.get("item") or [])


@pytest.mark.parametrize("name", ["diabetes-annual-review", "admission-clerking"])
def test_every_prefill_is_valid_marked_and_true_to_its_source(
    name: str, synthea: list[SyntheaPatient], request: pytest.FixtureRequest
) -> None:
    q = request.getfixturevalue("annual_review" if name.startswith("diabetes") else "clerking")
    codes_by_link = {i["linkId"]: {c["code"] for c in i.get("code", [])} for i in _items(q["item"])}
    filled = 0
    for patient in synthea:
        response, report = _run(q, patient)
        assert validate_resource(response) == "QuestionnaireResponse"
        assert not report.issues, (patient.name, report.issues)
        records = {r.reference: r.resource for r in [patient.patient, *patient.records]}
        for link_id, answer in prefill_marks(response):
            filled += 1
            mark = _mark(answer)
            assert mark["digest"]["valueString"] == answer_digest(answer)
            source = records[mark["source"]["valueReference"]["reference"]]
            if "valueQuantity" in answer and source["resourceType"] == "Observation":
                if "valueQuantity" in source:  # an observation-linked item: same code, same value
                    assert {c["code"] for c in source["code"]["coding"]} & codes_by_link[link_id]
                    assert source["valueQuantity"]["value"] == answer["valueQuantity"]["value"]
                else:  # a blood pressure component
                    values = [c["valueQuantity"]["value"] for c in source["component"]]
                    assert answer["valueQuantity"]["value"] in values
            if "valueCoding" in answer and source["resourceType"] in (
                "Condition",
                "AllergyIntolerance",
            ):
                assert answer["valueCoding"]["code"] in {
                    c["code"] for c in source["code"]["coding"]
                }
        assert len(report.items) == sum(
            report.count(s) for s in ("filled", "last-known", "candidates", "not-answerable")
        )
    assert filled > 100


def test_blood_pressure_comes_from_the_newest_panel(
    annual_review: dict[str, Any], synthea: list[SyntheaPatient]
) -> None:
    checked = 0
    for patient in synthea:
        panels = [
            r
            for r in patient.records
            if r.resource["resourceType"] == "Observation"
            and r.resource["code"]["coding"][0]["code"] == "55284-4"
        ]
        if not panels:
            continue
        newest = max(panels, key=lambda r: r.when)
        systolic = next(
            c["valueQuantity"]["value"]
            for c in newest.resource["component"]
            if c["code"]["coding"][0]["code"] == "8480-6"
        )
        response, report = _run(annual_review, patient)
        item = next(i for i in _items(response["item"]) if i["linkId"] == "systolic")
        found = item.get("answer") or []
        if report.by_link_id()["systolic"].status == FILLED:
            assert found[0]["valueQuantity"]["value"] == systolic
            assert _mark(found[0])["source"]["valueReference"]["reference"] == newest.reference
            checked += 1
    assert checked > 50


def test_diagnosis_is_the_recorded_prediabetes(
    annual_review: dict[str, Any], synthea: list[SyntheaPatient]
) -> None:
    for patient in synthea:
        _, report = _run(annual_review, patient)
        status = report.by_link_id()["diagnosis"].status
        assert (status == FILLED) == patient.diabetic, patient.name


def test_admission_clerking_share(clerking: dict[str, Any], synthea: list[SyntheaPatient]) -> None:
    """The figures docs/ask-once.md reports; floors here catch a regression."""
    with_history = [_run(clerking, p)[1].share_filled for p in synthea if p.has_history]
    diabetic = [_run(clerking, p)[1].share_filled for p in synthea if p.diabetic]
    assert len(with_history) == 80 and len(diabetic) == 19
    assert statistics.median(with_history) >= 0.25
    assert statistics.median(diabetic) >= 0.5
    assert max(with_history) >= 0.6
