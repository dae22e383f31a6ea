"""The diabetes team's story, over HTTP on both databases: a patient's sharing choices decide
what the hospital, the GP and a sexual-health clinic see, on every read path.

The world (tests/access/world.py): GP practice GP001 registered Patient/p and Patient/q and
recorded an Observation (HbA1c), a Condition and an old Encounter for each; the hospital HOS03;
another organisation OTH04 (here: out-of-hours service whose clinician breaks the glass).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from register.access_schema import break_glass_table
from tests.access.world import ODS, World, encounter
from tests.consent.helpers import (
    ACT,
    NOT_FOR_PATIENT,
    ON_BEHALF,
    consent,
    has_notice,
    ids,
)
from tests.consent.reference import Provision

SNOMED = "http://snomed.info/sct"
MH = f"{ACT}|MH"
SEX = f"{ACT}|SEX"
ETH = f"{ACT}|ETH"


@pytest.fixture
def world(client, token_for) -> Iterator[World]:  # type: ignore[no-untyped-def]
    built = World(client, token_for).build()
    built.put(
        "gp_system",
        {
            "resourceType": "Organization",
            "id": "clinic",
            "identifier": [{"system": ODS, "value": "SHC05"}],
            "name": "Sexual health clinic",
        },
    )
    built.tokens["clinic_clinician"] = token_for(
        "clinician", org="SHC05", fhir_user="Practitioner/c1", subject="dr-c1"
    )
    built.tokens["gp_clinician"] = token_for(
        "clinician", org="GP001", fhir_user="Practitioner/g1", subject="dr-g1"
    )
    built.tokens["hosp_clinician_2"] = token_for(
        "clinician", org="HOS03", fhir_user="Practitioner/h2", subject="dr-h2"
    )
    yield built


def condition(rid: str, patient: str, code: str, display: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": rid,
        "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{patient}"},
        **extra,
    }


def get(world: World, who: str, url: str, **headers: str) -> Any:
    return world.http.get(f"/fhir/{url}", headers=world.as_(who, **headers))


def bundle(world: World, who: str, url: str, **headers: str) -> dict[str, Any]:
    response = get(world, who, url, **headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def write_consent(world: World, who: str, body: dict[str, Any]) -> dict[str, Any]:
    response = world.post(who, body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def explain(world: World, who: str, patient: str, resource: str) -> dict[str, Any]:
    response = get(world, who, f"Patient/{patient}/$access-explain?resource={resource}")
    assert response.status_code == 200, response.text
    return {
        p["name"]: next(v for k, v in p.items() if k != "name")
        for p in response.json()["parameter"]
    }


def test_a_patient_who_opts_out(world: World) -> None:
    world.relate("active")  # the hospital is caring for p
    assert get(world, "hosp_clinician", "Observation/obs-p").status_code == 200
    assert not has_notice(bundle(world, "hosp_clinician", "Observation?patient=p"))

    write_consent(world, "patient_p", consent("p", Provision("deny")))

    # The very next request: withheld, as if absent (404, no count), with the notice.
    assert get(world, "hosp_clinician", "Observation/obs-p").status_code == 404
    found = bundle(world, "hosp_clinician", "Observation?patient=p&_total=accurate")
    assert found["total"] == 0 and ids(found) == []
    assert has_notice(found)
    assert bundle(world, "hosp_clinician", "Observation?_summary=count&patient=p")["total"] == 0
    everything = bundle(world, "hosp_clinician", "Patient/p/$everything")
    assert "Observation/obs-p" not in ids(everything)
    assert "Condition/cond-p" not in ids(everything)
    assert "Patient/p" in ids(everything)  # who the patient is stays shared
    assert has_notice(everything)
    # What the hospital recorded itself stays visible to it.
    own = bundle(world, "hosp_clinician", "Encounter?patient=p")
    assert len(ids(own)) == 1
    # The GP recorded the Observation: it still sees it, with no notice.
    gp = bundle(world, "gp_system", "Observation?patient=p")
    assert ids(gp) == ["Observation/obs-p"] and not has_notice(gp)
    # Explanations: the hospital hears which rule; the patient sees their own record.
    why = explain(world, "hosp_clinician", "p", "Observation/obs-p")
    assert why["visible"] is False and why["rule"] == "consent-deny"
    assert why["provision"] == "Consent.provision"
    assert "HbA1c" not in str(why)
    assert explain(world, "patient_p", "p", "Observation/obs-p")["rule"] == "own-record"
    assert explain(world, "gp_system", "p", "Observation/obs-p")["rule"] == "own-organisation"
    # Opting back in applies at once.
    consents = bundle(world, "patient_p", "Consent?patient=p")
    body = consents["entry"][0]["resource"]
    revised = world.http.put(
        f"/fhir/Consent/{body['id']}",
        json={**body, "status": "inactive"},
        headers=world.as_("patient_p"),
    )
    assert revised.status_code == 200, revised.text
    assert get(world, "hosp_clinician", "Observation/obs-p").status_code == 200


def test_a_patient_who_shares_everything_but_mental_health(world: World) -> None:
    world.relate("active")
    world.put("gp_system", condition("dep-p", "p", "35489007", "Depressive disorder"))
    world.put(
        "gp_system",
        condition(
            "alc-p",
            "p",
            "7200002",
            "Alcoholism",
            meta={"security": [{"system": ACT, "code": "ETH"}]},
        ),
    )
    # Sensitive by default: the hospital sees neither (depression was labelled MH on write).
    stored = bundle(world, "gp_system", "Condition?_id=dep-p")["entry"][0]["resource"]
    assert {"system": ACT, "code": "MH"} in [
        {"system": s["system"], "code": s["code"]} for s in stored["meta"]["security"]
    ]
    seen = ids(bundle(world, "hosp_clinician", "Condition?patient=p"))
    assert seen == ["Condition/cond-p"]

    choice = Provision(
        "permit",
        children=(
            Provision("permit", labels=frozenset({ETH})),  # substance use: share it
            Provision("deny", labels=frozenset({MH})),  # but never mental health
        ),
    )
    write_consent(world, "patient_p", consent("p", choice))
    found = bundle(world, "hosp_clinician", "Condition?patient=p&_total=accurate")
    assert sorted(ids(found)) == ["Condition/alc-p", "Condition/cond-p"]
    assert found["total"] == 2 and has_notice(found)
    assert get(world, "hosp_clinician", "Condition/dep-p").status_code == 404
    # _has, chains and includes do not reach it either.
    assert (
        ids(bundle(world, "hosp_clinician", "Patient?_has:Condition:patient:code=35489007")) == []
    )
    assert ids(bundle(world, "hosp_clinician", "Patient?_has:Condition:patient:code=7200002")) == [
        "Patient/p"
    ]
    chained = bundle(
        world,
        "hosp_clinician",
        "Condition?patient.identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018",
    )
    assert "Condition/dep-p" not in ids(chained)
    included = bundle(world, "hosp_clinician", "Patient?_id=p&_revinclude=Condition:patient")
    assert "Condition/dep-p" not in ids(included, "include") and has_notice(included)
    # The Provenance of the withheld Condition is withheld with it.
    provenance = bundle(world, "hosp_clinician", "Provenance?target=Condition/dep-p")
    assert ids(provenance) == []
    assert len(ids(bundle(world, "gp_system", "Provenance?target=Condition/dep-p"))) == 1
    why = explain(world, "hosp_clinician", "p", "Condition/dep-p")
    assert why["rule"] == "consent-deny" and why["provision"] == "Consent.provision.provision[1]"
    assert "Depress" not in str(why) and "mental" not in str(why).lower()


def test_a_hospital_attendance_opens_the_record(world: World) -> None:
    write_consent(world, "patient_p", consent("p", None))  # agrees to the default (opt-out)
    assert get(world, "hosp_clinician", "Observation/obs-p").status_code == 404
    # Before the attendance the hospital may not even see the Patient: nothing is explained.
    assert (
        get(
            world, "hosp_clinician", "Patient/p/$access-explain?resource=Observation/obs-p"
        ).status_code
        == 404
    )
    response = world.post("hosp_system", encounter("p", "hosp", by_nhs_number=True))
    assert response.status_code == 201, response.text
    assert get(world, "hosp_clinician", "Observation/obs-p").status_code == 200
    everything = bundle(world, "hosp_clinician", "Patient/p/$everything")
    assert {"Observation/obs-p", "Condition/cond-p", "Patient/p"} <= set(ids(everything))
    assert not has_notice(everything)
    assert explain(world, "hosp_clinician", "p", "Observation/obs-p")["rule"] == "default-opt-out"


def test_no_relationship_explains_nothing_about_resources(world: World) -> None:
    world.post("hosp_system", encounter("q", "hosp", by_nhs_number=True))  # q, not p
    # The other organisation has no relationship with q: the Patient itself is not visible.
    assert (
        get(
            world, "other_clinician", "Patient/q/$access-explain?resource=Observation/obs-q"
        ).status_code
        == 404
    )
    # A GP system registered p; the hospital has no relationship with p yet sees nothing of it.
    response = get(world, "hosp_clinician", "Patient/p/$access-explain?resource=Observation/obs-p")
    assert response.status_code == 404


def test_break_glass_at_night(world: World, engine) -> None:  # type: ignore[no-untyped-def]
    write_consent(world, "patient_p", consent("p", Provision("deny")))
    world.put("gp_system", condition("dep-p", "p", "35489007", "Depressive disorder"))
    # 03:00, the out-of-hours clinician has no relationship: nothing.
    assert get(world, "other_clinician", "Observation/obs-p").status_code == 404
    reason = "Unconscious at home, on insulin, needs medication history"
    opened = get(world, "other_clinician", "Observation/obs-p", **{"X-Break-Glass-Reason": reason})
    assert opened.status_code == 200
    # The override covers the patient's whole record, sensitive items included, for its period.
    everything = bundle(world, "other_clinician", "Patient/p/$everything")
    assert {"Observation/obs-p", "Condition/dep-p"} <= set(ids(everything))
    assert not has_notice(everything)
    assert explain(world, "other_clinician", "p", "Condition/dep-p")["rule"] == "break-glass"
    # Another clinician of the same service has no override.
    assert get(world, "hosp_clinician_2", "Observation/obs-p").status_code == 404
    # When the period ends, the deny applies again.
    with engine.begin() as conn:
        conn.execute(update(break_glass_table).values(expires_at=break_glass_table.c.started_at))
    assert get(world, "other_clinician", "Observation/obs-p").status_code == 404


def test_a_sexual_health_clinic_record_stays_in_the_clinic(world: World) -> None:
    world.relate("active")  # the hospital is caring for p; the GP registered p
    clinic_record = condition("chl-p", "p", "169553002", "Insertion of subcutaneous contraceptive")
    # The clinic needs a relationship to write into p's record: it records the attendance.
    response = world.post(
        "gp_system",
        {
            "resourceType": "CareTeam",
            "status": "active",
            "subject": {"reference": "Patient/p"},
            "participant": [
                {"member": {"reference": "Organization/clinic"}},
                {"member": {"reference": "Organization/gp"}},
            ],
        },
    )
    assert response.status_code == 201, response.text
    put = world.http.put(
        "/fhir/Condition/chl-p", json=clinic_record, headers=world.as_("clinic_clinician")
    )
    assert put.status_code == 201, put.text
    assert SEX.split("|")[1] in str(put.json()["meta"]["security"])
    for who in ("gp_clinician", "hosp_clinician"):
        assert get(world, who, "Condition/chl-p").status_code == 404
        assert "Condition/chl-p" not in ids(bundle(world, who, "Patient/p/$everything"))
    assert get(world, "clinic_clinician", "Condition/chl-p").status_code == 200
    assert explain(world, "gp_clinician", "p", "Condition/chl-p")["rule"] == "sensitive"
    # A general permit does not unlock it; a permit naming the label, for the GP only, does.
    write_consent(world, "patient_p", consent("p", Provision("permit")))
    assert get(world, "gp_clinician", "Condition/chl-p").status_code == 404
    choice = Provision(
        "permit",
        children=(Provision("permit", actors=frozenset({"GP001"}), labels=frozenset({SEX})),),
    )
    write_consent(world, "patient_p", consent("p", choice))
    assert get(world, "gp_clinician", "Condition/chl-p").status_code == 200
    assert get(world, "hosp_clinician", "Condition/chl-p").status_code == 404
    assert explain(world, "gp_clinician", "p", "Condition/chl-p")["rule"] == "consent-permit"


def test_items_not_for_the_patient(world: World) -> None:
    world.relate("active")
    note = condition(
        "sg-p", "p", "397940009", "Safeguarding concern", meta={"security": [NOT_FOR_PATIENT]}
    )
    world.put("gp_system", note)
    assert get(world, "patient_p", "Condition/sg-p").status_code == 404
    own = bundle(world, "patient_p", "Patient/p/$everything")
    assert "Condition/sg-p" not in ids(own) and not has_notice(own)
    assert ids(bundle(world, "patient_p", "Provenance?target=Condition/sg-p")) == []
    assert explain(world, "patient_p", "p", "Condition/sg-p")["rule"] == "not-found"
    assert explain(world, "patient_p", "p", "Condition/none")["rule"] == "not-found"
    # Only from the patient: clinicians caring for them see it.
    assert get(world, "hosp_clinician", "Condition/sg-p").status_code == 200
    assert get(world, "patient_p", "Condition/cond-p").status_code == 200


def test_a_clinician_records_consent_on_the_patients_behalf(world: World) -> None:
    world.relate("active")
    bare = consent("p", Provision("deny"))
    refused = world.post("gp_clinician", bare)
    assert refused.status_code == 422
    where = {e for i in refused.json()["issue"] for e in i.get("expression", [])}
    assert where == {"Consent.performer", "Consent.verification"}
    recorded = write_consent(world, "gp_clinician", {**bare, **ON_BEHALF})
    assert recorded["performer"] == [{"reference": "Patient/p"}]
    assert get(world, "hosp_clinician", "Observation/obs-p").status_code == 404
    # The patient reads it with their own token, and changes it.
    mine = bundle(world, "patient_p", "Consent?patient=p")
    assert ids(mine) == [f"Consent/{recorded['id']}"]
    changed = world.http.put(
        f"/fhir/Consent/{recorded['id']}",
        json={**recorded, "provision": {"type": "permit"}},
        headers=world.as_("patient_p"),
    )
    assert changed.status_code == 200, changed.text
    assert get(world, "hosp_clinician", "Observation/obs-p").status_code == 200
    # A patient's own Consent names them as performer when they leave it out.
    own = write_consent(world, "patient_p", consent("p", Provision("permit")))
    assert own["performer"] == [{"reference": "Patient/p"}]


def test_a_transaction_writes_consent_and_the_next_entry_sees_nothing_partial(world: World) -> None:
    world.relate("active")
    entry = {
        "resource": {**consent("p", Provision("deny")), **ON_BEHALF},
        "request": {"method": "POST", "url": "Consent"},
    }
    bad = {
        "resource": consent("p", {"type": "maybe"}) | ON_BEHALF,
        "request": {"method": "POST", "url": "Consent"},
    }
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [entry, bad]}
    failed = world.http.post("/fhir", json=tx, headers=world.as_("gp_clinician"))
    assert failed.status_code == 422
    assert get(world, "hosp_clinician", "Observation/obs-p").status_code == 200  # nothing written
    tx["entry"] = [entry]
    done = world.http.post("/fhir", json=tx, headers=world.as_("gp_clinician"))
    assert done.status_code == 200, done.text
    assert get(world, "hosp_clinician", "Observation/obs-p").status_code == 404
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Observation/obs-p"}},
            {"request": {"method": "GET", "url": "Observation?patient=p"}},
        ],
    }
    answered = world.http.post("/fhir", json=batch, headers=world.as_("hosp_clinician"))
    assert answered.status_code == 200
    first, second = answered.json()["entry"]
    assert first["response"]["status"].startswith("404")
    assert ids(second["resource"]) == []


@pytest.mark.parametrize(
    ("provision", "where"),
    [
        ({"type": "maybe"}, "Consent.provision.type"),
        (
            {
                "type": "deny",
                "actor": [{"role": {"text": "x"}, "reference": {"reference": "Practitioner/x"}}],
            },
            "Consent.provision.actor[0].reference",
        ),
        (
            {
                "type": "deny",
                "actor": [{"role": {"text": "x"}, "reference": {"reference": "Organization/nope"}}],
            },
            "Consent.provision.actor[0].reference",
        ),
        (
            {"type": "deny", "class": [{"system": "http://example.org", "code": "Observation"}]},
            "Consent.provision.class[0]",
        ),
        (
            {
                "type": "deny",
                "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Nope"}],
            },
            "Consent.provision.class[0]",
        ),
        (
            {
                "type": "permit",
                "provision": [
                    {"type": "deny", "dataPeriod": {"start": "2020-01-01", "end": "2019-01-01"}}
                ],
            },
            "Consent.provision.provision[0].dataPeriod",
        ),
        (
            {
                "type": "permit",
                "data": [{"meaning": "instance", "reference": {"reference": "Observation/obs-p"}}],
            },
            "Consent.provision.data",
        ),
    ],
)
def test_a_consent_that_cannot_be_enforced_is_refused(world: World, provision, where) -> None:  # type: ignore[no-untyped-def]
    response = world.post("patient_p", consent("p", provision))
    assert response.status_code in (400, 422), response.text
    issues = response.json()["issue"]
    assert any(where in i.get("expression", []) for i in issues), issues
    assert ids(bundle(world, "patient_p", "Consent?patient=p")) == []  # nothing stored


def test_the_capability_statement_lists_access_explain(world: World) -> None:
    statement = world.http.get("/fhir/metadata").json()
    names = {op["name"] for r in statement["rest"][0]["resource"] for op in r.get("operation", [])}
    assert "access-explain" in names


def test_opt_in_shares_only_what_is_permitted(app, client, token_for) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from auth.policy import SharingModel

    app.state.access.config = replace(app.state.access.config, sharing_model=SharingModel.OPT_IN)
    world = World(client, token_for).build()
    world.relate("active")
    assert get(world, "hosp_clinician", "Observation/obs-p").status_code == 404
    assert explain(world, "hosp_clinician", "p", "Observation/obs-p")["rule"] == "default-opt-in"
    write_consent(
        world, "patient_p", consent("p", Provision("permit", classes=frozenset({"Observation"})))
    )
    assert get(world, "hosp_clinician", "Observation/obs-p").status_code == 200
    assert get(world, "hosp_clinician", "Condition/cond-p").status_code == 404
