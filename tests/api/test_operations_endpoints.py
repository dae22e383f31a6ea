"""Health, readiness, request ids and the structured request log."""

from __future__ import annotations

import logging

import orjson
from fastapi.testclient import TestClient

from register.app import create_app
from register.db import create_db_engine
from register.logs import JsonFormatter
from tests.helpers import patient


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_ready_fails_on_unmigrated_database(settings, tmp_path):
    empty = create_db_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    with TestClient(create_app(settings, engine=empty)) as client:
        response = client.get("/ready")
        assert response.status_code == 503
        assert "careregister migrate" in response.json()["database"]


def test_request_id_is_echoed_or_assigned(client):
    given = client.get("/health", headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    assigned = client.get("/health", headers={"X-Request-Id": "bad id with spaces"})
    assert assigned.headers["x-request-id"] not in ("", "bad id with spaces")
    assert len(assigned.headers["x-request-id"]) == 36


def test_request_log_has_template_not_identifiers(client, caplog):
    rid = client.post("/fhir/Patient", json=patient(family="Secretname")).json()["id"]
    caplog.set_level(logging.INFO, logger="register.request")
    caplog.clear()
    response = client.get(
        f"/fhir/Patient/{rid}",
        params={"identifier": "https://fhir.nhs.uk/Id/nhs-number|9000000009"},
        headers={"X-Request-Id": "req-42"},
    )
    assert response.status_code == 200
    records = [r for r in caplog.records if r.name == "register.request"]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    fields = orjson.loads(line)
    assert fields["path"] == "/fhir/{resource_type}/{resource_id}"
    assert fields["method"] == "GET" and fields["status"] == 200
    assert fields["request_id"] == "req-42"
    assert isinstance(fields["duration_ms"], float)
    for secret in (rid, "9000000009", "Secretname"):
        assert secret not in line


def test_served_request_log_writes_json_lines_without_identifiers(client, monkeypatch):
    from register.logs import request_log

    lines: list[bytes] = []

    class Sink:
        def write(self, line: bytes) -> None:
            lines.append(line)

    rid = client.post("/fhir/Patient", json=patient(family="Hiddenname")).json()["id"]
    monkeypatch.setattr(request_log, "sink", Sink())
    client.get(f"/fhir/Patient/{rid}?identifier=9000000009")
    client.get("/fhir/Nonsense/x/y/z/w")
    assert len(lines) == 2
    first, second = (orjson.loads(line) for line in lines)
    assert all(line.endswith(b"\n") for line in lines)
    assert first["path"] == "/fhir/{resource_type}/{resource_id}" and first["status"] == 200
    assert second["status"] == 404
    for secret in (rid, "9000000009", "Hiddenname"):
        assert all(secret.encode() not in line for line in lines)
