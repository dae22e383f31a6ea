"""The patient's access log says why each access happened and leaves out what is not an access
by someone else; the privacy officer's review queue shows each access's outcome and records an
"inappropriate" verdict. Over HTTP on both databases.

What the tests show:

- the access log names, in plain words, the person, role, organisation, time, kinds of data and
  purpose of an ordinary access ("for your care") and of a break-glass access ("in an emergency
  (break-glass)" with the typed reason), and the two read differently;
- it leaves out the patient's own accesses and the register's own work (events with no agent,
  the operator's command line, token issuance), even when those events name the patient, and
  accesses to other patients' records; it is newest first, and paging visits each entry once;
- each review-queue entry shows the outcome of the access it records (granted "0"; a write
  refused "4" or failed "8");
- an entry marked "inappropriate" with a note leaves the open list and appears under
  ``status=reviewed`` with the verdict, note, reviewer and time; a second review is refused 409,
  also when two arrive at once; a bad verdict or an empty note is refused 400 naming the element
  at fault; only a privacy officer may mark entries;
- the review is itself an AuditEvent whose stored bytes carry the verdict and the note and name
  the reviewed event as ``AuditEvent/{id}``.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from auth.principal import OPERATOR, Principal, Role
from auth.scopes import parse_scopes
from fhir_adapters.audit_event import REVIEW_VERDICT
from register.audit import review_queue
from register.audit.chain import verify
from register.audit.events import rest_event, token_event
from register.audit.recorder import append_events
from register.audit.trail import Trail
from register.db import read_transaction, write_transaction
from tests.access.world import BREAK_GLASS_REASON, ODS, World
from tests.audit.helpers import events

GLASS = {"X-Break-Glass-Reason": BREAK_GLASS_REASON}
NOTE = "No attendance at the Royal Infirmary that day; referred to the Caldicott Guardian"


@pytest.fixture
def world(bare_client, token_for, engine) -> Iterator[World]:
    """The shared test world, a privacy officer and a GP clinician with no care relationship
    with anyone; afterwards, whatever the test did, the whole audit log must verify."""
    built = World(bare_client, token_for).build()
    built.tokens["privacy"] = token_for(
        "privacy_officer", org=None, fhir_user="Practitioner/po1", subject="po-1"
    )
    built.tokens["gp_clinician"] = token_for(
        "clinician", org="GP001", fhir_user="Practitioner/g1", subject="dr-g1"
    )
    yield built
    with read_transaction(engine) as conn:
        report = verify(conn)
    assert report.intact, report.problems


# --- helpers -----------------------------------------------------------------------------------


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response


def _log(world: World, patient: str, **params: str) -> dict[str, Any]:
    """One page of ``patient``'s access log, read with their own token."""
    response = world.http.get(
        f"/fhir/Patient/{patient}/$access-log",
        params=params,
        headers=world.as_(f"patient_{patient}"),
    )
    return _ok(response).json()


def _logged_ids(world: World, patient: str) -> list[str]:
    return [entry["id"] for entry in _log(world, patient, _count="1000")["entries"]]


def _queue(world: World, **params: str) -> list[dict[str, Any]]:
    response = world.http.get(
        "/fhir/AuditEvent/$review-queue", params=params, headers=world.as_("privacy")
    )
    return _ok(response).json()["items"]


def _review(world: World, event_id: str, body: Any, who: str = "privacy") -> Any:
    return world.http.post(
        f"/fhir/AuditEvent/{event_id}/$review", json=body, headers=world.as_(who)
    )


def _review_events(world: World, event_id: str) -> list[dict[str, Any]]:
    """The review events naming ``AuditEvent/{event_id}``, found as the privacy officer."""
    response = world.http.get(
        "/fhir/AuditEvent",
        params={"entity": f"AuditEvent/{event_id}", "subtype": "review"},
        headers=world.as_("privacy"),
    )
    return [entry["resource"] for entry in _ok(response).json().get("entry", [])]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _in_words(moment: datetime) -> str:
    """A time as the access log words it: ``3 December 2026 at 17:36 UTC``."""
    return f"{moment.day} {moment:%B %Y} at {moment:%H:%M} UTC"


def _name_the_people(world: World) -> None:
    """Practitioner and Organization resources the access log resolves names from."""
    world.put(
        "gp_system",
        {"resourceType": "Practitioner", "id": "h1",
         "name": [{"prefix": ["Dr"], "given": ["Amy"], "family": "Okafor"}]},
    )  # fmt: skip
    world.put(
        "gp_system",
        {"resourceType": "Practitioner", "id": "o1", "name": [{"text": "Dr Olu Bello"}]},
    )
    for rid, code, name in (("hosp", "HOS03", "Royal Infirmary"), ("other", "OTH04", "Riverside")):
        world.put(
            "gp_system",
            {"resourceType": "Organization", "id": rid,
             "identifier": [{"system": ODS, "value": code}], "name": name},
        )  # fmt: skip


def _only(engine: Any, keep: Any) -> Any:
    (found,) = [e for e in events(engine) if keep(e)]
    return found


HOSPITAL_EHR = Principal(
    role=Role.CLINICIAN,
    subject="dr-h1",
    client_id="hospital-ehr",
    scopes=parse_scopes("user/*.rs"),
    fhir_user="Practitioner/h1",
    organisation="HOS03",
)


def _record_internal_work(engine: Any, patient: str) -> set[str]:
    """Append, as the register itself would, events of its own work that name ``patient``: a
    read by the operator's command line, a read with no agent at all (a background job), and a
    token issuance (a kind of event the log does not show) naming the patient. Each would be
    shown but for one rule of the access log. Their ids.

    Appended directly: no HTTP path makes such an event name a patient today (the loader
    records no events; token and client-registration events name nobody), so only events
    made to name one can show that the log's rules, not that accident, keep them out."""

    def served() -> Trail:
        trail = Trail()
        trail.served("Observation", patient)
        trail.read = [f"Observation/obs-{patient}"]
        return trail

    def read_by(principal: Principal | None) -> Any:
        return rest_event(
            interaction="read",
            status=200,
            principal=principal,
            break_glass=None,
            trail=served(),
            target=f"Observation/obs-{patient}",
            query=None,
            request_id=None,
            address=None,
        )

    token = token_event(
        principal=HOSPITAL_EHR,
        client_id="hospital-ehr",
        grant_type="password",
        error=None,
        request_id=None,
        address=None,
    )
    assert token.facts is not None
    token = replace(token, patients=(patient,), facts=replace(token.facts, patients=(patient,)))
    work = [read_by(OPERATOR), read_by(None), token]
    with write_transaction(engine) as conn:
        append_events(conn, work)
    recorded = {e.content["id"]: e for e in events(engine)}
    assert [(recorded[w.event_id].agent_role, recorded[w.event_id].kind) for w in work] == [
        ("operator", "rest"),
        (None, "rest"),
        ("clinician", "token"),
    ]
    assert all(recorded[w.event_id].patients == {patient} for w in work)
    return {w.event_id for w in work}


# --- who looked at my record -------------------------------------------------------------------


def test_access_log_says_who_when_what_and_why_for_ordinary_and_break_glass_access(world, engine):
    http = world.http
    _name_the_people(world)
    before = datetime.now(UTC)
    world.relate("active")  # the hospital's system records the attendance
    _ok(http.get("/fhir/Observation/obs-p", headers=world.as_("hosp_clinician")))
    _ok(http.get("/fhir/Condition/cond-p", headers=world.as_("other_clinician", **GLASS)))
    after = datetime.now(UTC)
    entries = {entry["id"]: entry for entry in _log(world, "p")["entries"]}

    def entry_of(keep: Any) -> tuple[dict[str, Any], str]:
        event = _only(engine, keep)
        entry = entries[event.content["id"]]
        moment = _instant(entry["when"])
        assert moment == _instant(event.content["recorded"])
        assert before <= moment <= after
        return entry, _in_words(moment)

    hospital = {
        "role": "clinician",
        "organisation": "Royal Infirmary",
        "organisation_code": "HOS03",
    }
    other = {"role": "clinician", "organisation": "Riverside", "organisation_code": "OTH04"}

    # the attendance, recorded by the hospital's system: a write, for the patient's care
    attendance, day = entry_of(lambda e: e.agent_org == "HOS03" and e.action == "create")
    assert attendance["who"] == {
        "name": "test-system-client",
        "role": "system",
        "organisation": "Royal Infirmary",
        "organisation_code": "HOS03",
        "reference": None,
    }
    assert (attendance["action"], attendance["data_kinds"]) == (
        "create",
        ["Encounter", "Provenance"],
    )
    assert (attendance["purpose"], attendance["purpose_text"]) == ("TREAT", "for your care")
    assert attendance["text"] == (
        "test-system-client (computer system, Royal Infirmary) added to visits and appointments "
        f"and record-keeping details on {day}, for your care."
    )

    # an ordinary read by a hospital clinician with a care relationship: why = for your care
    ordinary, day = entry_of(lambda e: e.agent_who == "Practitioner/h1")
    assert ordinary["who"] == {"name": "Dr Amy Okafor", **hospital, "reference": "Practitioner/h1"}
    assert (ordinary["action"], ordinary["data_kinds"]) == ("read", ["Observation"])
    assert (ordinary["purpose"], ordinary["purpose_text"]) == ("TREAT", "for your care")
    assert (ordinary["break_glass"], ordinary["break_glass_reason"]) == (False, None)
    assert ordinary["text"] == (
        f"Dr Amy Okafor (clinician, Royal Infirmary) looked at test results and measurements "
        f"on {day}, for your care."
    )

    # break-glass: the declaration, then the read under it, each with the typed reason
    declared, day = entry_of(lambda e: e.kind == "break-glass")
    assert declared["who"] == {"name": "Dr Olu Bello", **other, "reference": "Practitioner/o1"}
    assert (declared["action"], declared["data_kinds"]) == ("break-glass", [])
    assert (declared["purpose"], declared["purpose_text"]) == (
        "BTG",
        "in an emergency (break-glass)",
    )
    assert (declared["break_glass"], declared["break_glass_reason"]) == (True, BREAK_GLASS_REASON)
    assert declared["text"] == (
        f"Dr Olu Bello (clinician, Riverside) declared emergency access to your record on {day}. "
        f'Reason given: "{BREAK_GLASS_REASON}".'
    )
    glass_read, day = entry_of(lambda e: e.kind == "rest" and e.agent_who == "Practitioner/o1")
    assert (glass_read["action"], glass_read["data_kinds"]) == ("read", ["Condition"])
    assert (glass_read["purpose"], glass_read["purpose_text"]) == (
        "BTG",
        "in an emergency (break-glass)",
    )
    assert (glass_read["break_glass"], glass_read["break_glass_reason"]) == (
        True,
        BREAK_GLASS_REASON,
    )
    assert glass_read["text"] == (
        f"Dr Olu Bello (clinician, Riverside) looked at conditions and diagnoses on {day}, "
        f'in an emergency (break-glass). Reason given: "{BREAK_GLASS_REASON}".'
    )


def test_access_log_leaves_out_the_patients_own_accesses_and_the_registers_own_work(world, engine):
    http = world.http
    _ok(http.get("/fhir/Patient/p", headers=world.as_("patient_p")))
    _ok(http.get("/fhir/Observation/obs-p", headers=world.as_("patient_p")))
    world.relate("active")
    _ok(http.get("/fhir/Observation/obs-p", headers=world.as_("hosp_clinician")))
    internal = _record_internal_work(engine, "p")
    logged = _logged_ids(world, "p")

    recorded = events(engine)
    own = {e.content["id"] for e in recorded if e.agent_who == "Patient/p" and "p" in e.patients}
    assert len(own) == 2
    assert own.isdisjoint(logged)
    assert internal.isdisjoint(logged)
    hospital_read = _only(
        engine, lambda e: e.kind == "rest" and e.agent_who == "Practitioner/h1"
    ).content["id"]
    assert hospital_read in logged
    # everything else that touched p's record is there, newest first: the GP's system wrote it,
    # the hospital's system recorded the attendance, the hospital's clinician read it
    others = [
        e.content["id"]
        for e in reversed(recorded)
        if "p" in e.patients and e.content["id"] not in own | internal
    ]
    assert len(others) == 6
    assert logged == others


def test_access_log_leaves_out_accesses_to_another_patients_record(world, engine):
    http = world.http
    world.relate("active")
    _ok(http.get("/fhir/Observation/obs-p", headers=world.as_("hosp_clinician")))
    _ok(http.get("/fhir/Observation/obs-q", headers=world.as_("gp_system")))
    _ok(http.get("/fhir/Condition/cond-q", headers=world.as_("other_clinician", **GLASS)))
    # a search that returns both patients' data is an access to both records
    _ok(http.get("/fhir/Observation", headers=world.as_("gp_system")))
    p_log, q_log = _logged_ids(world, "p"), _logged_ids(world, "q")

    recorded = events(engine)
    patients_of = {e.content["id"]: e.patients for e in recorded}
    only_q = {i for i, patients in patients_of.items() if patients == {"q"}}
    only_p = {i for i, patients in patients_of.items() if patients == {"p"}}
    assert len(only_q) >= 6 and len(only_p) >= 6  # the GP's writes, and this test's reads
    assert only_q.isdisjoint(p_log)
    assert only_p.isdisjoint(q_log)
    assert all("p" in patients_of[i] for i in p_log)
    assert all("q" in patients_of[i] for i in q_log)
    search = _only(engine, lambda e: e.action == "search-type").content["id"]
    assert search in p_log and search in q_log
    (entry,) = [e for e in _log(world, "p", _count="1000")["entries"] if e["id"] == search]
    assert entry["data_kinds"] == ["Observation"]


@pytest.mark.parametrize("count", [3, 5])
def test_access_log_is_newest_first_and_paging_visits_every_entry_once(world, engine, count):
    http = world.http
    world.relate("active")
    for _ in range(3):
        _ok(http.get("/fhir/Observation/obs-p", headers=world.as_("hosp_clinician")))
    for _ in range(2):
        _ok(http.get("/fhir/Patient/p", headers=world.as_("gp_system")))
    newest_first = [
        e.content["id"] for e in reversed(events(engine)) if "p" in e.patients
    ]  # nobody's own accesses, nor the register's work, here
    assert len(newest_first) == 10

    everything = _log(world, "p", _count="100")
    assert [e["id"] for e in everything["entries"]] == newest_first
    assert "next" not in everything
    whens = [_instant(e["when"]) for e in everything["entries"]]
    assert whens == sorted(whens, reverse=True)

    pages: list[list[str]] = []
    page = _log(world, "p", _count=str(count))
    while True:
        pages.append([e["id"] for e in page["entries"]])
        if "next" not in page:
            break
        page = _ok(http.get(page["next"], headers=world.as_("patient_p"))).json()
    assert [len(p) for p in pages[:-1]] == [count] * (len(pages) - 1)
    assert 1 <= len(pages[-1]) <= count  # no empty last page, even when count divides 10
    assert len(pages) == -(-len(newest_first) // count)
    visited = [i for p in pages for i in p]
    assert visited == newest_first
    assert len(set(visited)) == len(visited)


# --- the privacy officer's review queue --------------------------------------------------------


HOSPITAL_SYSTEM = Principal(
    role=Role.SYSTEM,
    subject="hospital-pas",
    client_id="hospital-pas",
    scopes=parse_scopes("system/*.cruds"),
    organisation="HOS03",
)


def _queue_failed_writes(engine: Any, patient: str) -> set[str]:
    """Append two queued writes that did not succeed: the hospital's system recording an
    attendance for ``patient`` without a care relationship, in a transaction refused 412 (a
    stale If-Match) and in one that failed 500. Their ids.

    Appended directly, as the register records a failed request (``rest_event`` with the
    refusal's status): before 911e1f7 such a transaction was queued with outcome 4 over HTTP;
    since then a rolled-back write forgets its alert, so only granted accesses reach the queue
    that way. The queue must still show the outcome of whatever entry it holds."""
    failed = []
    for status, detail in ((412, "If-Match names version 99"), (500, "OperationalError")):
        trail = Trail()
        trail.outside_relationship = {patient}
        failed.append(
            rest_event(
                interaction="transaction",
                status=status,
                principal=HOSPITAL_SYSTEM,
                break_glass=None,
                trail=trail,
                target=None,
                query=None,
                request_id=None,
                address=None,
                detail=detail,
            )
        )
    with write_transaction(engine) as conn:
        append_events(conn, failed)
    return {e.event_id for e in failed}


def _two_open_entries(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    """A break-glass start (q, by the hospital's clinician) and a read without a care
    relationship (p, by the GP's clinician): the newest two open entries, in that order."""
    http = world.http
    _ok(http.get("/fhir/Patient/q", headers=world.as_("hosp_clinician", **GLASS)))
    _ok(http.get("/fhir/Observation/obs-p", headers=world.as_("gp_clinician")))
    *_, glass, unrelated = _queue(world)
    assert (glass["category"], glass["patient_id"], glass["status"]) == ("break-glass", "q", "open")
    assert (unrelated["category"], unrelated["patient_id"]) == ("no-relationship", "p")
    return glass, unrelated


def test_each_queue_entry_shows_the_outcome_of_the_access_it_records(world, engine):
    world.relate("active")  # the hospital's system self-claims a relationship with p: granted
    _two_open_entries(world)  # a break-glass start and a read without a relationship: granted
    failed = _queue_failed_writes(engine, "p")
    items = _queue(world, status="all")
    assert [(i["category"], i["action"]) for i in items] == [
        ("no-relationship", "create"),
        ("break-glass", "break-glass"),
        ("no-relationship", "read"),
        ("no-relationship", "transaction"),
        ("no-relationship", "transaction"),
    ]
    for item in items:
        served = _ok(
            world.http.get(f"/fhir/AuditEvent/{item['id']}", headers=world.as_("privacy"))
        ).json()
        assert item["outcome"] == served["outcome"], item
    assert [i["outcome"] for i in items] == ["0", "0", "0", "4", "8"]
    assert {i["id"] for i in items[3:]} == failed
    # the failed writes served nothing: no patient's data, only the alert names p
    assert [(i["patient_id"], i["patients"]) for i in items[3:]] == [("p", []), ("p", [])]


def test_marking_an_entry_inappropriate_moves_it_to_reviewed_with_verdict_note_reviewer_and_time(
    world, engine
):
    glass, unrelated = _two_open_entries(world)
    # nobody but a privacy officer marks entries; bad verdicts and empty notes are refused
    for who in ("hosp_clinician", "reviewer", "patient_q", "admin"):
        refused = _review(world, glass["id"], {"verdict": "inappropriate", "note": NOTE}, who)
        assert refused.status_code == 403, who
        assert refused.json()["resourceType"] == "OperationOutcome"
    for body in (
        {"verdict": "fine", "note": NOTE},
        {"verdict": "Inappropriate", "note": NOTE},
        {"verdict": "inappropriate", "note": ""},
        {"verdict": "inappropriate", "note": "   "},
    ):
        refused = _review(world, glass["id"], body)
        assert refused.status_code == 400, body
        assert refused.json()["resourceType"] == "OperationOutcome"
    assert [i["id"] for i in _queue(world)] == [glass["id"], unrelated["id"]]
    assert _queue(world, status="reviewed") == []
    assert _review_events(world, glass["id"]) == []

    before = datetime.now(UTC)
    done = _review(world, glass["id"], {"verdict": "inappropriate", "note": NOTE})
    after = datetime.now(UTC)
    marked = _ok(done).json()
    assert (marked["id"], marked["category"], marked["patient_id"]) == (
        glass["id"],
        "break-glass",
        "q",
    )
    assert (marked["status"], marked["note"], marked["reviewer"]) == (
        "inappropriate",
        NOTE,
        "Practitioner/po1",
    )
    assert before <= _instant(marked["reviewed_at"]) <= after

    assert [i["id"] for i in _queue(world)] == [unrelated["id"]]
    assert _queue(world, status="reviewed") == [marked]
    assert [i["id"] for i in _queue(world, status="all")] == [glass["id"], unrelated["id"]]

    again = _review(world, glass["id"], {"verdict": "appropriate", "note": "Second look"})
    assert again.status_code == 409, again.text
    outcome = again.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "already reviewed" in outcome["issue"][0]["diagnostics"]
    assert _queue(world, status="reviewed") == [marked]
    assert len(_review_events(world, glass["id"])) == 1


def test_a_bad_verdict_or_an_empty_note_is_refused_naming_the_element_at_fault(world, engine):
    glass, _ = _two_open_entries(world)
    wrong = []
    for body, element in (
        ({"verdict": "fine", "note": NOTE}, "verdict"),
        ({"verdict": "inappropriate", "note": ""}, "note"),
        ({"verdict": "inappropriate", "note": "   "}, "note"),
        ({"verdict": "inappropriate"}, "note"),
    ):
        refused = _review(world, glass["id"], body)
        assert refused.status_code == 400, body
        issue = refused.json()["issue"][0]
        if issue.get("expression") != [element]:
            wrong.append((body, element, issue))
    assert wrong == []
    assert _queue(world)[0]["id"] == glass["id"]  # still open


def test_a_review_is_an_audit_event_carrying_the_verdict_and_note_and_naming_the_event(
    world, engine
):
    glass, _ = _two_open_entries(world)
    marked = _ok(_review(world, glass["id"], {"verdict": "inappropriate", "note": NOTE})).json()

    (review,) = _review_events(world, glass["id"])
    assert review["extension"] == [
        {
            "url": REVIEW_VERDICT,
            "extension": [
                {"url": "verdict", "valueCode": "inappropriate"},
                {"url": "note", "valueString": NOTE},
            ],
        }
    ]
    named = [e["what"]["reference"] for e in review["entity"] if "reference" in e.get("what", {})]
    assert named == [f"AuditEvent/{glass['id']}"]
    (requestor,) = [a for a in review["agent"] if a["requestor"]]
    assert requestor["who"]["reference"] == "Practitioner/po1"
    assert requestor["role"][0]["coding"][0]["code"] == "privacy_officer"
    assert {c["code"] for c in review["subtype"]} >= {"access-review", "review"}
    assert (review["outcome"], review["outcomeDesc"]) == ("0", "inappropriate")
    assert _instant(review["recorded"]) == _instant(marked["reviewed_at"])
    # what is served is the stored, hash-chained bytes
    stored = _only(engine, lambda e: e.kind == "review")
    assert stored.content == review
    assert stored.entities == {f"AuditEvent/{glass['id']}"}
    by_id = world.http.get(f"/fhir/AuditEvent/{review['id']}", headers=world.as_("privacy"))
    assert _ok(by_id).json() == review


def test_two_reviews_of_one_entry_at_the_same_moment_record_one_verdict(world, engine, monkeypatch):
    """Two privacy officers send their verdicts on one entry at once: both requests find it
    open before either marks it. One verdict is recorded; the other is refused 409."""
    glass, _ = _two_open_entries(world)
    both_looked = threading.Barrier(2)
    looks = itertools.count()
    real_get_item = review_queue.get_item

    def get_item_then_wait(conn: Any, event_id: str) -> Any:
        found = real_get_item(conn, event_id)
        if next(looks) < 2:  # each request's first look waits for the other's (SQLite: the
            with contextlib.suppress(threading.BrokenBarrierError):  # second waits for the
                both_looked.wait(timeout=1)  # write lock instead, and the wait times out)
        return found

    monkeypatch.setattr(review_queue, "get_item", get_item_then_wait)
    bodies = [
        {"verdict": "inappropriate", "note": NOTE},
        {"verdict": "appropriate", "note": "Attendance confirmed"},
    ]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda body: _review(world, glass["id"], body), bodies))
    monkeypatch.undo()
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    ((body, accepted),) = [
        (b, a.json()) for b, a in zip(bodies, answers, strict=True) if a.is_success
    ]
    assert (accepted["status"], accepted["note"]) == (body["verdict"], body["note"])
    (reviewed,) = _queue(world, status="reviewed")
    assert reviewed == accepted
    assert len(_review_events(world, glass["id"])) == 1
