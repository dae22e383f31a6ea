"""Index maintenance: rows written in the write's transaction, replaced, removed, rebuilt."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from register import interactions, version_facts
from register.cli import app as cli
from register.context import RequestContext
from register.db import read_transaction, write_transaction
from register.errors import FhirError
from register.schema import SQLModel, version_table
from register.search_index import count_rows, index_rows, reindex, unindex_all
from register.search_schema import (
    ALL_TABLES,
    VERSION_FACT_TABLES,
    compartment_table,
    token_table,
    version_token_table,
)
from register.settings import get_settings
from tests.helpers import NHS, observation, patient
from tests.search.conftest import Fhir

CTX = RequestContext(request_id="t", base_url="http://test/fhir")


def _rows(engine: Engine) -> dict[str, int]:
    with read_transaction(engine) as conn:
        return count_rows(conn)


def test_rows_follow_create_update_delete(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        made = interactions.create(conn, CTX, patient(identifier=[{"system": NHS, "value": "1"}]))
    pid = made.version.resource_id
    before = _rows(engine)
    assert before["search_token"] > 0 and before["search_string"] > 0
    assert before["search_compartment"] == 1
    with write_transaction(engine) as conn:
        interactions.update(conn, CTX, "Patient", pid, {**patient("Jones", "Bob"), "id": pid})
    with read_transaction(engine) as conn:
        values = set(
            conn.execute(
                select(token_table.c.code).where(token_table.c.param == "identifier")
            ).scalars()
        )
    assert values == set()  # the old identifier row went with the old version
    with write_transaction(engine) as conn:
        interactions.delete(conn, CTX, "Patient", pid)
    assert all(count == 0 for count in _rows(engine).values())


def test_a_failed_transaction_leaves_no_rows(engine: Engine) -> None:
    with pytest.raises(FhirError), write_transaction(engine) as conn:
        interactions.create(conn, CTX, patient())
        interactions.create(conn, CTX, {"resourceType": "Observation"})  # invalid: 422
    assert all(count == 0 for count in _rows(engine).values())


def test_compartment_rows_and_absolute_local_references(engine: Engine) -> None:
    rows = index_rows(observation("http://test/fhir/Patient/p1"), local_bases=("http://test/fhir",))
    assert rows["search_compartment"] == [{"patient_id": "p1"}]
    subject = [r for r in rows["search_reference"] if r["param"] == "subject"]
    assert subject[0]["target_id"] == "p1" and subject[0]["url"] is None
    external = index_rows(observation("https://elsewhere/fhir/Patient/p1"))
    assert "search_compartment" not in external
    assert [r["url"] for r in external["search_reference"] if r["param"] == "subject"] == [
        "https://elsewhere/fhir/Patient/p1"
    ]


def test_reindex_rebuilds_what_was_lost(engine: Engine, fhir: Fhir) -> None:
    ann = fhir.create(patient("Smith", "Ann"))["id"]
    fhir.create(observation(f"Patient/{ann}"))
    before = _rows(engine)
    with write_transaction(engine) as conn:
        unindex_all(conn)
    assert fhir.ids("Patient?family=smith") == []
    report = reindex(engine, batch_size=1)
    assert report.resources == 4  # the Patient, the Observation and a Provenance for each
    assert _rows(engine) == before
    assert fhir.ids("Patient?family=smith") == [ann]


def test_reindex_command(
    engine: Engine, fhir: Fhir, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    fhir.create(patient("Smith", "Ann"))
    with write_transaction(engine) as conn:
        unindex_all(conn)
    monkeypatch.setenv("REGISTER_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("REGISTER_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["reindex", "-q", "--type", "Patient"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "Reindexed 1 resources" in result.output
    assert len(fhir.ids("Patient?family=smith")) == 1


def test_migration_matches_the_tables(engine: Engine) -> None:
    names = {table.name for table in ALL_TABLES} | {
        table.name for table in VERSION_FACT_TABLES.values()
    }
    names.add("resource_version")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    mine = [d for d in diff if _table_of(d) in names or "ix_resource_type_pk" in str(d)]
    assert mine == []
    assert compartment_table.name in names


def _table_of(change: object) -> str | None:
    item = change[0] if isinstance(change, list) else change
    for part in item if isinstance(item, tuple) else ():
        table = getattr(part, "table", None)
        if table is not None:
            return str(table.name)
        if hasattr(part, "name") and part.__class__.__name__ == "Table":
            return str(part.name)
    return None


def _version_facts(engine: Engine) -> set[tuple[int, str, str | None, str | None]]:
    with read_transaction(engine) as conn:
        return {
            (int(v), param, system, code)
            for v, param, system, code in conn.execute(
                select(
                    version_token_table.c.version_pk,
                    version_token_table.c.param,
                    version_token_table.c.system,
                    version_token_table.c.code,
                )
            )
        }


def test_each_version_keeps_its_own_facts_and_reindex_rebuilds_them(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        made = interactions.create(conn, CTX, patient(identifier=[{"system": NHS, "value": "1"}]))
    pid = made.version.resource_id
    with write_transaction(engine) as conn:
        interactions.update(conn, CTX, "Patient", pid, {**patient("Jones", "Bob"), "id": pid})
    with read_transaction(engine) as conn:
        versions = dict(
            conn.execute(
                select(version_table.c.version_id, version_table.c.pk).where(
                    version_table.c.resource_id == pid
                )
            ).all()
        )
        current = {
            (versions[2], param, system, code)
            for param, system, code in conn.execute(
                select(token_table.c.param, token_table.c.system, token_table.c.code).where(
                    token_table.c.resource_pk == made.version.resource_pk
                )
            )
        }
    facts = _version_facts(engine)
    mine = {f for f in facts if f[0] in versions.values()}
    # the current version's facts are its index rows; the first keeps the identifier it had
    assert {f for f in mine if f[0] == versions[2]} == current
    assert (versions[1], "identifier", NHS, "1") in mine
    assert not any(f[0] == versions[2] and f[1] == "identifier" for f in mine)
    with write_transaction(engine) as conn:
        version_facts.erase_all(conn)
    assert _version_facts(engine) == set()
    reindex(engine, batch_size=1)
    assert _version_facts(engine) == facts
