"""Who may write what, and who recorded what (Provenance and the recording organisation)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from register.access_schema import relationship_table as C
from register.db import read_transaction
from register.schema import resource_table as R
from tests.access.world import NHS_NUMBERS, World, encounter, observation


@pytest.fixture
def world(bare_client, token_for) -> World:
    return World(bare_client, token_for).build()


def _provenance_of(world: World, reference: str, who: str = "gp_system") -> list[dict]:
    bundle = world.http.get(
        "/fhir/Provenance/_history", params={"_count": 1000}, headers=world.as_(who)
    ).json()
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if e["resource"]["target"][0]["reference"] == reference
    ]


# --- recording the attendance opens the record ------------------------------------------------


def test_an_encounter_by_nhs_number_opens_the_record(world):
    headers = world.as_("hosp_clinician")
    assert world.http.get("/fhir/Condition/cond-p", headers=headers).status_code == 404
    created = world.post(
        "hosp_clinician",
        encounter("p", "hosp", by_nhs_number=True, practitioner="Practitioner/h1"),
    )
    assert created.status_code == 201, created.text
    subject = created.json()["subject"]
    assert subject["reference"] == "Patient/p"
    assert subject["identifier"]["value"] == NHS_NUMBERS["p"]
    assert world.http.get("/fhir/Condition/cond-p", headers=headers).status_code == 200
    # for the hospital (organisation and clinician), and not for anybody else
    hosp = world.as_("hosp_system")
    assert world.http.get("/fhir/Condition/cond-p", headers=hosp).status_code == 200
    other = world.as_("other_clinician")
    assert world.http.get("/fhir/Condition/cond-p", headers=other).status_code == 404


def test_an_unknown_nhs_number_is_unprocessable(world):
    resource = encounter("p", "hosp", by_nhs_number=True)
    resource["subject"]["identifier"]["value"] = "9990000050"
    response = world.post("hosp_system", resource)
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Encounter.subject"]


def test_the_relationship_follows_the_encounter(world, engine):
    created = world.post("hosp_system", encounter("p", "hosp"))
    rid = created.json()["id"]
    headers = world.as_("hosp_system")
    assert world.http.get("/fhir/Observation/obs-p", headers=headers).status_code == 200
    # entered in error: no longer a relationship
    cancelled = {**created.json(), "status": "entered-in-error"}
    assert (
        world.http.put(f"/fhir/Encounter/{rid}", json=cancelled, headers=headers).status_code == 200
    )
    assert world.http.get("/fhir/Observation/obs-p", headers=headers).status_code == 404
    with read_transaction(engine) as conn:
        rows = conn.execute(select(C.c.active).where(C.c.source_id == rid)).scalars().all()
    assert rows == [False]


def test_organisations_named_before_they_are_known_are_matched_later(world):
    # A CareTeam naming an organisation the register does not hold yet ...
    world.put(
        "gp_system",
        {
            "resourceType": "CareTeam",
            "id": "team-late",
            "status": "active",
            "subject": {"reference": "Patient/p"},
            "participant": [{"member": {"reference": "Organization/late"}}],
        },
    )
    late = world.token_for("system", org="LATE9")
    headers = {"Authorization": f"Bearer {late}"}
    assert world.http.get("/fhir/Patient/p", headers=headers).status_code == 404
    # ... counts once that Organization, with its ODS code, is recorded.
    world.put(
        "gp_system",
        {
            "resourceType": "Organization",
            "id": "late",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                            "value": "LATE9"}],
        },
    )  # fmt: skip
    assert world.http.get("/fhir/Patient/p", headers=headers).status_code == 200


def test_a_practitioner_in_a_care_team_sees_the_record(world, token_for):
    world.put(
        "gp_system",
        {
            "resourceType": "CareTeam",
            "id": "team-p",
            "status": "active",
            "subject": {"reference": "Patient/p"},
            "participant": [{"member": {"reference": "Practitioner/o1"}}],
        },
    )
    # Practitioner/o1 works for OTH04, which has no relationship with p itself.
    assert (
        world.http.get("/fhir/Patient/p", headers=world.as_("other_clinician")).status_code == 200
    )
    colleague = token_for("clinician", org="OTH04", fhir_user="Practitioner/o2")
    assert (
        world.http.get(
            "/fhir/Patient/p", headers={"Authorization": f"Bearer {colleague}"}
        ).status_code
        == 404
    )


# --- writing into a record ---------------------------------------------------------------------


def test_writing_into_a_record_needs_a_relationship(world):
    assert world.post("hosp_clinician", observation("p")).status_code == 403
    world.relate("active")
    assert world.post("hosp_clinician", observation("p")).status_code == 201


def test_a_transaction_is_judged_by_the_state_it_leaves(world):
    """An Observation before the Encounter that opens the record, in one transaction."""
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": observation("p"), "request": {"method": "POST", "url": "Observation"}},
            {"resource": encounter("p", "hosp"), "request": {"method": "POST", "url": "Encounter"}},
        ],
    }
    response = world.http.post("/fhir", json=bundle, headers=world.as_("hosp_system"))
    assert response.status_code == 200, response.text
    alone = {**bundle, "entry": bundle["entry"][:1]}
    refused = world.http.post("/fhir", json=alone, headers=world.as_("other_clinician"))
    assert refused.status_code == 403
    assert "Bundle.entry[0]" in refused.json()["issue"][0]["diagnostics"]


def test_entries_are_admitted_one_by_one(world, token_for):
    token = token_for("system", org="HOS03", scope="system/Encounter.c system/*.rs")
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": encounter("q", "hosp"), "request": {"method": "POST", "url": "Encounter"}},
            {"resource": observation("q"), "request": {"method": "POST", "url": "Observation"}},
            {"request": {"method": "DELETE", "url": "Observation/obs-q"}},
        ],
    }
    response = world.http.post("/fhir", json=bundle, headers={"Authorization": f"Bearer {token}"})
    statuses = [e["response"]["status"][:3] for e in response.json()["entry"]]
    assert statuses == ["201", "403", "403"]


def test_only_the_recording_organisation_deletes(world):
    world.relate("active")
    assert (
        world.http.delete("/fhir/Observation/obs-p", headers=world.as_("hosp_system")).status_code
        == 403
    )
    assert (
        world.http.get("/fhir/Observation/obs-p", headers=world.as_("gp_system")).status_code == 200
    )
    assert (
        world.http.delete("/fhir/Observation/obs-p", headers=world.as_("gp_system")).status_code
        == 204
    )
    assert (
        world.http.get("/fhir/Observation/obs-p", headers=world.as_("gp_system")).status_code == 410
    )


def test_patients_write_their_consent_and_reports_only(world):
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p"},
    }  # fmt: skip
    created = world.post("patient_p", consent)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    revised = {**created.json(), "status": "inactive"}
    headers = world.as_("patient_p")
    assert world.http.put(f"/fhir/Consent/{cid}", json=revised, headers=headers).status_code == 200
    assert world.http.delete(f"/fhir/Consent/{cid}", headers=headers).status_code == 403
    assert (
        world.post("patient_p", {**consent, "patient": {"reference": "Patient/q"}}).status_code
        == 403
    )
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p"},
        "code": {"text": "x"},
    }
    assert world.post("patient_p", condition).status_code == 403
    report = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": {"reference": "Patient/p"},
    }
    assert world.post("patient_p", report).status_code == 201
    # and they cannot change what the GP recorded
    changed = {**observation("p", 30), "id": "obs-p"}
    assert (
        world.http.put("/fhir/Observation/obs-p", json=changed, headers=headers).status_code == 403
    )


# --- who recorded what -------------------------------------------------------------------------


def test_every_write_records_its_author(world, engine):
    world.relate("active")
    created = world.post("hosp_clinician", observation("p"))
    rid = created.json()["id"]
    (provenance,) = _provenance_of(world, f"Observation/{rid}/_history/1", who="hosp_system")
    author, software = provenance["agent"]
    assert author["type"]["coding"][0]["code"] == "author"
    assert author["who"] == {"reference": "Practitioner/h1"}
    assert author["onBehalfOf"]["reference"] == "Organization/hosp"
    assert author["onBehalfOf"]["identifier"]["value"] == "HOS03"
    assert software["who"]["identifier"]["value"] == "test-clinician-client"
    assert provenance["activity"]["coding"][0]["code"] == "CREATE"
    with read_transaction(engine) as conn:
        recorded_by = conn.execute(
            select(R.c.author_org).where(R.c.resource_id == rid)
        ).scalar_one()
    assert recorded_by == "HOS03"
    # an update and a delete get theirs too
    headers = world.as_("hosp_clinician")
    world.http.put(
        f"/fhir/Observation/{rid}", json={**observation("p", 50), "id": rid}, headers=headers
    )
    world.http.delete(f"/fhir/Observation/{rid}", headers=headers)
    assert (
        _provenance_of(world, f"Observation/{rid}/_history/2", "hosp_system")[0]["activity"][
            "coding"
        ][0]["code"]
        == "UPDATE"
    )
    assert (
        _provenance_of(world, f"Observation/{rid}/_history/3", "hosp_system")[0]["activity"][
            "coding"
        ][0]["code"]
        == "DELETE"
    )


def test_system_and_patient_authors_and_transaction_entries(world):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": observation("q"), "request": {"method": "POST", "url": "Observation"}}
        ],
    }
    response = world.http.post("/fhir", json=bundle, headers=world.as_("gp_system"))
    location = response.json()["entry"][0]["response"]["location"]
    (provenance,) = _provenance_of(world, location)
    (author,) = provenance["agent"]
    assert author["who"]["identifier"]["value"] == "test-system-client"
    assert author["onBehalfOf"]["reference"] == "Organization/gp"
    own = world.post("patient_p", observation("p"))
    (by_patient,) = _provenance_of(world, f"Observation/{own.json()['id']}/_history/1", "patient_p")
    assert by_patient["agent"][0]["who"] == {"reference": "Patient/p"}
    assert "onBehalfOf" not in by_patient["agent"][0]


def test_provenance_is_as_private_as_its_target(world):
    refs = [p["target"][0]["reference"] for p in _provenance_of_all(world, "other_clinician")]
    assert not any(ref.startswith(("Observation/obs-p", "Patient/p")) for ref in refs)
    mine = [p["target"][0]["reference"] for p in _provenance_of_all(world, "patient_p")]
    assert "Observation/obs-p/_history/1" in mine
    assert "Observation/obs-q/_history/1" not in mine


def _provenance_of_all(world: World, who: str) -> list[dict]:
    bundle = world.http.get(
        "/fhir/Provenance/_history", params={"_count": 1000}, headers=world.as_(who)
    ).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def test_provenance_is_valid_fhir(world):
    from fhir_adapters.validation import validate_resource

    for provenance in _provenance_of_all(world, "gp_system"):
        validate_resource(provenance, expected_type="Provenance")


@pytest.mark.parametrize(
    ("member", "signed_in_as"),
    [
        ("Practitioner/o1", "PractitionerRole/role-o1"),  # team names the person, token the role
        ("PractitionerRole/role-o1", "Practitioner/o1"),  # and the other way round
    ],
)
def test_a_clinician_is_the_same_person_as_practitioner_or_role(world, member, signed_in_as):
    world.put(
        "gp_system",
        {
            "resourceType": "PractitionerRole",
            "id": "role-o1",
            "practitioner": {"reference": "Practitioner/o1"},
            "organization": {"reference": "Organization/other"},
        },
    )
    token = world.token_for("clinician", org="OTH04", fhir_user=signed_in_as, subject="dr-o1")
    headers = {"Authorization": f"Bearer {token}"}
    assert world.http.get("/fhir/Patient/p", headers=headers).status_code == 404
    world.put(
        "gp_system",
        {
            "resourceType": "CareTeam",
            "id": "team-p",
            "status": "active",
            "subject": {"reference": "Patient/p"},
            "participant": [{"member": {"reference": member}}],
        },
    )
    assert world.http.get("/fhir/Patient/p", headers=headers).status_code == 200
    # a role of somebody else opens nothing
    world.put(
        "gp_system",
        {
            "resourceType": "PractitionerRole",
            "id": "role-o1",
            "practitioner": {"reference": "Practitioner/o9"},
            "organization": {"reference": "Organization/other"},
        },
    )
    assert world.http.get("/fhir/Patient/p", headers=headers).status_code == 404
