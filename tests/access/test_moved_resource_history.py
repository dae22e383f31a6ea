"""A resource moved to another patient's record (misfiled data corrected) does not bring its
earlier versions into the record it is in now: vread, instance, type and system history serve a
version only if it may be seen as part of the record it was in. Over HTTP, both databases."""

from __future__ import annotations

import pytest

from tests.access.world import World, observation


@pytest.fixture
def world(bare_client, token_for) -> World:
    return World(bare_client, token_for).build()


def _versions(world: World, who: str, url: str) -> set[tuple[str, str]]:
    response = world.http.get(url, headers=world.as_(who))
    assert response.status_code == 200, response.text
    return {
        (e["resource"]["id"], e["resource"]["meta"]["versionId"])
        for e in response.json().get("entry", [])
        if e["resource"]["resourceType"] == "Observation" and e["resource"]["id"] == "obs-moved"
    }


def test_earlier_versions_stay_in_the_record_they_were_in(world):
    # filed to q by mistake, then corrected: moved to p's record
    world.put("gp_system", {**observation("q", 51.0), "id": "obs-moved"})
    world.put("gp_system", {**observation("p", 51.0), "id": "obs-moved"})
    world.relate("active")  # the hospital cares for p, not q

    everything = {("obs-moved", "1"), ("obs-moved", "2")}
    now = {("obs-moved", "2")}
    for url in (
        "/fhir/Observation/obs-moved/_history",
        "/fhir/Observation/_history?_count=200",
        "/fhir/_history?_count=500",
    ):
        # the organisation that recorded both versions sees both
        assert _versions(world, "gp_system", url) == everything, url
        # p's carers and p see only what was in p's record
        assert _versions(world, "hosp_clinician", url) == now, url
        assert _versions(world, "patient_p", url) == now, url
    # q's version is not served to p's carers or to p by id either
    for who in ("hosp_clinician", "patient_p"):
        old = world.http.get("/fhir/Observation/obs-moved/_history/1", headers=world.as_(who))
        assert old.status_code == 404, (who, old.text)
        assert old.json()["resourceType"] == "OperationOutcome"
        new = world.http.get("/fhir/Observation/obs-moved/_history/2", headers=world.as_(who))
        assert new.status_code == 200 and new.json()["subject"]["reference"] == "Patient/p"
    assert (
        world.http.get(
            "/fhir/Observation/obs-moved/_history/1", headers=world.as_("gp_system")
        ).json()["subject"]["reference"]
        == "Patient/q"
    )
    # q no longer sees the resource at all (it is in p's record now)
    assert _versions(world, "patient_q", "/fhir/Observation/_history?_count=200") == set()
