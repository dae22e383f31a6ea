"""A read is answered only after its audit event is committed, from outside the handler: if the
event cannot be committed the client gets a 503 OperationOutcome and none of the data. A write
whose event cannot be appended is not made. A refusal is answered even when its event cannot be
recorded. A request leaves no reference cycle for the garbage collector. Over HTTP, both
databases."""

from __future__ import annotations

import gc

from sqlalchemy import func, select

from register.audit import requests as audit_requests
from register.audit import writer as writer_module
from register.audit.chain import verify
from register.audit.trail import Trail
from register.db import read_transaction
from register.schema import audit_table, identity_table, resource_table, version_table
from tests.audit.helpers import events, last_seq


def _patient(client) -> str:  # type: ignore[no-untyped-def]
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}],
        "name": [{"family": "Hoddle", "given": ["Glenda"]}],
    }
    created = client.post("/fhir/Patient", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_a_read_whose_event_cannot_be_committed_is_refused_without_its_data(
    client, app, engine, monkeypatch
):
    pid = _patient(client)
    assert client.get(f"/fhir/Patient/{pid}").status_code == 200  # the writer process is up
    monkeypatch.setattr(writer_module, "RESTART_PAUSE_SECONDS", 60.0)
    link = app.state.audit._link
    assert link is not None
    link.process.kill()
    link.process.wait()
    start = last_seq(engine)

    response = client.get(f"/fhir/Patient/{pid}")

    assert response.status_code == 503
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "transient"
    assert "Hoddle" not in response.text and pid not in response.text
    assert "etag" not in response.headers and "last-modified" not in response.headers
    assert events(engine, start) == []


def test_an_audited_read_leaves_nothing_for_the_cycle_collector(client):
    pid = _patient(client)
    client.get(f"/fhir/Patient/{pid}")
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            assert client.get(f"/fhir/Patient/{pid}").status_code == 200
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        cyclic = [o for o in gc.garbage if isinstance(o, Trail)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert cyclic == []


def _counts(engine) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    with read_transaction(engine) as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (resource_table, version_table, identity_table, audit_table)
        )


def test_a_write_whose_event_cannot_be_appended_is_not_made(client, engine, monkeypatch):
    """The write's event is appended in the write's own transaction: if appending fails (here
    after its rows are inserted, as a full disk or a lost connection would), the change, the
    event's rows and everything the write touched roll back; the client gets a 500
    OperationOutcome without internals, and the failure itself is recorded."""
    pid = _patient(client)
    before = _counts(engine)
    start = last_seq(engine)
    real = audit_requests.append_events

    def append_then_fail(conn, events):  # type: ignore[no-untyped-def]
        real(conn, events)
        raise OSError("no space left on device")

    monkeypatch.setattr(audit_requests, "append_events", append_then_fail)
    changed = {"resourceType": "Patient", "id": pid, "name": [{"family": "Changed"}]}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {"resource": changed, "request": {"method": "PUT", "url": f"Patient/{pid}"}},
        ],
    }
    answers = [
        client.post("/fhir/Patient", json={"resourceType": "Patient"}),
        client.put(f"/fhir/Patient/{pid}", json=changed),
        client.delete(f"/fhir/Patient/{pid}"),
        client.post("/fhir", json=bundle),
    ]
    for answer in answers:
        assert answer.status_code == 500, answer.text
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert "space" not in answer.text and "Traceback" not in answer.text
    assert _counts(engine)[:3] == before[:3]
    monkeypatch.undo()
    read = client.get(f"/fhir/Patient/{pid}")
    assert read.status_code == 200 and read.json()["name"][0]["family"] == "Hoddle"
    assert read.json()["meta"]["versionId"] == "1"
    failures = [e for e in events(engine, start) if e.outcome == "8"]
    assert [e.action for e in failures] == ["create", "update", "delete", "transaction"]
    with read_transaction(engine) as conn:
        report = verify(conn)
    assert report.intact, report.problems


def test_a_refusal_is_still_answered_when_its_event_cannot_be_recorded(
    client, bare_client, app, engine, monkeypatch, caplog
):
    """A refused request served nothing, so when the log cannot take its event the refusal is
    still the answer (not a 503, not a hang), and the operator is told, without patient data."""
    pid = _patient(client)
    assert client.get(f"/fhir/Patient/{pid}").status_code == 200  # the writer process is up
    monkeypatch.setattr(writer_module, "RESTART_PAUSE_SECONDS", 60.0)
    link = app.state.audit._link
    assert link is not None
    link.process.kill()
    link.process.wait()
    start = last_seq(engine)

    with caplog.at_level("ERROR", logger="register.audit"):
        missing = client.get("/fhir/Patient/not-there")
        no_token = bare_client.get(f"/fhir/Patient/{pid}")
        invalid = client.post("/fhir/Patient", json={"resourceType": "Patient", "gender": "x"})

    assert [r.status_code for r in (missing, no_token, invalid)] == [404, 401, 422]
    for refused in (missing, no_token, invalid):
        assert refused.json()["resourceType"] == "OperationOutcome"
    assert invalid.json()["issue"][0]["expression"] == ["Patient.gender"]
    complaints = [r for r in caplog.records if "could not be recorded" in r.getMessage()]
    assert len(complaints) == 3
    assert not any(pid in r.getMessage() or "Hoddle" in r.getMessage() for r in caplog.records)
    assert events(engine, start) == []
    # the data itself is still never served unrecorded
    assert client.get(f"/fhir/Patient/{pid}").status_code == 503
