"""The careregister command: migrate, serve's schema check, load."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from register import storage
from register.cli import app
from register.db import create_db_engine, read_transaction
from register.migrate import head_revision, schema_status, upgrade
from register.settings import get_settings
from tests.conftest import shared_data

runner = CliRunner()


def test_migrate_creates_schema_in_place(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    monkeypatch.setenv("REGISTER_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        engine = create_db_engine(url)
        assert schema_status(engine).current is None
        result = runner.invoke(app, ["migrate"])
        assert result.exit_code == 0, result.output
        assert schema_status(engine).current == head_revision()
        again = runner.invoke(app, ["migrate"])
        assert again.exit_code == 0 and "already current" in again.output
    finally:
        get_settings.cache_clear()


def test_migrate_upgrades_an_older_database_keeping_its_data(monkeypatch, tmp_path):
    """A database made by the first release, holding a resource, is upgraded in place by
    ``careregister migrate``: every later table appears and the stored bytes are untouched."""
    url = f"sqlite:///{tmp_path / 'older.sqlite3'}"
    engine = create_db_engine(url)
    upgrade(engine, "0001_core")
    body = b'{"resourceType":"Patient","id":"kept","meta":{"versionId":"1"}}'
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO resource (pk, resource_type, resource_id, version_id, last_updated,"
            " deleted, content) VALUES (1, 'Patient', 'kept', 1, '2024-01-01 00:00:00', 0, ?)",
            (body,),
        )
        conn.exec_driver_sql(
            "INSERT INTO resource_version (resource_pk, resource_type, resource_id, version_id,"
            " last_updated, method, deleted, content)"
            " VALUES (1, 'Patient', 'kept', 1, '2024-01-01 00:00:00', 'POST', 0, ?)",
            (body,),
        )
    monkeypatch.setenv("REGISTER_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["migrate"])
        assert result.exit_code == 0, result.output
        assert schema_status(engine).current == head_revision() != "0001_core"
        with engine.connect() as conn:
            assert (
                conn.exec_driver_sql(
                    "SELECT content FROM resource WHERE resource_id = 'kept'"
                ).scalar()
                == body
            )
            assert conn.exec_driver_sql("SELECT count(*) FROM audit_event").scalar() == 0
    finally:
        get_settings.cache_clear()
        engine.dispose()


def test_serve_refuses_out_of_date_schema(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_db_engine(url)
    upgrade(engine, "0001_core")
    monkeypatch.setenv("REGISTER_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        if head_revision() == "0001_core":
            # Simulate an older schema by stamping an unknown earlier revision away.
            with engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM alembic_version")
        result = runner.invoke(app, ["serve", "--port", "1"])
        assert result.exit_code == 2
        assert "careregister migrate" in result.output
    finally:
        get_settings.cache_clear()


def _write(path: Path, content: object) -> Path:
    path.write_bytes(orjson.dumps(content))
    return path


def test_load_reports_loaded_and_rejected(cli_env, engine, tmp_path):
    good = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1"}},
            {"resource": {"resourceType": "Observation", "id": "o1", "code": {"text": "x"}}},
        ],
    }
    ndjson = tmp_path / "Patient.000.ndjson"
    ndjson.write_bytes(b'{"resourceType":"Patient","id":"p2"}\n\n{not json}\n')
    _write(tmp_path / "bundle.json", good)
    result = runner.invoke(app, ["load", "-q", str(tmp_path / "bundle.json"), str(ndjson)])
    assert result.exit_code == 1
    assert "Rejected: 2" in result.output
    assert "Observation.status" in result.output
    assert ":3" in result.output  # the NDJSON line number of the bad line
    with read_transaction(engine) as conn:
        ids = sorted(
            conn.execute(
                select(storage.R.c.resource_id).where(storage.R.c.resource_type != "Provenance")
            ).scalars()
        )
        # The loading operator is recorded as the author of each loaded resource.
        assert storage.count_current(conn, "Provenance") == 2
    assert ids == ["p1", "p2"]


def test_load_shows_its_progress_unless_quiet(cli_env, tmp_path):
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "gender": g}} for g in ("male", "other")
        ],
    }
    path = _write(tmp_path / "two.json", bundle)
    shown = runner.invoke(app, ["load", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "Loading" in shown.output and "2/2" in shown.output
    quiet = runner.invoke(app, ["load", "-q", str(path)])
    assert quiet.exit_code == 0 and "Loading" not in quiet.output
    assert "Loaded 2 resources" in quiet.output


def test_load_missing_path_is_an_error(cli_env):
    result = runner.invoke(app, ["load", "/no/such/file.json"])
    assert result.exit_code == 2


@pytest.mark.slow
def test_load_synthea_bundle_without_rejections(cli_env, engine):
    folder = shared_data("synthea")
    files = sorted(folder.glob("*.json"))[:3]
    expected = sum(len(orjson.loads(f.read_bytes())["entry"]) for f in files)
    result = runner.invoke(app, ["load", "-q", *map(str, files)])
    assert result.exit_code == 0, result.output
    assert f"Loaded {expected} resources" in result.output
    with read_transaction(engine) as conn:
        provenance = storage.count_current(conn, "Provenance")
        assert storage.count_current(conn) - provenance == expected
        assert provenance == expected  # one per loaded resource: who loaded it
