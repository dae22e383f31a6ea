"""A read is answered only after its audit event is committed, from outside the handler: if the
event cannot be committed the client gets a 503 OperationOutcome and none of the data; a request
leaves no reference cycle for the garbage collector. Over HTTP, both databases."""

from __future__ import annotations

import gc

from register.audit import writer as writer_module
from register.audit.trail import Trail
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
