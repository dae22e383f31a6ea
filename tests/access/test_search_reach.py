"""Search features reaching through references: ``_include``, ``_revinclude``, chains, ``_has``,
compartments and ``$everything`` never serve, match on, or pull in what the requester may not see.

(Collected once the search index exists: see tests/access/conftest.py.)
"""

from __future__ import annotations

import pytest

from tests.access.world import World

SECRET_NAME = "SecretQfamily"


@pytest.fixture
def world(bare_client, token_for) -> World:
    return World(bare_client, token_for).build()


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in response.json().get("entry", [])
        if "resource" in e
    ]


@pytest.fixture
def stale(world):
    """The hospital recorded an attendance of p 40 days ago: its Encounter is its own record,
    but its relationship with p has ended, so p's record is closed to it again."""
    world.relate("ended_outside_window")
    return world


def test_include_does_not_pull_in_a_hidden_patient(stale):
    headers = stale.as_("hosp_system")
    found = _ids(
        stale.http.get("/fhir/Encounter", params={"_include": "Encounter:patient"}, headers=headers)
    )
    assert any(ref.startswith("Encounter/") for ref in found)  # its own record
    assert "Patient/p" not in found
    assert (
        SECRET_NAME.replace("Q", "P")
        not in stale.http.get("/fhir/Encounter", params={"_include": "*"}, headers=headers).text
    )


def test_chains_and_has_do_not_test_hidden_resources(stale):
    headers = stale.as_("hosp_system")
    # Probing p's name through the hospital's own Encounter must find nothing ...
    chained = stale.http.get(
        "/fhir/Encounter", params={"patient.family": "SecretPfamily"}, headers=headers
    )
    assert _ids(chained) == []
    # ... and a reverse chain from hidden Observations must not reveal p either.
    has = stale.http.get(
        "/fhir/Patient", params={"_has:Observation:patient:code": "59261-8"}, headers=headers
    )
    assert _ids(has) == []
    revinclude = stale.http.get(
        "/fhir/Encounter",
        params={"_revinclude": "Observation:encounter", "_include": "Encounter:subject"},
        headers=headers,
    )
    assert not [ref for ref in _ids(revinclude) if ref.endswith(("/obs-p", "/p"))]


@pytest.mark.parametrize("who", ["patient_q", "other_clinician"])
def test_search_features_cannot_reach_another_patient(world, who):
    headers = world.as_(who)
    for url, params in (
        ("/fhir/Observation", {"patient": "p"}),
        ("/fhir/Observation", {"subject": "Patient/p"}),
        ("/fhir/Patient/p/Observation", {}),
        ("/fhir/Patient/p/Condition", {}),
        ("/fhir/Observation", {"patient.family": "SecretPfamily"}),
        ("/fhir/Patient", {"_has:Observation:patient:code": "59261-8"}),
        ("/fhir/Patient", {"identifier": "9990000018"}),
        ("/fhir/Observation", {"_include": "Observation:patient", "code": "59261-8"}),
        ("/fhir/Patient", {"_revinclude": "Observation:patient"}),
    ):
        found = _ids(world.http.get(url, params=params, headers=headers))
        own = {"patient_q": "q", "other_clinician": None}[who]
        assert all(ref.endswith(f"/{own}") or ref.endswith(f"-{own}") for ref in found), (
            url,
            params,
            found,
        )
    everything = world.http.get("/fhir/Patient/p/$everything", headers=headers)
    assert everything.status_code == 404
    assert "SecretPfamily" not in everything.text


def test_a_patient_sees_their_own_everything_and_nothing_of_others(world):
    mine = _ids(world.http.get("/fhir/Patient/q/$everything", headers=world.as_("patient_q")))
    assert "Patient/q" in mine and "Observation/obs-q" in mine
    assert not [ref for ref in mine if ref.endswith(("/p", "-p"))]


def test_the_same_probes_do_find_p_once_the_record_is_open(world):
    """Positive control for the tests above: the queries are right, the rules make them empty."""
    world.relate("active")
    headers = world.as_("hosp_system")
    assert _ids(
        world.http.get(
            "/fhir/Encounter", params={"patient.family": "SecretPfamily"}, headers=headers
        )
    )
    assert "Patient/p" in _ids(
        world.http.get("/fhir/Encounter", params={"_include": "Encounter:patient"}, headers=headers)
    )
    assert "Patient/p" in _ids(
        world.http.get(
            "/fhir/Patient", params={"_has:Observation:patient:code": "59261-8"}, headers=headers
        )
    )
    assert "Observation/obs-p" in _ids(
        world.http.get("/fhir/Patient/p/Observation", headers=headers)
    )
    assert "Patient/p" in _ids(
        world.http.get("/fhir/Patient", params={"identifier": "9990000018"}, headers=headers)
    )


# --- break-glass: the patient in question of a search -------------------------------------------

GLASS = {"X-Break-Glass-Reason": "Collapsed in ED, needs medication history"}


def _grants(engine):
    from register.access_breakglass import list_grants
    from register.db import read_transaction

    with read_transaction(engine) as conn:
        return list_grants(conn, unreviewed_only=False)


def test_the_patient_in_question_of_a_patient_search(world, engine):
    response = world.http.get(
        "/fhir/Observation", params={"patient": "p"}, headers=world.as_("hosp_clinician", **GLASS)
    )
    assert [e["resource"]["id"] for e in response.json()["entry"]] == ["obs-p"]
    assert [g.patient_id for g in _grants(engine)] == ["p"]


def test_the_patient_in_question_of_a_compartment_search(world, engine):
    response = world.http.get(
        "/fhir/Patient/p/Condition", headers=world.as_("hosp_clinician", **GLASS)
    )
    assert [e["resource"]["id"] for e in response.json()["entry"]] == ["cond-p"]
    assert [g.patient_id for g in _grants(engine)] == ["p"]


def test_the_patient_in_question_of_everything(world, engine):
    response = world.http.get(
        "/fhir/Patient/p/$everything", headers=world.as_("hosp_clinician", **GLASS)
    )
    assert response.status_code == 200
    assert [g.patient_id for g in _grants(engine)] == ["p"]
