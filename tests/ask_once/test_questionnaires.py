"""The shipped Questionnaires: valid R4, populatable, and in step with the duplicate concepts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.models import models

from fhir_adapters.sdc import (
    CANDIDATE_URL,
    FRESHNESS_URL,
    INITIAL_URL,
    LAUNCH_CONTEXT_URL,
    LINK_PERIOD_URL,
    VARIABLE_URL,
    duration_days,
)
from fhir_adapters.validation import validate_resource
from register.duplicates.config import config_from
from tests.ask_once.conftest import questionnaire

NAMES = ("diabetes-annual-review", "admission-clerking")
SYSTEMS = {
    "http://loinc.org",
    "http://snomed.info/sct",
    "https://fhir.shared-care-register.nhs.uk/CodeSystem/question-concept",
}


def _items(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _items(item.get("item") or [])


def _ext(element: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in element.get("extension", []) if e["url"] == url), None)


@pytest.mark.parametrize("name", NAMES)
def test_valid_active_r4_questionnaire(name: str) -> None:
    q = questionnaire(name)
    assert validate_resource(q) == "Questionnaire"
    assert q["status"] == "active"
    assert q["url"] == f"https://fhir.shared-care-register.nhs.uk/Questionnaire/{name}"
    launch = _ext(q, LAUNCH_CONTEXT_URL)
    assert launch is not None
    assert {"url": "type", "valueCode": "Patient"} in launch["extension"]
    link_ids = [i["linkId"] for i in _items(q["item"])]
    assert len(link_ids) == len(set(link_ids)), "linkIds must be unique"


@pytest.mark.parametrize("name", NAMES)
def test_every_question_is_coded_and_populatable(name: str) -> None:
    q = questionnaire(name)
    for item in _items(q["item"]):
        for coding in item.get("code", []):
            assert coding["system"] in SYSTEMS
        if item["type"] == "group":
            continue
        link = _ext(item, LINK_PERIOD_URL)
        initial = _ext(item, INITIAL_URL)
        assert link or initial, f"{item['linkId']} has no way to be pre-filled"
        if link:  # observation-based: needs codes and a period in a unit we understand
            assert item.get("code"), item["linkId"]
            assert duration_days(link["valueDuration"]) is not None
        fresh = _ext(item, FRESHNESS_URL)
        if fresh:
            assert duration_days(fresh["valueDuration"]) is not None


@pytest.mark.parametrize("name", NAMES)
def test_every_expression_compiles(name: str) -> None:
    q = questionnaire(name)
    expressions = []
    for element in [q, *_items(q["item"])]:
        for ext in element.get("extension", []):
            if ext["url"] in (INITIAL_URL, CANDIDATE_URL, VARIABLE_URL):
                expression = ext["valueExpression"]
                if expression["language"] == "text/fhirpath":
                    expressions.append(expression["expression"])
                else:
                    assert expression["language"] == "application/x-fhir-query"
                    assert "{{%patient.id}}" in expression["expression"]
                    expressions.extend(re.findall(r"\{\{(.+?)\}\}", expression["expression"]))
    assert expressions
    for expression in expressions:
        fhirpathpy.compile(expression, models["r4"])  # raises on a syntax error


def test_link_ids_map_to_duplicate_concepts_with_the_same_freshness() -> None:
    """An answer $populate fills must be one the duplicate rules hold as current, and the
    reverse: otherwise a confirmed answer and a re-asked one would be judged on different
    clocks. So each mapped item's freshness equals its concept's freshness_days."""
    config = config_from(None)
    for name in NAMES:
        q = questionnaire(name)
        items = {i["linkId"]: i for i in _items(q["item"])}
        mapping = config.link_ids[q["url"]]
        assert mapping, name
        for link_id, concept_key in mapping.items():
            assert link_id in items, f"{name}: {link_id} is not an item"
            item = items[link_id]
            period = _ext(item, LINK_PERIOD_URL) or _ext(item, FRESHNESS_URL)
            days = duration_days(period["valueDuration"]) if period else None
            expected = config.concept(concept_key).freshness_days
            assert (round(days) if days is not None else None) == expected, (name, link_id)


def test_the_clerking_asks_what_the_issue_lists() -> None:
    concepts = set(config_from(None).link_ids[questionnaire("admission-clerking")["url"]].values())
    assert concepts == {
        "allergies",
        "medications",
        "problems",
        "smoking",
        "alcohol",
        "height",
        "weight",
        "next-of-kin",
        "registered-gp",
    }


def test_the_annual_review_covers_the_nice_care_processes() -> None:
    q = questionnaire("diabetes-annual-review")
    codes = {c["code"] for i in _items(q["item"]) for c in i.get("code", [])}
    for code in (
        "4548-4",  # HbA1c
        "55284-4",  # blood pressure
        "2093-3",  # cholesterol
        "2160-0",  # serum creatinine
        "33914-3",  # eGFR
        "1023491000000104",  # urine ACR
        "39156-5",  # BMI
        "72166-2",  # smoking
        "401191002",  # foot examination
        "134395001",  # retinal screening
    ):
        assert code in codes
