"""Quantity, number, uri and composite search."""

from __future__ import annotations

import pytest

from tests.search.conftest import Fhir

UCUM = "http://unitsofmeasure.org"


def _value(fhir: Fhir, value: float, unit: str = "mmol/mol", **quantity: object) -> str:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit, **quantity},
    }
    return str(fhir.create(body)["id"])


@pytest.fixture
def values(fhir: Fhir) -> dict[str, str]:
    return {
        "40": _value(fhir, 40),
        "48": _value(fhir, 48),
        "48.4": _value(fhir, 48.4),
        "60": _value(fhir, 60),
        "pct": _value(fhir, 6.5, unit="%"),
        "lt5": _value(fhir, 5, unit="%", comparator="<"),
    }


def _names(fhir: Fhir, values: dict[str, str], query: str) -> set[str]:
    found = set(fhir.ids(f"Observation?value-quantity={query}&_count=50"))
    return {name for name, rid in values.items() if rid in found}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("48", {"48", "48.4"}),  # 48 means [47.5, 48.5), which contains 48.4's [48.35, 48.45)
        ("48.4", {"48.4"}),
        ("ge48|http://unitsofmeasure.org|mmol/mol", {"48", "48.4", "60"}),
        ("gt48|http://unitsofmeasure.org|mmol/mol", {"60"}),
        ("lt48||mmol/mol", {"40"}),
        ("le48||mmol/mol", {"40", "48", "48.4"}),
        ("ne48|http://unitsofmeasure.org|mmol/mol", {"40", "60"}),
        ("ap50|http://unitsofmeasure.org|mmol/mol", {"48", "48.4"}),
        ("6.5|http://unitsofmeasure.org|%25", {"pct"}),
        ("lt4||%25", {"lt5"}),
        ("gt5||%25", {"pct"}),
    ],
)
def test_quantity_prefixes(
    fhir: Fhir, values: dict[str, str], query: str, expected: set[str]
) -> None:
    assert _names(fhir, values, query) == expected


def test_malformed_quantity(fhir: Fhir) -> None:
    bad = fhir.search("Observation?value-quantity=ge|x|y", status=400)
    assert bad["issue"][0]["expression"] == ["value-quantity"]


def test_number(fhir: Fhir) -> None:
    def risk(probability: float) -> str:
        return str(
            fhir.create(
                {
                    "resourceType": "RiskAssessment",
                    "status": "final",
                    "subject": {"reference": "Patient/x"},
                    "prediction": [{"probabilityDecimal": probability}],
                }
            )["id"]
        )

    low, high = risk(0.02), risk(0.8)
    assert fhir.ids("RiskAssessment?probability=gt0.5") == [high]
    assert fhir.ids("RiskAssessment?probability=lt0.1") == [low]
    assert fhir.ids("RiskAssessment?probability=0.02") == [low]
    bad = fhir.search("RiskAssessment?probability=abc", status=400)
    assert bad["issue"][0]["expression"] == ["probability"]


def test_uri_equality_below_and_above(fhir: Fhir) -> None:
    base = "http://example.org/fhir/Questionnaire"
    q1 = fhir.create(
        {"resourceType": "Questionnaire", "status": "active", "url": f"{base}/diabetes/annual"}
    )["id"]
    q2 = fhir.create(
        {"resourceType": "Questionnaire", "status": "active", "url": f"{base}/diabetes"}
    )["id"]
    assert fhir.ids(f"Questionnaire?url={base}/diabetes") == [q2]
    assert set(fhir.ids(f"Questionnaire?url:below={base}/diabetes")) == {q1, q2}
    assert set(fhir.ids(f"Questionnaire?url:above={base}/diabetes/annual/v2")) == {q1, q2}


def test_composite_code_value_quantity(fhir: Fhir, values: dict[str, str]) -> None:
    found = set(fhir.ids("Observation?code-value-quantity=4548-4$gt50&_count=50"))
    assert found == {values["60"]}
    found = set(fhir.ids("Observation?code-value-quantity=http://loinc.org|4548-4$lt45||mmol/mol"))
    assert found == {values["40"]}
    assert fhir.ids("Observation?code-value-quantity=2093-3$gt1") == []


def test_composite_component_code_value(fhir: Fhir) -> None:
    bp = fhir.create(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "component": [
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                    "valueQuantity": {
                        "value": 150,
                        "unit": "mm[Hg]",
                        "system": UCUM,
                        "code": "mm[Hg]",
                    },
                },
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                    "valueQuantity": {
                        "value": 95,
                        "unit": "mm[Hg]",
                        "system": UCUM,
                        "code": "mm[Hg]",
                    },
                },
            ],
        }
    )["id"]
    assert fhir.ids("Observation?component-code-value-quantity=8480-6$gt140") == [bp]
    assert fhir.ids("Observation?component-code-value-quantity=8462-4$gt140") == []
    assert fhir.ids("Observation?combo-code-value-quantity=8462-4$lt100") == [bp]
