"""Batch Bundles, type and system history, conditional create/update/delete, ``_include`` and
``_revinclude`` searches, and refusals of each: every request adds exactly the expected audit
event (interaction, outcome, request id, agent, the patients whose data was served or written
with the kinds of data, the entities, the query). Over HTTP, both databases.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from tests.access.world import World, observation
from tests.audit.helpers import Recorded, events, last_seq

IDS = "https://gp.example/Id/observation"
"""Identifier system of the Observations the conditional interactions find."""

AGENTS = {
    "gp_system": ("system", None, "GP001", "test-system-client"),
    "hosp_clinician": ("clinician", "Practitioner/h1", "HOS03", "test-clinician-client"),
    "other_clinician": ("clinician", "Practitioner/o1", "OTH04", "test-clinician-client"),
    "reviewer": ("reviewer", None, "HOS03", "test-reviewer-client"),
}
"""Each token of the world as its event records it: role, who, organisation, client."""


def _one(engine, after: int, response, who: str, outcome: str = "0") -> Recorded:
    """The single event ``response``'s request added after position ``after``, checked for its
    request id, outcome and agent."""
    found = events(engine, after)
    assert len(found) == 1, [(e.kind, e.action, e.outcome) for e in found]
    (event,) = found
    assert event.kind == "rest"
    assert event.request_id == response.headers["x-request-id"]
    assert event.outcome == outcome, event.content.get("outcomeDesc")
    assert (event.agent_role, event.agent_who, event.agent_org, event.client_id) == AGENTS[who]
    return event


def _identified(patient: str, value: str, amount: float = 48.0) -> dict[str, Any]:
    return {**observation(patient, amount), "identifier": [{"system": IDS, "value": value}]}


def _kinds(event: Recorded) -> dict[str, set[str]]:
    """Each patient the event names, with the kinds of data of theirs."""
    return {patient: event.kinds_for(patient) for patient in event.patients}


def _provenance_targets(world: World, event: Recorded) -> set[str]:
    """What the Provenance versions among the event's entities record as written (the register
    writes one Provenance per version, in the same transaction)."""
    targets = set()
    for entity in event.entities:
        if entity.startswith("Provenance/"):
            kind, pid, _, vid = entity.split("/")
            assert vid == "1", entity
            body = world.http.get(f"/fhir/{kind}/{pid}", headers=world.as_("gp_system")).json()
            targets |= {t["reference"] for t in body["target"]}
    return targets


def _written(world: World, event: Recorded) -> set[str]:
    """The versions the event records as written, each with its Provenance version: the
    versions other than the Provenances, after checking those are exactly the Provenances of
    the others."""
    versions = {e for e in event.entities if "/_history/" in e and not e.startswith("Provenance/")}
    provenances = [e for e in event.entities if e.startswith("Provenance/")]
    assert len(provenances) == len(versions), event.entities
    assert _provenance_targets(world, event) == versions
    return versions


def _owner(resource: dict[str, Any], owners: dict[str, str | None]) -> str | None:
    """The patient whose record ``resource`` is in (as the test world writes them)."""
    kind = resource["resourceType"]
    if kind == "Patient":
        return str(resource["id"])
    if kind == "Provenance":
        target = resource["target"][0]["reference"].split("/_history/")[0]
        return owners[target]
    reference = (resource.get("subject") or {}).get("reference")
    return reference[len("Patient/") :] if reference else None


def _served(bundle: dict[str, Any]) -> dict[str, set[str]]:
    """Each patient whose data a history or search Bundle holds, with the kinds of data."""
    resources = [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
    owners: dict[str, str | None] = {}
    for resource in resources:
        if resource["resourceType"] != "Provenance":
            owners[f"{resource['resourceType']}/{resource['id']}"] = _owner(resource, owners)
    served: dict[str, set[str]] = {}
    for resource in resources:
        patient = _owner(resource, owners)
        if patient is not None:
            served.setdefault(patient, set()).add(resource["resourceType"])
    return served


def _versions_of(world: World, reference: str) -> int:
    history = world.http.get(f"/fhir/{reference}/_history", headers=world.as_("gp_system"))
    assert history.status_code == 200, history.text
    return len(history.json().get("entry", []))


def _batch(*entries: dict[str, Any], kind: str = "batch") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _get(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


def _statuses(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["response"]["status"] for e in response.json()["entry"]]


# --- 1. batch ----------------------------------------------------------------------------------


def test_a_batch_is_one_event_naming_each_patient_its_entries_served_or_wrote(world, engine):
    """A read, a search, a read of nothing and a create: one event for the whole Bundle, as a
    transaction is recorded (CRUDE E), naming the patient of each entry that succeeded with
    the kinds of data, and the versions written; the failed read names nothing."""
    start = last_seq(engine)
    response = world.http.post(
        "/fhir",
        json=_batch(
            _get("Observation/obs-p"),
            _get("Condition?subject=Patient/q"),
            _get("Observation/no-such-observation"),
            {
                "resource": observation("q", 44.0),
                "request": {"method": "POST", "url": "Observation"},
            },
        ),
        headers=world.as_("gp_system"),
    )
    assert response.status_code == 200, response.text
    assert _statuses(response) == ["200 OK", "200 OK", "404 Not Found", "201 Created"]
    created = response.json()["entry"][3]["response"]["location"]
    assert created.startswith("Observation/") and created.endswith("/_history/1")
    event = _one(engine, start, response, "gp_system")
    assert event.content["action"] == "E"
    assert (event.action, event.subtypes) == ("batch", {"batch"})
    assert _kinds(event) == {"p": {"Observation"}, "q": {"Condition", "Observation", "Provenance"}}
    # the version written, with its Provenance; nothing of the read that found nothing
    assert _written(world, event) == {created}
    assert not any("no-such-observation" in e for e in event.entities)
    # beside the version written, the resource its read served by id
    assert event.entities - {created} == {"Observation/obs-p"} | {
        e for e in event.entities if e.startswith("Provenance/")
    }
    assert event.query is None


def test_a_batch_entry_refused_for_want_of_a_relationship_names_no_one(world, engine):
    """A hospital clinician's batch: the read of the GP's record of a patient the hospital has
    no relationship with is answered 404 and that patient is not named; the entries that served
    data name their patient."""
    world.relate("active")
    start = last_seq(engine)
    response = world.http.post(
        "/fhir",
        json=_batch(
            _get("Observation/obs-p"),
            _get("Observation/obs-q"),
            _get("Condition?subject=Patient/q"),
            _get("Condition?subject=Patient/p"),
        ),
        headers=world.as_("hosp_clinician"),
    )
    assert response.status_code == 200, response.text
    assert _statuses(response) == ["200 OK", "404 Not Found", "200 OK", "200 OK"]
    assert response.json()["entry"][2]["resource"].get("entry", []) == []
    event = _one(engine, start, response, "hosp_clinician")
    assert _kinds(event) == {"p": {"Observation", "Condition"}}
    assert event.entities == {"Observation/obs-p"}
    assert event.content["action"] == "E"


@pytest.mark.parametrize("path", ["/fhir", "/fhir/"])
def test_a_batch_is_recorded_as_a_batch(world, engine, path):
    start = last_seq(engine)
    response = world.http.post(
        path, json=_batch(_get("Observation/obs-p")), headers=world.as_("gp_system")
    )
    assert response.status_code == 200, response.text
    event = _one(engine, start, response, "gp_system")
    assert (event.action, event.subtypes) == ("batch", {"batch"})


def test_a_refused_delete_in_a_batch_names_nothing_it_did_not_write(world, engine):
    world.put("gp_system", {**_identified("p", "k"), "id": "obs-k"})
    world.relate("active")
    start = last_seq(engine)
    response = world.http.post(
        "/fhir",
        json=_batch(
            {"request": {"method": "DELETE", "url": "Observation/obs-k"}},
            _get("Observation/no-such-observation"),
        ),
        headers=world.as_("hosp_clinician"),
    )
    assert response.status_code == 200, response.text
    assert _statuses(response) == ["403 Forbidden", "404 Not Found"]
    event = _one(engine, start, response, "hosp_clinician")
    assert _versions_of(world, "Observation/obs-k") == 1  # nothing was deleted
    # neither the patient nor the version that was rolled back
    assert (event.patients, "Observation/obs-k/_history/2" in event.entities) == (set(), False)


def test_a_failed_conditional_create_in_a_batch_names_no_one(world, engine):
    world.put("gp_system", {**_identified("p", "twice"), "id": "obs-twice-p"})
    world.put("gp_system", {**_identified("q", "twice"), "id": "obs-twice-q"})
    start = last_seq(engine)
    post = {"method": "POST", "url": "Observation", "ifNoneExist": f"identifier={IDS}|twice"}
    response = world.http.post(
        "/fhir",
        json=_batch({"resource": _identified("p", "twice"), "request": post}),
        headers=world.as_("gp_system"),
    )
    assert response.status_code == 200, response.text
    assert _statuses(response) == ["412 Precondition Failed"]
    event = _one(engine, start, response, "gp_system")
    assert event.patients == set() and event.entities == set()


# --- 2. history --------------------------------------------------------------------------------


def test_type_history_names_each_patient_whose_versions_it_served(world, engine):
    gp = world.as_("gp_system")
    world.put("gp_system", {**observation("q", 51.0), "id": "obs-q"})  # obs-q version 2
    start = last_seq(engine)
    response = world.http.get("/fhir/Observation/_history", params={"_count": 50}, headers=gp)
    assert response.status_code == 200
    versions = {e["fullUrl"].split("/fhir/")[1] for e in response.json()["entry"]}
    assert versions == {"Observation/obs-p", "Observation/obs-q"}
    assert len(response.json()["entry"]) == 3
    event = _one(engine, start, response, "gp_system")
    assert (event.action, event.content["action"]) == ("history-type", "R")
    assert event.subtypes == {"history-type"}
    assert _kinds(event) == _served(response.json()) == {"p": {"Observation"}, "q": {"Observation"}}
    assert event.query == "Observation/_history?_count=50"
    assert event.entities == set()
    # a page names only the patients of the versions on it: the newest is obs-q's
    start = last_seq(engine)
    page = world.http.get("/fhir/Observation/_history", params={"_count": 1}, headers=gp)
    assert [e["fullUrl"].rsplit("/", 1)[1] for e in page.json()["entry"]] == ["obs-q"]
    event = _one(engine, start, page, "gp_system")
    assert _kinds(event) == {"q": {"Observation"}}
    assert event.query == "Observation/_history?_count=1"


def test_system_history_names_each_patient_whose_versions_it_served(world, engine):
    gp = world.as_("gp_system")
    start = last_seq(engine)
    response = world.http.get("/fhir/_history", params={"_count": 500}, headers=gp)
    assert response.status_code == 200
    assert "next" not in {link["relation"] for link in response.json()["link"]}
    event = _one(engine, start, response, "gp_system")
    assert (event.action, event.content["action"]) == ("history-system", "R")
    every_kind = {"Patient", "Observation", "Condition", "Encounter", "Provenance"}
    assert _kinds(event) == _served(response.json()) == {"p": every_kind, "q": every_kind}
    assert event.query == "_history?_count=500"
    assert event.entities == set()
    # the newest version alone: the Provenance of the last write of the world (enc-q)
    start = last_seq(engine)
    page = world.http.get("/fhir/_history", params={"_count": 1}, headers=gp)
    (entry,) = page.json()["entry"]
    assert entry["resource"]["resourceType"] == "Provenance"
    assert entry["resource"]["target"][0]["reference"] == "Encounter/enc-q/_history/1"
    event = _one(engine, start, page, "gp_system")
    assert _kinds(event) == {"q": {"Provenance"}}
    assert event.query == "_history?_count=1"


def test_a_clinician_s_history_names_only_the_record_it_may_see(world, engine):
    world.relate("active")
    for path, action, kinds in [
        ("/fhir/Observation/_history", "history-type", {"Observation"}),
        (
            "/fhir/_history",
            "history-system",
            {"Patient", "Observation", "Condition", "Encounter", "Provenance"},
        ),
    ]:
        start = last_seq(engine)
        response = world.http.get(path, headers=world.as_("hosp_clinician"))
        assert response.status_code == 200
        served = _served(response.json())
        assert set(served) == {"p"}
        event = _one(engine, start, response, "hosp_clinician")
        assert event.action == action
        assert _kinds(event) == served == {"p": kinds}
        assert event.query == path[len("/fhir/") :]


def test_history_names_the_patient_of_each_version_served(world, engine):
    world.put("gp_system", {**observation("p", 49.0), "id": "obs-q"})  # obs-q moved to p
    start = last_seq(engine)
    response = world.http.get("/fhir/Observation/_history", headers=world.as_("gp_system"))
    subjects = {
        (e["resource"]["id"], e["resource"]["meta"]["versionId"]): e["resource"]["subject"][
            "reference"
        ]
        for e in response.json()["entry"]
    }
    assert subjects[("obs-q", "1")] == "Patient/q"  # q's version was served
    event = _one(engine, start, response, "gp_system")
    assert event.patients == {"p", "q"}


# --- 3. conditional create, update, delete -----------------------------------------------------


def test_conditional_create_records_the_version_it_wrote(world, engine):
    start = last_seq(engine)
    response = world.post(
        "gp_system", _identified("p", "new"), **{"If-None-Exist": f"identifier={IDS}|new"}
    )
    assert response.status_code == 201, response.text
    event = _one(engine, start, response, "gp_system")
    assert (event.action, event.content["action"]) == ("create", "C")
    assert _written(world, event) == {f"Observation/{response.json()['id']}/_history/1"}
    assert _kinds(event) == {"p": {"Observation", "Provenance"}}
    assert event.query == f"Observation?identifier={IDS}|new"  # the criteria, as a search's


def test_conditional_create_finding_a_match_writes_nothing_and_names_the_patient(world, engine):
    world.put("gp_system", {**_identified("p", "k"), "id": "obs-k"})
    start = last_seq(engine)
    response = world.post(
        "gp_system", _identified("p", "k", 60.0), **{"If-None-Exist": f"identifier={IDS}|k"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "obs-k"  # the existing resource is served
    event = _one(engine, start, response, "gp_system")
    assert _versions_of(world, "Observation/obs-k") == 1
    assert (event.action, event.content["action"]) == ("create", "C")
    assert _kinds(event) == {"p": {"Observation"}}  # no Provenance: nothing written
    assert not any("/_history/" in e for e in event.entities)
    assert event.query == f"Observation?identifier={IDS}|k"


def test_conditional_create_finding_a_match_records_the_resource_served(world, engine):
    world.put("gp_system", {**_identified("p", "k"), "id": "obs-k"})
    start = last_seq(engine)
    response = world.post(
        "gp_system", _identified("p", "k"), **{"If-None-Exist": f"identifier={IDS}|k"}
    )
    assert response.status_code == 200, response.text
    event = _one(engine, start, response, "gp_system")
    assert "Observation/obs-k" in event.entities


def test_conditional_update_records_the_version_it_wrote(world, engine):
    world.put("gp_system", {**_identified("p", "k"), "id": "obs-k"})
    gp = world.as_("gp_system")
    start = last_seq(engine)
    response = world.http.put(
        "/fhir/Observation",
        params={"identifier": f"{IDS}|k"},
        json=_identified("p", "k", 55.0),
        headers=gp,
    )
    assert response.status_code == 200, response.text
    event = _one(engine, start, response, "gp_system")
    assert (event.action, event.content["action"]) == ("update", "U")
    assert _written(world, event) == {"Observation/obs-k/_history/2"}
    assert _kinds(event) == {"p": {"Observation", "Provenance"}}
    assert event.query == "Observation?" + urlencode({"identifier": f"{IDS}|k"})
    # no match: the update creates, and records the version it created
    start = last_seq(engine)
    response = world.http.put(
        "/fhir/Observation",
        params={"identifier": f"{IDS}|fresh"},
        json=_identified("q", "fresh"),
        headers=gp,
    )
    assert response.status_code == 201, response.text
    event = _one(engine, start, response, "gp_system")
    assert event.action == "update"
    assert _written(world, event) == {f"Observation/{response.json()['id']}/_history/1"}
    assert _kinds(event) == {"q": {"Observation", "Provenance"}}


def test_conditional_delete_records_the_deletion_version(world, engine):
    world.put("gp_system", {**_identified("p", "k"), "id": "obs-k"})
    gp = world.as_("gp_system")
    start = last_seq(engine)
    response = world.http.delete("/fhir/Observation", params={"identifier": f"{IDS}|k"}, headers=gp)
    assert response.status_code == 204, response.text
    assert response.headers["etag"] == 'W/"2"'
    event = _one(engine, start, response, "gp_system")
    assert (event.action, event.content["action"]) == ("delete", "D")
    assert _written(world, event) == {"Observation/obs-k/_history/2"}
    assert _kinds(event) == {"p": {"Observation", "Provenance"}}
    # nothing matches: nothing deleted, no entity, no patient
    start = last_seq(engine)
    response = world.http.delete("/fhir/Observation", params={"identifier": f"{IDS}|k"}, headers=gp)
    assert response.status_code == 204 and "etag" not in response.headers
    event = _one(engine, start, response, "gp_system")
    assert event.action == "delete"
    assert (event.entities, event.patients) == (set(), set())
    # what it looked for is recorded, as a search's query
    assert event.query == "Observation?" + urlencode({"identifier": f"{IDS}|k"})


@pytest.mark.parametrize(
    ("method", "action", "diagnostics"),
    [
        ("create", "create", "If-None-Exist matched 2 resources"),
        ("update", "update", "The conditional update matched 2 resources"),
        ("delete", "delete", "The conditional delete matched 2 resources"),
    ],
)
def test_a_conditional_write_matching_two_resources_names_neither(
    world, engine, method, action, diagnostics
):
    """412: the matches (one of p, one of q) were read to count them, but nothing of theirs
    was served or written, so neither patient is named."""
    world.put("gp_system", {**_identified("p", "twice"), "id": "obs-twice-p"})
    world.put("gp_system", {**_identified("q", "twice"), "id": "obs-twice-q"})
    gp, criteria = world.as_("gp_system"), f"identifier={IDS}|twice"
    start = last_seq(engine)
    if method == "create":
        response = world.post("gp_system", _identified("p", "twice"), **{"If-None-Exist": criteria})
    elif method == "update":
        response = world.http.put(
            f"/fhir/Observation?{criteria}", json=_identified("p", "twice"), headers=gp
        )
    else:
        response = world.http.delete(f"/fhir/Observation?{criteria}", headers=gp)
    assert response.status_code == 412, response.text
    event = _one(engine, start, response, "gp_system", outcome="4")
    assert event.action == action
    assert diagnostics in event.content["outcomeDesc"]
    assert (event.patients, event.entities) == (set(), set())
    assert event.query == f"Observation?{criteria}"
    for rid in ("obs-twice-p", "obs-twice-q"):
        assert _versions_of(world, f"Observation/{rid}") == 1


# --- 4. _include and _revinclude --------------------------------------------------------------


def _panel(world: World) -> None:
    """An Observation panel in p's record whose member is q's Observation."""
    panel = {
        **observation("p", 1.0),
        "id": "panel-p",
        "hasMember": [{"reference": "Observation/obs-q"}],
    }
    world.put("gp_system", panel)


def test_include_names_the_patients_of_the_included_resources(world, engine):
    start = last_seq(engine)
    response = world.http.get(
        "/fhir/Encounter", params={"_include": "Encounter:subject"}, headers=world.as_("gp_system")
    )
    assert response.status_code == 200
    modes = sorted(
        (e["search"]["mode"], e["resource"]["resourceType"]) for e in response.json()["entry"]
    )
    assert modes == [("include", "Patient")] * 2 + [("match", "Encounter")] * 2
    event = _one(engine, start, response, "gp_system")
    assert (event.action, event.content["action"]) == ("search-type", "E")
    served = {"p": {"Encounter", "Patient"}, "q": {"Encounter", "Patient"}}
    assert _kinds(event) == _served(response.json()) == served
    assert event.query == "Encounter?_include=Encounter%3Asubject"
    assert event.entities == set()


def test_an_included_resource_of_another_patient_names_that_patient(world, engine):
    """p's panel matches; the member it includes is q's: q is named for it."""
    _panel(world)
    start = last_seq(engine)
    response = world.http.get(
        "/fhir/Observation",
        params={"_id": "panel-p", "_include": "Observation:has-member"},
        headers=world.as_("gp_system"),
    )
    assert response.status_code == 200
    entries = [(e["search"]["mode"], e["resource"]["id"]) for e in response.json()["entry"]]
    assert entries == [("match", "panel-p"), ("include", "obs-q")]
    event = _one(engine, start, response, "gp_system")
    assert _kinds(event) == {"p": {"Observation"}, "q": {"Observation"}}
    assert event.query == "Observation?_id=panel-p&_include=Observation%3Ahas-member"


def test_an_include_the_requester_may_not_see_is_neither_served_nor_named(world, engine):
    _panel(world)
    world.relate("active")  # the hospital: p, not q
    start = last_seq(engine)
    response = world.http.get(
        "/fhir/Observation",
        params={"_id": "panel-p", "_include": "Observation:has-member"},
        headers=world.as_("hosp_clinician"),
    )
    assert response.status_code == 200
    assert [e["resource"]["id"] for e in response.json()["entry"]] == ["panel-p"]
    event = _one(engine, start, response, "hosp_clinician")
    assert _kinds(event) == {"p": {"Observation"}}


def test_revinclude_names_the_patients_of_the_resources_it_added(world, engine):
    _panel(world)
    gp = world.as_("gp_system")
    start = last_seq(engine)
    response = world.http.get(
        "/fhir/Patient", params={"_revinclude": "Observation:subject"}, headers=gp
    )
    assert response.status_code == 200
    event = _one(engine, start, response, "gp_system")
    assert event.action == "search-type"
    served = {"p": {"Patient", "Observation"}, "q": {"Patient", "Observation"}}
    assert _kinds(event) == _served(response.json()) == served
    assert event.query == "Patient?_revinclude=Observation%3Asubject"
    # q's Observation matches; the panel that names it as a member is p's
    start = last_seq(engine)
    response = world.http.get(
        "/fhir/Observation",
        params={"_id": "obs-q", "_revinclude": "Observation:has-member"},
        headers=gp,
    )
    entries = [(e["search"]["mode"], e["resource"]["id"]) for e in response.json()["entry"]]
    assert entries == [("match", "obs-q"), ("include", "panel-p")]
    event = _one(engine, start, response, "gp_system")
    assert _kinds(event) == {"p": {"Observation"}, "q": {"Observation"}}


# --- 5. refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "action", "query"),
    [
        ("/fhir/Observation/_history", {}, "history-type", "Observation/_history"),
        (
            "/fhir/Observation",
            {"_include": "Observation:subject"},
            "search-type",
            "Observation?_include=Observation%3Asubject",
        ),
        (
            "/fhir/Patient",
            {"_revinclude": "Observation:subject"},
            "search-type",
            "Patient?_revinclude=Observation%3Asubject",
        ),
    ],
)
def test_a_refused_history_or_include_search_names_no_one(
    world, engine, path, params, action, query
):
    start = last_seq(engine)
    response = world.http.get(path, params=params, headers=world.as_("reviewer"))
    assert response.status_code == 403, response.text
    event = _one(engine, start, response, "reviewer", outcome="4")
    assert event.action == action
    assert "The reviewer role may not search" in event.content["outcomeDesc"]
    assert (event.patients, event.entities) == (set(), set())
    assert event.query == query


def test_a_system_history_refused_by_the_token_s_scopes_names_no_one(world, engine):
    token = world.token_for("clinician", org="OTH04", fhir_user="Practitioner/o1", scope="openid")
    start = last_seq(engine)
    response = world.http.get("/fhir/_history", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403, response.text
    event = _one(engine, start, response, "other_clinician", outcome="4")
    assert event.action == "history-system"
    assert (event.patients, event.entities, event.query) == (set(), set(), "_history")


def test_history_and_includes_without_a_relationship_serve_and_name_no_one(world, engine):
    """Not refused, but nothing of anyone's record is served, and no one is named."""
    for path, params in [
        ("/fhir/Observation/_history", {}),
        ("/fhir/_history", {}),
        ("/fhir/Encounter", {"_include": "Encounter:subject"}),
        ("/fhir/Patient", {"_revinclude": "Observation:subject"}),
    ]:
        start = last_seq(engine)
        response = world.http.get(path, params=params, headers=world.as_("other_clinician"))
        assert response.status_code == 200
        assert _served(response.json()) == {}
        event = _one(engine, start, response, "other_clinician")
        assert event.patients == set()


def test_refused_conditional_writes_name_no_one(world, engine):
    """Without a relationship: a conditional update (it finds nothing, so it would create), a
    conditional create; with one to p, an update that would move p's Observation into q's
    record (the match was read, then refused): no patient is named, nothing is written."""
    world.put("gp_system", {**_identified("p", "k"), "id": "obs-k"})
    other = world.as_("other_clinician")
    start = last_seq(engine)
    response = world.http.put(
        "/fhir/Observation",
        params={"identifier": f"{IDS}|k"},
        json=_identified("p", "k"),
        headers=other,
    )
    assert response.status_code == 403, response.text
    event = _one(engine, start, response, "other_clinician", outcome="4")
    assert event.action == "update" and "No care relationship" in event.content["outcomeDesc"]
    assert (event.patients, event.entities) == (set(), set())

    start = last_seq(engine)
    response = world.post(
        "other_clinician", _identified("p", "k"), **{"If-None-Exist": f"identifier={IDS}|k"}
    )
    assert response.status_code == 403, response.text
    event = _one(engine, start, response, "other_clinician", outcome="4")
    assert event.action == "create"
    assert (event.patients, event.entities) == (set(), set())

    world.relate("active")
    start = last_seq(engine)
    response = world.http.put(
        "/fhir/Observation",
        params={"identifier": f"{IDS}|k"},
        json=_identified("q", "k"),
        headers=world.as_("hosp_clinician"),
    )
    assert response.status_code == 403, response.text
    event = _one(engine, start, response, "hosp_clinician", outcome="4")
    assert event.action == "update"
    assert event.patients == set()
    assert event.entities == {"Observation/obs-k"}  # the resource the condition found
    assert _versions_of(world, "Observation/obs-k") == 1


def test_a_refused_conditional_delete_names_no_one_and_deletes_nothing(world, engine):
    """The hospital may see the GP's Observation of p but not delete it."""
    world.put("gp_system", {**_identified("p", "k"), "id": "obs-k"})
    world.relate("active")
    start = last_seq(engine)
    response = world.http.delete(
        "/fhir/Observation",
        params={"identifier": f"{IDS}|k"},
        headers=world.as_("hosp_clinician"),
    )
    assert response.status_code == 403, response.text
    event = _one(engine, start, response, "hosp_clinician", outcome="4")
    assert event.action == "delete"
    assert "Only the organisation that recorded" in event.content["outcomeDesc"]
    assert event.patients == set()
    assert _versions_of(world, "Observation/obs-k") == 1


@pytest.mark.parametrize("form", ["plain", "conditional", "transaction"])
def test_a_refused_delete_records_no_version_that_was_never_written(world, engine, form):
    world.put("gp_system", {**_identified("p", "k"), "id": "obs-k"})
    world.relate("active")
    hosp = world.as_("hosp_clinician")
    start = last_seq(engine)
    if form == "plain":
        response = world.http.delete("/fhir/Observation/obs-k", headers=hosp)
    elif form == "conditional":
        response = world.http.delete(f"/fhir/Observation?identifier={IDS}|k", headers=hosp)
    else:
        delete = {"request": {"method": "DELETE", "url": "Observation/obs-k"}}
        response = world.http.post("/fhir", json=_batch(delete, kind="transaction"), headers=hosp)
    assert response.status_code == 403, response.text
    event = _one(engine, start, response, "hosp_clinician", outcome="4")
    assert _versions_of(world, "Observation/obs-k") == 1
    assert "Observation/obs-k/_history/2" not in event.entities


@pytest.mark.parametrize(
    ("who", "status"), [(None, 401), ("scopeless", 403)], ids=["no-token", "no-scopes"]
)
def test_a_refused_batch_names_no_one(world, engine, who, status):
    headers = {}
    if who == "scopeless":
        token = world.token_for(
            "clinician", org="OTH04", fhir_user="Practitioner/o1", scope="openid"
        )
        headers = {"Authorization": f"Bearer {token}"}
    start = last_seq(engine)
    response = world.http.post(
        "/fhir",
        json=_batch(_get("Observation/obs-p"), _get("Observation?code=59261-8")),
        headers=headers,
    )
    assert response.status_code == status, response.text
    found = events(engine, start)
    assert len(found) == 1
    (event,) = found
    assert event.request_id == response.headers["x-request-id"]
    assert event.outcome == "4" and event.content["action"] == "E"
    if who is None:
        assert (event.agent_role, event.agent_who, event.agent_org) == (None, None, None)
    else:
        assert (event.agent_role, event.agent_who, event.agent_org, event.client_id) == AGENTS[
            "other_clinician"
        ]
    assert (event.patients, event.entities, event.query) == (set(), set(), None)
