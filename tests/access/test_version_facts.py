"""Earlier versions are judged by what they said: history and vread serve a version only if the
requester may see it with its own codes, security labels and dates, and as recorded by the
organisation that wrote it, not only if the resource's current version is visible. A
correction that removes a sensitive code does not expose the version that had it. Over HTTP,
both databases."""

from __future__ import annotations

from typing import Any

import pytest

from tests.access.world import World
from tests.consent.helpers import consent
from tests.consent.reference import Provision

SNOMED = "http://snomed.info/sct"
HIV = "86406008"  # listed under HIV in register/data/sensitive-codes.json: labelled on write
DIABETES = "44054006"


@pytest.fixture
def world(bare_client, token_for) -> World:
    return World(bare_client, token_for).build()


def _condition(code: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": "cond-corrected",
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "subject": {"reference": "Patient/p"},
        **extra,
    }


def _served(world: World, who: str) -> set[str]:
    response = world.http.get("/fhir/Condition/cond-corrected/_history", headers=world.as_(who))
    assert response.status_code == 200, response.text
    return {_version_of(e) for e in response.json()["entry"]}


def _version_of(entry: dict[str, Any]) -> str:
    if "resource" in entry:
        return str(entry["resource"]["meta"]["versionId"])
    return str(entry["response"]["etag"]).removeprefix('W/"').removesuffix('"')  # a deletion


def _vread(world: World, who: str, version: int) -> int:
    url = f"/fhir/Condition/cond-corrected/_history/{version}"
    return world.http.get(url, headers=world.as_(who)).status_code


def test_a_correction_does_not_expose_the_sensitive_version_it_corrected(world: World) -> None:
    first = world.put("gp_system", _condition(HIV))
    assert any(label["code"] == "HIV" for label in first["meta"]["security"])
    world.put("gp_system", _condition(DIABETES))  # a misdiagnosis corrected
    world.relate("active")  # the hospital now cares for p

    # the hospital sees the record as it is now, not the sensitive version
    assert _served(world, "hosp_clinician") == {"2"}
    assert _vread(world, "hosp_clinician", 1) == 404
    assert _vread(world, "hosp_clinician", 2) == 200
    for type_history in ("/fhir/Condition/_history?_count=200", "/fhir/_history?_count=500"):
        response = world.http.get(type_history, headers=world.as_("hosp_clinician"))
        versions = {
            e["resource"]["meta"]["versionId"]
            for e in response.json().get("entry", [])
            if e["resource"]["id"] == "cond-corrected"
        }
        assert versions == {"2"}, type_history
    # the GP that recorded both, and the patient, see both
    assert _served(world, "gp_system") == {"1", "2"}
    assert _served(world, "patient_p") == {"1", "2"}
    assert _vread(world, "patient_p", 1) == 200


def test_a_version_the_patients_consent_withholds_stays_withheld(world: World) -> None:
    # p withholds diabetes data from every organisation; the record is later recoded
    withhold = Provision(
        "permit", children=(Provision("deny", codes=frozenset({f"{SNOMED}|{DIABETES}"})),)
    )
    response = world.post("patient_p", consent("p", withhold))
    assert response.status_code == 201, response.text
    world.put("gp_system", _condition(DIABETES))
    world.put("gp_system", _condition("73211009"))  # diabetes mellitus, as first recorded
    world.relate("active")

    assert _served(world, "hosp_clinician") == {"2"}
    assert _vread(world, "hosp_clinician", 1) == 404


def test_a_version_labelled_later_hides_the_resource_and_every_version(world: World) -> None:
    world.put("gp_system", _condition(DIABETES))
    world.put("gp_system", _condition(HIV))
    world.relate("active")

    response = world.http.get(
        "/fhir/Condition/cond-corrected/_history", headers=world.as_("hosp_clinician")
    )
    assert response.status_code == 404
    assert _vread(world, "hosp_clinician", 1) == 404
    assert _served(world, "gp_system") == {"1", "2"}


def test_a_deleted_sensitive_record_does_not_expose_its_versions(world: World) -> None:
    world.put("gp_system", _condition(HIV))
    deleted = world.http.delete("/fhir/Condition/cond-corrected", headers=world.as_("gp_system"))
    assert deleted.status_code in (200, 204), deleted.text
    world.relate("active")

    # the deletion itself carries nothing; the version before it keeps its label
    assert _served(world, "hosp_clinician") == {"2"}
    assert _vread(world, "hosp_clinician", 1) == 404
    assert _served(world, "gp_system") == {"1", "2"}
