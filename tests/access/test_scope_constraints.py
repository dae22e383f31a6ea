"""SMART v2 scope query constraints (``patient/Observation.rs?category=laboratory``): applied in
SQL over the search index, to reads, searches and includes alike, and to written content."""

from __future__ import annotations

import pytest

from tests.access.world import World, bearer, observation

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _categorised(patient: str, code: str, system: str | None = CATEGORY) -> dict:
    coding = {"code": code} if system is None else {"system": system, "code": code}
    return {**observation(patient), "category": [{"coding": [coding]}]}


@pytest.fixture
def world(bare_client, token_for) -> World:
    world = World(bare_client, token_for).build()
    world.put("gp_system", {**_categorised("p", "laboratory"), "id": "lab-p"})
    world.put("gp_system", {**_categorised("p", "vital-signs"), "id": "vital-p"})
    world.put("gp_system", {**_categorised("p", "laboratory", system=None), "id": "plain-p"})
    return world


def _headers(world: World, scope: str) -> dict[str, str]:
    token = world.token_for("patient", fhir_user="Patient/p", subject="pat-p", scope=scope)
    return bearer(token)


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(e["resource"]["id"] for e in response.json().get("entry", []))


@pytest.mark.parametrize(
    ("constraint", "visible"),
    [
        ("category=laboratory", {"lab-p", "plain-p"}),
        (f"category={CATEGORY}|laboratory", {"lab-p"}),
        ("category=|laboratory", {"plain-p"}),
        (f"category={CATEGORY}|", {"lab-p", "vital-p"}),
        ("category=laboratory,vital-signs", {"lab-p", "vital-p", "plain-p"}),
        ("category:not=laboratory", set()),  # a modifier: cannot be evaluated, grants nothing
    ],
)
def test_reads_and_searches_see_only_what_the_constraint_allows(world, constraint, visible):
    headers = _headers(world, f"patient/Observation.rs?{constraint} patient/Patient.rs")
    for rid in ("lab-p", "vital-p", "plain-p"):
        status = world.http.get(f"/fhir/Observation/{rid}", headers=headers).status_code
        assert status == (200 if rid in visible else 404), (rid, status)
    found = _ids(world.http.get("/fhir/Observation", params={"patient": "p"}, headers=headers))
    assert set(found) == visible
    bundle = world.http.get("/fhir/Observation", params={"patient": "p"}, headers=headers)
    assert bundle.json()["total"] == len(visible)  # totals count only what may be seen


def test_constraints_combine_and_alternative_scopes_add_up(world):
    both = "patient/Observation.rs?category=laboratory&code=59261-8 patient/Patient.rs"
    assert set(_ids(world.http.get(
        "/fhir/Observation", params={"patient": "p"}, headers=_headers(world, both)
    ))) == {"lab-p", "plain-p"}  # fmt: skip
    none = "patient/Observation.rs?category=laboratory&code=nothing patient/Patient.rs"
    assert _ids(world.http.get(
        "/fhir/Observation", params={"patient": "p"}, headers=_headers(world, none)
    )) == []  # fmt: skip
    either = "patient/Observation.rs?category=vital-signs patient/Observation.rs?code=nothing"
    assert _ids(world.http.get(
        "/fhir/Observation", params={"patient": "p"}, headers=_headers(world, either)
    )) == ["vital-p"]  # fmt: skip


def test_includes_respect_the_constraints_of_their_type(world):
    scope = "patient/Patient.rs patient/Observation.r?category=vital-signs"
    headers = _headers(world, scope)
    bundle = world.http.get(
        "/fhir/Patient",
        params={"_id": "p", "_revinclude": "Observation:patient"},
        headers=headers,
    )
    assert _ids(bundle) == ["p", "vital-p"]


def test_written_content_must_meet_the_constraints(world):
    headers = _headers(world, "patient/Observation.c?category=survey patient/*.rs")
    survey = world.http.post("/fhir/Observation", json=_categorised("p", "survey"), headers=headers)
    assert survey.status_code == 201, survey.text
    lab = world.http.post(
        "/fhir/Observation", json=_categorised("p", "laboratory"), headers=headers
    )
    assert lab.status_code == 403


@pytest.mark.parametrize(
    ("scope", "types"),
    [
        ("patient/Patient.rs", {"Patient"}),
        ("patient/Patient.rs patient/Observation.rs", {"Patient", "Observation"}),
        (
            "patient/Patient.rs patient/Observation.rs?category=laboratory",
            {"Patient", "Observation"},
        ),
    ],
)
def test_everything_returns_only_types_the_scopes_allow(world, scope, types):
    """$everything is admitted as an operation on Patient, but each record it returns is read
    under the token's read scope for that record's type (and its query constraints): exactly
    the Observations a search with the same token finds."""
    headers = _headers(world, scope)
    response = world.http.get("/fhir/Patient/p/$everything", headers=headers)
    assert response.status_code == 200, response.text
    returned = [e["resource"] for e in response.json().get("entry", [])]
    assert {r["resourceType"] for r in returned} - {"OperationOutcome"} <= types
    observations = {r["id"] for r in returned if r["resourceType"] == "Observation"}
    if "Observation" not in types:
        assert observations == set()
        return
    searched = world.http.get("/fhir/Observation", params={"patient": "p"}, headers=headers)
    assert observations == set(_ids(searched))
    assert ("vital-p" in observations) == ("?" not in scope)
