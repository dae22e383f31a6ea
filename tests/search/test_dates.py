"""Date search: the prefixes of the R4 search page on implicit ranges (half-open)."""

from __future__ import annotations

import pytest

from tests.search.conftest import Fhir


def _obs(fhir: Fhir, **effective: object) -> str:
    body = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, **effective}
    return str(fhir.create(body)["id"])


@pytest.fixture
def dated(fhir: Fhir) -> dict[str, str]:
    return {
        "day": _obs(fhir, effectiveDateTime="2020-06-15"),
        "instant": _obs(fhir, effectiveDateTime="2020-06-15T10:30:00Z"),
        "period": _obs(fhir, effectivePeriod={"start": "2020-06-01", "end": "2020-06-30"}),
        "open": _obs(fhir, effectivePeriod={"start": "2020-07-01"}),
        "year": _obs(fhir, effectiveDateTime="2019"),
    }


def _names(fhir: Fhir, dated: dict[str, str], query: str) -> set[str]:
    found = set(fhir.ids(f"Observation?date={query}&_count=100"))
    return {name for name, rid in dated.items() if rid in found}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("2020-06-15", {"day", "instant"}),
        ("eq2020-06", {"day", "instant", "period"}),
        ("2020", {"day", "instant", "period"}),
        ("ne2020-06-15", {"period", "open", "year"}),
        ("lt2020-06-15", {"period", "year"}),
        ("le2020-06-15", {"day", "instant", "period", "year"}),
        ("gt2020-06-15", {"period", "open"}),
        ("ge2020-06-15", {"day", "instant", "period", "open"}),
        ("sa2020-06-30", {"open"}),
        ("eb2020-06-01", {"year"}),
        ("gt2020-06-15T10:00:00Z", {"day", "instant", "period", "open"}),
        ("lt2020-06-15T10:30:00%2B01:00", {"day", "period", "year"}),
        ("ge2030-01-01", {"open"}),
    ],
)
def test_prefixes(fhir: Fhir, dated: dict[str, str], query: str, expected: set[str]) -> None:
    assert _names(fhir, dated, query) == expected


def test_ap_is_approximately(fhir: Fhir, dated: dict[str, str]) -> None:
    assert {"day", "instant", "period"} <= _names(fhir, dated, "ap2020-06-15")


def test_range_with_two_parameters(fhir: Fhir, dated: dict[str, str]) -> None:
    # each prefix tests the whole target range: the June period starts before and ends after
    assert _names(fhir, dated, "ge2020-06-10&date=lt2020-06-20") == {"day", "instant", "period"}
    assert _names(fhir, dated, "ge2020-06-15&date=le2020-06-15") == {"day", "instant", "period"}


def test_birthdate_precision(fhir: Fhir) -> None:
    ann = fhir.create({"resourceType": "Patient", "birthDate": "1961-04-02"})["id"]
    fhir.create({"resourceType": "Patient", "birthDate": "1962"})
    assert fhir.ids("Patient?birthdate=1961-04-02") == [ann]
    assert fhir.ids("Patient?birthdate=1961") == [ann]
    assert fhir.ids("Patient?birthdate=1961-04") == [ann]
    assert fhir.ids("Patient?birthdate=1961-04-03") == []
    # a search more precise than the value does not contain it, but ap (overlap) finds it
    assert fhir.ids("Patient?birthdate=1962-03-01") == []
    assert ann not in fhir.ids("Patient?birthdate=1962-03-01")
    assert len(fhir.ids("Patient?birthdate=ap1962-03-01")) >= 1


def test_last_updated(fhir: Fhir) -> None:
    made = fhir.create({"resourceType": "Patient"})
    moment = made["meta"]["lastUpdated"]
    assert fhir.ids(f"Patient?_lastUpdated={moment}") == [made["id"]]
    assert fhir.ids(f"Patient?_lastUpdated=ge{moment[:10]}") == [made["id"]]
    assert fhir.ids(f"Patient?_lastUpdated=gt{moment}") == []
    assert fhir.ids("Patient?_lastUpdated=lt2000") == []


def test_missing_and_malformed(fhir: Fhir, dated: dict[str, str]) -> None:
    undated = _obs(fhir)
    assert fhir.ids("Observation?date:missing=true") == [undated]
    bad = fhir.search("Observation?date=2020-13-45", status=400)
    assert bad["issue"][0]["expression"] == ["date"]
    bad = fhir.search("Observation?date=xx2020", status=400)
    assert "date" in bad["issue"][0]["diagnostics"]
