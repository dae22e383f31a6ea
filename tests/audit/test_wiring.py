"""Every FHIR interaction, granted or refused, leaves exactly the expected audit event: agents,
entities, patients (with the kinds of data), purpose and request id. Over HTTP, both databases."""

from __future__ import annotations

import pytest

from register.access_clients import add_client, disable_client, put_user
from register.audit.chain import verify
from register.db import read_transaction, write_transaction
from tests.access.world import BREAK_GLASS_REASON, encounter, observation
from tests.audit.helpers import events, last_seq, review_rows

GLASS = {"X-Break-Glass-Reason": BREAK_GLASS_REASON}


def _one(engine, after: int):
    found = events(engine, after)
    assert len(found) == 1, [(e.kind, e.action, e.outcome) for e in found]
    return found[0]


def test_a_read_records_who_what_whose_and_the_request_id(world, engine):
    world.relate("active")
    start = last_seq(engine)
    response = world.http.get("/fhir/Observation/obs-p", headers=world.as_("hosp_clinician"))
    assert response.status_code == 200
    event = _one(engine, start)
    assert (event.kind, event.action, event.outcome) == ("rest", "read", "0")
    assert event.content["type"]["code"] == "rest" and event.subtypes == {"read"}
    assert event.content["action"] == "R"
    assert (event.agent_role, event.agent_who, event.agent_org) == (
        "clinician",
        "Practitioner/h1",
        "HOS03",
    )
    assert event.client_id == "test-clinician-client"
    assert event.patients == {"p"} and event.kinds_for("p") == {"Observation"}
    assert event.entities == {"Observation/obs-p"}
    assert event.request_id == response.headers["x-request-id"]
    agents = event.content["agent"]
    assert [a["type"]["coding"][0]["code"] for a in agents] == ["IRCP", "PRF", "110150"]
    assert agents[0]["role"][0]["coding"][0]["code"] == "clinician"
    assert agents[1]["who"]["identifier"]["value"] == "HOS03"
    assert event.content["source"]["observer"]["display"]


def test_a_search_records_every_patient_whose_data_it_returned_and_the_query(world, engine):
    start = last_seq(engine)
    response = world.http.get(
        "/fhir/Observation", params={"code": "59261-8"}, headers=world.as_("gp_system")
    )
    assert response.status_code == 200
    served = {e["resource"]["subject"]["reference"][8:] for e in response.json()["entry"]}
    assert served == {"p", "q"}
    event = _one(engine, start)
    assert (event.action, event.content["action"]) == ("search-type", "E")
    assert event.patients == served
    assert event.kinds_for("q") == {"Observation"}
    assert event.query == "Observation?code=59261-8"
    # a search that finds nothing names no patient
    start = last_seq(engine)
    world.http.get("/fhir/Observation", params={"code": "nothing"}, headers=world.as_("gp_system"))
    assert _one(engine, start).patients == set()


def test_includes_and_everything_name_each_patient_and_kind(world, engine):
    start = last_seq(engine)
    response = world.http.get("/fhir/Patient/p/$everything", headers=world.as_("gp_system"))
    assert response.status_code == 200
    event = _one(engine, start)
    assert event.action == "operation" and event.patients == {"p"}
    assert {"Patient", "Observation", "Condition", "Encounter"} <= event.kinds_for("p")


def test_a_write_records_its_event_in_its_own_transaction(world, engine):
    start = last_seq(engine)
    response = world.post("gp_system", observation("q"))
    assert response.status_code == 201
    event = _one(engine, start)
    new_id = response.json()["id"]
    assert (event.action, event.content["action"], event.outcome) == ("create", "C", "0")
    assert f"Observation/{new_id}/_history/1" in event.entities
    assert event.patients == {"q"} and "Observation" in event.kinds_for("q")
    # a refused write changes nothing and is recorded as refused
    start = last_seq(engine)
    refused = world.post("other_clinician", observation("q"))
    assert refused.status_code == 403
    event = _one(engine, start)
    assert (event.action, event.outcome, event.agent_org) == ("create", "4", "OTH04")
    assert event.patients == set()


@pytest.mark.parametrize(
    ("headers", "status", "role"),
    [({}, 401, None), ({"Authorization": "Bearer not-a-token"}, 401, None)],
)
def test_refused_tokens_are_recorded(world, engine, headers, status, role):
    start = last_seq(engine)
    response = world.http.get("/fhir/Patient/p", headers=headers)
    assert response.status_code == status
    event = _one(engine, start)
    assert (event.outcome, event.agent_role) == ("4", role)
    assert event.entities == {"Patient/p"} and event.patients == set()


def test_forbidden_and_not_found_are_recorded(world, engine):
    start = last_seq(engine)
    assert (
        world.http.get("/fhir/Observation/obs-p", headers=world.as_("reviewer")).status_code == 403
    )
    assert (
        world.http.get("/fhir/Patient/p", headers=world.as_("other_clinician")).status_code == 404
    )
    forbidden, hidden = events(engine, start)
    assert (forbidden.outcome, forbidden.agent_role, forbidden.action) == ("4", "reviewer", "read")
    assert (hidden.outcome, hidden.agent_org) == ("4", "OTH04")
    assert hidden.patients == set()  # nothing of the record was served


def test_a_consent_change_is_a_write_marked_as_such(world, engine):
    start = last_seq(engine)
    scope = "http://terminology.hl7.org/CodeSystem/consentscope"
    act = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": scope, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p"},
        "policyRule": {"coding": [{"system": act, "code": "OPTIN"}]},
    }
    response = world.post("patient_p", consent)
    assert response.status_code == 201, response.text
    event = _one(engine, start)
    assert event.kind == "consent" and event.subtypes == {"create", "consent-change"}
    assert event.patients == {"p"} and event.agent_who == "Patient/p"


def test_break_glass_start_and_the_reads_under_it(world, engine):
    start = last_seq(engine)
    response = world.http.get(
        "/fhir/Observation/obs-p", headers=world.as_("hosp_clinician", **GLASS)
    )
    assert response.status_code == 200
    started, read = events(engine, start)
    assert started.kind == "break-glass" and started.subtypes == {"110127", "break-glass"}
    assert started.patients == {"p"} and started.break_glass and started.purpose == "BTG"
    assert started.content["purposeOfEvent"][0]["text"] == BREAK_GLASS_REASON
    assert (read.action, read.purpose, read.break_glass) == ("read", "BTG", True)
    assert read.content["purposeOfEvent"][0]["text"] == BREAK_GLASS_REASON
    assert started.request_id == read.request_id == response.headers["x-request-id"]
    queued = review_rows(engine)
    assert [(r.seq, r.category, r.patient_id, r.reason) for r in queued] == [
        (started.seq, "break-glass", "p", BREAK_GLASS_REASON)
    ]


def test_accesses_without_a_care_relationship_are_queued(world, engine):
    start = last_seq(engine)
    # the hospital records an attendance it was not yet in a relationship for (self-claimed)
    written = world.post("hosp_clinician", encounter("p", "hosp", by_nhs_number=True))
    assert written.status_code == 201, written.text
    # the relationship now stands: a read is not queued
    assert world.http.get("/fhir/Patient/p", headers=world.as_("hosp_clinician")).status_code == 200
    write_event, read_event = events(engine, start)
    queued = [r for r in review_rows(engine) if r.seq > start]
    assert [(r.seq, r.category, r.patient_id) for r in queued] == [
        (write_event.seq, "no-relationship", "p")
    ]
    assert read_event.outcome == "0"


def test_token_issuance_and_refusal_are_recorded(bare_client, engine):
    with write_transaction(engine) as conn:
        put_user(
            conn,
            username="dr.h",
            password="pw-h",
            role="clinician",
            scope="user/*.cruds",
            fhir_user="Practitioner/h1",
            organisation="HOS03",
        )
    start = last_seq(engine)
    login = {"grant_type": "password", "username": "dr.h", "password": "pw-h"}
    assert bare_client.post("/auth/token", data=login).status_code == 200
    assert bare_client.post("/auth/token", data={**login, "password": "no"}).status_code == 400
    issued, refused = events(engine, start)
    assert (issued.kind, issued.outcome, issued.agent_who, issued.agent_org) == (
        "token",
        "0",
        "Practitioner/h1",
        "HOS03",
    )
    assert issued.content["subtype"][0]["code"] == "110122"
    assert (refused.kind, refused.outcome, refused.agent_role) == ("token", "4", None)
    assert "invalid_grant" in refused.content["outcomeDesc"]


def test_client_registration_is_recorded_with_it(engine):
    start = last_seq(engine)
    jwks = {"keys": [{"kty": "EC", "crv": "P-384", "x": "a" * 64, "y": "b" * 64, "kid": "k"}]}
    with write_transaction(engine) as conn:
        add_client(conn, organisation="HOS03", scope="system/*.rs", jwks=jwks, client_id="c1")
        disable_client(conn, "c1")
    added, disabled = events(engine, start)
    assert (added.kind, added.action, added.entities) == (
        "client-registration",
        "register",
        {"client/c1"},
    )
    assert (disabled.kind, disabled.action) == ("client-registration", "disable")


@pytest.mark.parametrize("who", ["admin", "gp_system", "hosp_clinician", "patient_p"])
def test_no_one_changes_an_audit_event(world, engine, who):
    world.http.get("/fhir/Patient/p", headers=world.as_("gp_system"))
    (event_id,) = [e.content["id"] for e in events(engine)][-1:]
    body = {"resourceType": "AuditEvent", "id": event_id}
    http = world.http
    answers = [
        http.post("/fhir/AuditEvent", json=body, headers=world.as_(who)),
        http.put(f"/fhir/AuditEvent/{event_id}", json=body, headers=world.as_(who)),
        http.delete(f"/fhir/AuditEvent/{event_id}", headers=world.as_(who)),
        http.patch(
            f"/fhir/AuditEvent/{event_id}",
            json=[{"op": "remove", "path": "/agent"}],
            headers=world.as_(who, **{"Content-Type": "application/json-patch+json"}),
        ),
        http.post(
            "/fhir",
            json={
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"request": {"method": "DELETE", "url": f"AuditEvent/{event_id}"}}],
            },
            headers=world.as_(who),
        ),
    ]
    for answer in answers:
        assert answer.status_code == 403, answer.text
        assert answer.json()["resourceType"] == "OperationOutcome"
    with read_transaction(engine) as conn:
        assert verify(conn).intact


def test_the_chain_stays_valid_with_concurrent_readers_and_writers(world, engine):
    from concurrent.futures import ThreadPoolExecutor

    def work(i: int) -> int:
        if i % 5 == 0:
            return world.post("gp_system", observation("p", float(i))).status_code
        return world.http.get("/fhir/Observation/obs-p", headers=world.as_("gp_system")).status_code

    start = last_seq(engine)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(work, range(60)))
    assert set(statuses) <= {200, 201}
    recorded = events(engine, start)
    assert len(recorded) == 60
    assert [e.seq for e in recorded] == list(range(start + 1, start + 61))
    with read_transaction(engine) as conn:
        report = verify(conn)
    assert report.intact, report.problems


def test_every_other_interaction_kind(world, engine):
    """update, patch, delete, vread, history, compartment search, transaction: one event each,
    with its interaction, the versions written or resources read, and the patient."""
    http, gp = world.http, world.as_("gp_system")

    def one(response, status: int):  # type: ignore[no-untyped-def]
        assert response.status_code == status, response.text
        (event,) = events(engine, one.start)
        one.start = event.seq
        assert event.request_id == response.headers["x-request-id"] and event.outcome == "0"
        return event

    one.start = last_seq(engine)  # type: ignore[attr-defined]
    changed = {**observation("q", 50.0), "id": "obs-q"}
    updated = one(http.put("/fhir/Observation/obs-q", json=changed, headers=gp), 200)
    assert (updated.action, updated.content["action"]) == ("update", "U")
    assert "Observation/obs-q/_history/2" in updated.entities and updated.patients == {"q"}
    patched = one(
        http.patch(
            "/fhir/Observation/obs-q",
            json=[{"op": "replace", "path": "/status", "value": "amended"}],
            headers={**gp, "Content-Type": "application/json-patch+json"},
        ),
        200,
    )
    assert patched.action == "patch" and "Observation/obs-q/_history/3" in patched.entities
    vread = one(http.get("/fhir/Observation/obs-q/_history/1", headers=gp), 200)
    assert (vread.action, vread.entities, vread.patients) == (
        "vread",
        {"Observation/obs-q"},
        {"q"},
    )
    history = one(http.get("/fhir/Observation/obs-q/_history", headers=gp), 200)
    assert history.action == "history-instance" and history.patients == {"q"}
    compartment = one(http.get("/fhir/Patient/q/Observation", headers=gp), 200)
    assert compartment.action == "search-type" and compartment.patients == {"q"}
    assert compartment.query == "Patient/q/Observation"
    deleted = one(http.delete("/fhir/Observation/obs-q", headers=gp), 204)
    assert (deleted.action, deleted.content["action"]) == ("delete", "D")
    assert "Observation/obs-q/_history/4" in deleted.entities and deleted.patients == {"q"}
    post = {"method": "POST", "url": "Observation"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": observation("p", 41.0), "request": post},
            {"resource": observation("q", 42.0), "request": post},
        ],
    }
    transaction = one(http.post("/fhir", json=bundle, headers=gp), 200)
    assert transaction.action == "transaction" and transaction.patients == {"p", "q"}
    assert len([e for e in transaction.entities if e.startswith("Observation/")]) == 2
    with read_transaction(engine) as conn:
        assert verify(conn).intact
