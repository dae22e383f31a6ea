"""Migration 0011 gives every stored version the patient whose record it was in: the current
patient by default, the patient its own content names when the resource moved, and for a
deletion the patient of the version before it. Both databases."""

from __future__ import annotations

import orjson
from alembic import command
from sqlalchemy import Engine, text

from register.migrate import alembic_config, upgrade


def _observation(rid: str, patient: str, version: int) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Observation",
            "id": rid,
            "meta": {"versionId": str(version)},
            "status": "final",
            "code": {"text": "HbA1c"},
            "subject": {"reference": f"Patient/{patient}"},
        }
    )


def test_existing_versions_get_the_patient_of_the_record_they_were_in(engine: Engine) -> None:
    with engine.begin() as conn:
        config = alembic_config(engine)
        config.attributes["connection"] = conn
        command.downgrade(config, "0010_web")
    # (resource, versions: patient named by each version's content, None for a deletion)
    stored = {
        "stays": ["p", "p"],
        "moved": ["q", "p", "p"],
        "moved-then-deleted": ["q", "p", None],
        "deleted": ["q", None],
        "single": ["q"],
    }
    blob = "CAST(:c AS JSONB)" if engine.dialect.name == "postgresql" else ":c"
    with engine.begin() as conn:
        for pk, (rid, patients) in enumerate(stored.items(), start=1):
            last = len(patients)
            current = patients[-1] if patients[-1] is not None else patients[-2]
            body = None if patients[-1] is None else _observation(rid, patients[-1], last)
            conn.execute(
                text(
                    "INSERT INTO resource (pk, resource_type, resource_id, version_id,"
                    " last_updated, deleted, content, patient_id) VALUES (:pk, 'Observation',"
                    f" :rid, :v, '2024-01-01 00:00:00', :d, {blob}, :patient)"
                ),
                {
                    "pk": pk,
                    "rid": rid,
                    "v": last,
                    "d": body is None,
                    "c": None if body is None else body.decode(),
                    "patient": current,
                },
            )
            for version, patient in enumerate(patients, start=1):
                content = None if patient is None else _observation(rid, patient, version)
                conn.execute(
                    text(
                        "INSERT INTO resource_version (resource_pk, resource_type, resource_id,"
                        " version_id, last_updated, method, deleted, content) VALUES (:pk,"
                        f" 'Observation', :rid, :v, '2024-01-01 00:00:00', 'PUT', :d, {blob})"
                    ),
                    {
                        "pk": pk,
                        "rid": rid,
                        "v": version,
                        "d": content is None,
                        "c": None if content is None else content.decode(),
                    },
                )
    upgrade(engine)
    with engine.connect() as conn:
        found = {
            (rid, int(version)): patient
            for rid, version, patient in conn.execute(
                text("SELECT resource_id, version_id, patient_id FROM resource_version")
            )
        }
    expected = {}
    for rid, patients in stored.items():
        before = None
        for version, patient in enumerate(patients, start=1):
            before = patient if patient is not None else before
            expected[(rid, version)] = before
    assert found == expected
