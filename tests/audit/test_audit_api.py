"""AuditEvent as a FHIR type (who sees which events), the patient's access log and the privacy
officer's review queue, over HTTP on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from register.audit.chain import verify
from register.db import read_transaction
from tests.access.world import BREAK_GLASS_REASON, NHS, NHS_NUMBERS, World, bearer, encounter
from tests.audit.helpers import events, review_rows

GLASS = {"X-Break-Glass-Reason": BREAK_GLASS_REASON}


@pytest.fixture
def world(world: World, token_for) -> World:  # type: ignore[no-untyped-def]
    """The audit tests' world (its log verified afterwards) and a privacy officer."""
    world.tokens["privacy"] = token_for(
        "privacy_officer", org=None, fhir_user="Practitioner/po1", subject="po-1"
    )
    return world


def _ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def _search(world: World, who: str, **params: str) -> dict:
    response = world.http.get("/fhir/AuditEvent", params=params, headers=world.as_(who))
    assert response.status_code == 200, response.text
    return response.json()


def test_who_sees_which_events(world, engine):
    world.relate("active")
    world.http.get("/fhir/Patient/p", headers=world.as_("hosp_clinician"))
    world.http.get("/fhir/Patient/p", headers=world.as_("other_clinician"))  # 404, still audited
    # a search that finds nobody names no patient row, but its query holds an NHS number
    world.http.get(
        "/fhir/Patient",
        params={"identifier": f"{NHS}|{NHS_NUMBERS['p']}"},
        headers=world.as_("other_clinician"),
    )
    recorded = events(engine)
    last = recorded[-1].seq

    def seen_by(who: str) -> set[str]:
        found = set(_ids(_search(world, who, _count="1000")))
        return found - {e.content["id"] for e in events(engine) if e.seq > last}

    def ids(keep) -> set[str]:  # type: ignore[no-untyped-def]
        return {e.content["id"] for e in recorded if keep(e)}

    assert seen_by("privacy") == ids(lambda e: True)
    assert seen_by("admin") == ids(lambda e: True)
    assert seen_by("hosp_clinician") == ids(lambda e: e.agent_org == "HOS03")
    assert seen_by("other_clinician") == ids(lambda e: e.agent_org == "OTH04")
    assert seen_by("reviewer") == ids(lambda e: not e.patients)
    assert ids(lambda e: not e.patients) != ids(lambda e: True)
    # ... and de-identified: those events name patient p (the refused read, the query), but
    # what the reviewer is served names no patient and no person
    unnamed = [e for e in recorded if not e.patients]
    assert any("Patient/p" in str(e.content) for e in unnamed)
    assert any(NHS_NUMBERS["p"] in (e.query or "") for e in unnamed)
    served = world.http.get(
        "/fhir/AuditEvent", params={"_count": "1000"}, headers=world.as_("reviewer")
    )
    for identity in ("Patient/", NHS_NUMBERS["p"], "Practitioner/", "dr-", "query", "10.0."):
        assert identity not in served.text
    for entry in served.json()["entry"]:
        assert entry["resource"]["meta"]["security"][0]["code"] == "REDACTED"
        by_id = world.http.get(
            f"/fhir/AuditEvent/{entry['resource']['id']}", headers=world.as_("reviewer")
        )
        assert by_id.json() == entry["resource"]
    # ... and cannot be searched by whom they concern or who acted
    for name, value in (("patient", "p"), ("entity", "Patient/p"), ("agent", "Practitioner/h1")):
        refused = world.http.get(
            "/fhir/AuditEvent", params={name: value}, headers=world.as_("reviewer")
        )
        assert refused.status_code == 403
        assert refused.json()["issue"][0]["expression"] == [name]
    # a patient's token gets nothing through AuditEvent (the access log is theirs)
    response = world.http.get("/fhir/AuditEvent", headers=world.as_("patient_p"))
    assert response.status_code == 200 and _ids(response.json()) == []


def test_read_by_id_follows_the_same_sight(world, engine):
    world.http.get("/fhir/Patient/p", headers=world.as_("gp_system"))
    event = [e for e in events(engine) if e.agent_org == "GP001"][-1]
    event_id = event.content["id"]
    ok = world.http.get(f"/fhir/AuditEvent/{event_id}", headers=world.as_("privacy"))
    assert ok.status_code == 200 and ok.json() == event.content
    assert (
        world.http.get(f"/fhir/AuditEvent/{event_id}", headers=world.as_("gp_system")).status_code
        == 200
    )
    for who in ("hosp_clinician", "reviewer"):
        hidden = world.http.get(f"/fhir/AuditEvent/{event_id}", headers=world.as_(who))
        assert hidden.status_code == 404
        assert hidden.json()["resourceType"] == "OperationOutcome"


def test_search_parameters(world, engine):
    world.relate("active")
    world.http.get("/fhir/Observation/obs-q", headers=world.as_("gp_system"))
    world.http.get("/fhir/Observation/obs-p", headers=world.as_("hosp_clinician"))
    recorded = events(engine)

    def expect(params: dict, keep) -> None:
        wanted = {e.content["id"] for e in recorded if keep(e)}
        found = set(_ids(_search(world, "privacy", _count="1000", **params)))
        found -= {e.content["id"] for e in events(engine) if e.seq > recorded[-1].seq}
        assert found == wanted, params

    expect({"patient": "Patient/q"}, lambda e: "q" in e.patients)
    expect({"patient": "p"}, lambda e: "p" in e.patients)
    expect({"entity": "Observation/obs-p"}, lambda e: "Observation/obs-p" in e.entities)
    expect({"agent": "Practitioner/h1"}, lambda e: e.agent_who == "Practitioner/h1")
    expect({"subtype": "read"}, lambda e: e.action == "read")
    expect({"outcome": "4"}, lambda e: e.outcome == "4")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    expect({"date": f"lt{tomorrow}"}, lambda e: True)
    expect({"date": f"ge{tomorrow}"}, lambda e: False)
    posted = world.http.post(
        "/fhir/AuditEvent/_search", data={"patient": "Patient/q"}, headers=world.as_("privacy")
    )
    assert posted.status_code == 200
    assert {e["resource"]["id"] for e in posted.json()["entry"]} >= {
        e.content["id"] for e in recorded if "q" in e.patients
    }
    bad = world.http.get("/fhir/AuditEvent", params={"color": "x"}, headers=world.as_("privacy"))
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"


def test_search_pages_newest_first(world, engine):
    for _ in range(5):
        world.http.get("/fhir/Patient/p", headers=world.as_("gp_system"))
    recorded = [e.content["id"] for e in events(engine) if e.agent_org == "GP001"]
    seen: list[str] = []
    page = _search(world, "gp_system", _count="4")
    while True:
        seen += _ids(page)
        following = [link["url"] for link in page.get("link", []) if link["relation"] == "next"]
        if not following:
            break
        page = world.http.get(following[0], headers=world.as_("gp_system")).json()
    # each search is itself audited (GP001's): only those older than the first page are certain
    assert [i for i in seen if i in recorded] == list(reversed(recorded))


# --- who looked at my record ---------------------------------------------------------------


def test_patient_sees_the_hospitals_access_after_an_attendance_and_break_glass(world, engine):
    http = world.http
    world.put(
        "gp_system",
        {"resourceType": "Practitioner", "id": "h1", "name": [{"prefix": ["Dr"], "given": ["Amy"],
                                                               "family": "Okafor"}]},
    )  # fmt: skip
    world.put(
        "gp_system",
        {"resourceType": "Organization", "id": "hosp",
         "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                         "value": "HOS03"}], "name": "Royal Infirmary"},
    )  # fmt: skip
    # the patient's own look, and the register's own work, are left out
    assert http.get("/fhir/Patient/p", headers=world.as_("patient_p")).status_code == 200
    # the hospital records the attendance and looks at the record
    assert world.post("hosp_system", encounter("p", "hosp", by_nhs_number=True)).status_code == 201
    assert (
        http.get("/fhir/Observation/obs-p", headers=world.as_("hosp_clinician")).status_code == 200
    )
    # another clinician breaks the glass for q
    assert (
        http.get(
            "/fhir/Condition/cond-q", headers=world.as_("other_clinician", **GLASS)
        ).status_code
        == 200
    )
    log = http.get("/fhir/Patient/p/$access-log", headers=world.as_("patient_p"))
    assert log.status_code == 200, log.text
    entries = log.json()["entries"]
    assert entries, log.json()
    newest = entries[0]
    assert newest["who"]["name"] == "Dr Amy Okafor"
    assert newest["who"]["role"] == "clinician"
    assert newest["who"]["organisation"] == "Royal Infirmary"
    assert newest["data_kinds"] == ["Observation"]
    assert "Dr Amy Okafor (clinician, Royal Infirmary) looked at test results" in newest["text"]
    assert all(e["who"]["reference"] != "Patient/p" for e in entries)
    assert all(e["who"]["role"] != "operator" for e in entries)
    whens = [e["when"] for e in entries]
    assert whens == sorted(whens, reverse=True)
    # q's log has the break-glass start and read, with the reason, and nothing of p's
    q_log = http.get("/fhir/Patient/q/$access-log", headers=world.as_("patient_q")).json()
    glass = [e for e in q_log["entries"] if e["break_glass"]]
    assert {e["action"] for e in glass} == {"break-glass", "read"}
    assert all(e["break_glass_reason"] == BREAK_GLASS_REASON for e in glass)
    assert all(BREAK_GLASS_REASON in e["text"] for e in glass)
    assert all(e["purpose"] == "BTG" for e in glass)
    assert glass[0]["who"]["organisation_code"] == "OTH04"


def test_access_log_pages_and_who_may_read_it(world, engine):
    http = world.http
    for _ in range(5):
        http.get("/fhir/Patient/q", headers=world.as_("gp_system"))
    everything = http.get(
        "/fhir/Patient/q/$access-log", params={"_count": "100"}, headers=world.as_("patient_q")
    ).json()["entries"]
    paged: list[str] = []
    url = "/fhir/Patient/q/$access-log?_count=2"
    while url:
        page = http.get(url, headers=world.as_("patient_q")).json()
        paged += [e["id"] for e in page["entries"]]
        url = page.get("next")
    assert paged == [e["id"] for e in everything]
    assert len(paged) >= 5
    assert (
        http.get("/fhir/Patient/q/$access-log", headers=world.as_("patient_p")).status_code == 403
    )
    for who in ("hosp_clinician", "gp_system", "reviewer", "privacy", "admin"):
        assert http.get("/fhir/Patient/q/$access-log", headers=world.as_(who)).status_code == 403
    assert http.get("/fhir/Patient/q/$access-log").status_code == 401


# --- the privacy officer's review queue --------------------------------------------------------


def test_review_queue_lists_marks_and_audits_reviews(world, engine):
    http = world.http
    assert (
        http.get("/fhir/Patient/q", headers=world.as_("hosp_clinician", **GLASS)).status_code == 200
    )
    queue = http.get("/fhir/AuditEvent/$review-queue", headers=world.as_("privacy"))
    assert queue.status_code == 200, queue.text
    (item,) = queue.json()["items"]
    assert (item["category"], item["patient_id"], item["reason"]) == (
        "break-glass",
        "q",
        BREAK_GLASS_REASON,
    )
    assert (item["agent_who"], item["agent_org"], item["status"]) == (
        "Practitioner/h1",
        "HOS03",
        "open",
    )
    for who in ("hosp_clinician", "admin", "reviewer", "patient_q"):
        refused = http.get("/fhir/AuditEvent/$review-queue", headers=world.as_(who))
        assert refused.status_code == 403
    mark = f"/fhir/AuditEvent/{item['id']}/$review"
    assert (
        http.post(
            mark, json={"verdict": "fine", "note": "x"}, headers=world.as_("privacy")
        ).status_code
        == 400
    )
    assert (
        http.post(
            mark, json={"verdict": "appropriate", "note": "x"}, headers=world.as_("hosp_clinician")
        ).status_code
        == 403
    )
    done = http.post(
        mark, json={"verdict": "appropriate", "note": "ED attendance confirmed"},
        headers=world.as_("privacy"),
    )  # fmt: skip
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["reviewer"]) == ("appropriate", "Practitioner/po1")
    again = http.post(
        mark, json={"verdict": "inappropriate", "note": "x"}, headers=world.as_("privacy")
    )
    assert again.status_code == 409
    assert (
        http.get("/fhir/AuditEvent/$review-queue", headers=world.as_("privacy")).json()["items"]
        == []
    )
    reviewed = http.get(
        "/fhir/AuditEvent/$review-queue",
        params={"status": "reviewed"},
        headers=world.as_("privacy"),
    ).json()["items"]
    assert [r["note"] for r in reviewed] == ["ED attendance confirmed"]
    review = [e for e in events(engine) if e.kind == "review"]
    assert len(review) == 1 and review[0].entities == {f"AuditEvent/{item['id']}"}
    assert review[0].content["outcomeDesc"] == "appropriate"
    with read_transaction(engine) as conn:
        assert verify(conn).intact


def test_review_queue_has_reads_without_a_relationship(world, engine, token_for):
    # a clinician of the GP practice, which recorded the data, has no active relationship (its
    # encounter ended 100 days ago): its reads of p are seen through authorship, and queued
    gp_doctor = token_for("clinician", org="GP001", fhir_user="Practitioner/g1", subject="dr-g1")
    assert world.http.get("/fhir/Observation/obs-p", headers=bearer(gp_doctor)).status_code == 200
    rows = [r for r in review_rows(engine) if r.category == "no-relationship"]
    assert [r.patient_id for r in rows] == ["p"]
    (item,) = world.http.get(
        "/fhir/AuditEvent/$review-queue",
        params={"category": "no-relationship"},
        headers=world.as_("privacy"),
    ).json()["items"]
    assert item["agent_who"] == "Practitioner/g1" and item["action"] == "read"
