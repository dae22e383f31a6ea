"""How the register stores resources, checked on the database itself: the pragmas and column
types it relies on, where the current version lives, and what the server sets on every write."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from register import driver_query
from register.api.fhir_routes import ROUTES
from tests.helpers import patient

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def test_the_database_runs_as_the_register_needs(engine, backend):
    """SQLite: write-ahead log and the register's pragmas on every connection. PostgreSQL:
    resources kept as JSONB."""
    with engine.connect() as conn:
        if backend == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        else:
            types = dict(
                conn.execute(
                    text(
                        "SELECT table_name, data_type FROM information_schema.columns "
                        "WHERE column_name = 'content' "
                        "AND table_name IN ('resource', 'resource_version')"
                    )
                ).all()
            )
            assert types == {"resource": "jsonb", "resource_version": "jsonb"}


def test_the_current_version_is_read_without_touching_history(client, engine, monkeypatch):
    """A resource updated many times has one current row; a read by id asks only for it."""
    created = client.post("/fhir/Patient", json=patient())
    pid = created.json()["id"]
    for n in range(2, 7):
        body = {**patient(), "id": pid, "gender": "female" if n % 2 else "male"}
        assert client.put(f"/fhir/Patient/{pid}", json=body).status_code == 200
    with engine.connect() as conn:
        current = conn.execute(
            text("SELECT version_id FROM resource WHERE resource_id = :i"), {"i": pid}
        ).all()
        versions = conn.execute(
            text("SELECT count(*) FROM resource_version WHERE resource_id = :i"), {"i": pid}
        ).scalar()
    assert [int(v) for (v,) in current] == [6] and versions == 6

    asked: list[str] = []
    real_first = driver_query.DriverQuery.first

    def first(self, conn, params):  # type: ignore[no-untyped-def]
        asked.append(self.sql)
        return real_first(self, conn, params)

    monkeypatch.setattr(driver_query.DriverQuery, "first", first)
    read = client.get(f"/fhir/Patient/{pid}")
    assert read.status_code == 200 and read.json()["meta"]["versionId"] == "6"
    assert asked, "a read by id goes through the driver query"
    assert all("resource_version" not in sql for sql in asked)
    assert all(re.search(r"resource_id = (\?|%\(|:)", sql) for sql in asked)


def test_the_server_sets_id_version_and_last_updated(client):
    """Whatever the client sends in ``meta``, the server's own values are stored and served."""
    sent = {**patient(), "meta": {"versionId": "99", "lastUpdated": "2000-01-01T00:00:00Z"}}
    before = datetime.now(UTC) - timedelta(seconds=5)
    created = client.post("/fhir/Patient", json=sent)
    assert created.status_code == 201
    body = created.json()
    assert FHIR_ID.match(body["id"])
    assert body["meta"]["versionId"] == "1"
    stamped = datetime.fromisoformat(body["meta"]["lastUpdated"].replace("Z", "+00:00"))
    assert before <= stamped <= datetime.now(UTC) + timedelta(seconds=5)
    assert client.get(f"/fhir/Patient/{body['id']}").json()["meta"] == body["meta"]


def test_the_capability_statement_is_the_route_table(client):
    """fhirVersion 4.0.1, and exactly the interactions the route table serves."""
    statement = client.get("/fhir/metadata").json()
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    # FHIR R4's restful interaction codes (TypeRestfulInteraction, SystemRestfulInteraction);
    # other routes (metadata itself, operations) are listed elsewhere or not at all.
    type_codes = {"read", "vread", "update", "patch", "delete", "history-instance"}
    type_codes |= {"history-type", "create", "search-type"}
    system_codes = {"transaction", "batch", "search-system", "history-system"}
    served_system = {r.interaction for r in ROUTES if r.level == "system"} & system_codes
    served_type = {r.interaction for r in ROUTES if r.level in ("type", "instance")} & type_codes
    assert {"read", "create", "update", "delete", "search-type"} <= served_type
    assert {i["code"] for i in rest["interaction"]} == served_system
    patient_entry = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert {i["code"] for i in patient_entry["interaction"]} == served_type
