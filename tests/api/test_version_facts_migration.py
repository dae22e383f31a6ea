"""Migration 0012 gives every stored version what the access policy reads about it: its own
codes, security labels and dates, extracted from its content, and the organisation of its
resource as its author. After it, a corrected record's earlier version is judged by its own
facts. Both databases."""

from __future__ import annotations

from typing import Any

import orjson
from alembic import command
from sqlalchemy import Engine, text

from register.migrate import alembic_config, upgrade

SNOMED = "http://snomed.info/sct"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _condition(code: str, onset: str, labels: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Condition",
        "id": "c1",
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "subject": {"reference": "Patient/p"},
        "onsetDateTime": onset,
    }
    if labels:
        body["meta"] = {"security": [{"system": ACT, "code": label} for label in labels]}
    return body


def test_existing_versions_get_their_own_facts(engine: Engine) -> None:
    with engine.begin() as conn:
        config = alembic_config(engine)
        config.attributes["connection"] = conn
        command.downgrade(config, "0011_version_patient")
    versions = [
        _condition("86406008", "2015-06-01", ["HIV"]),  # first recorded (and labelled) as HIV
        _condition("44054006", "2020-06-01", []),  # corrected
        None,  # then deleted
    ]
    blob = "CAST(:c AS JSONB)" if engine.dialect.name == "postgresql" else ":c"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO resource (pk, resource_type, resource_id, version_id, last_updated,"
                " deleted, content, patient_id, author_org) VALUES (1, 'Condition', 'c1', 3,"
                " '2024-01-01 00:00:00', :d, NULL, 'p', 'GP001')"
            ),
            {"d": True},
        )
        for number, body in enumerate(versions, start=1):
            conn.execute(
                text(
                    "INSERT INTO resource_version (pk, resource_pk, resource_type, resource_id,"
                    " version_id, last_updated, method, deleted, content, patient_id) VALUES"
                    f" (:v, 1, 'Condition', 'c1', :v, '2024-01-01 00:00:00', 'PUT', :d, {blob},"
                    " 'p')"
                ),
                {
                    "v": number,
                    "d": body is None,
                    "c": None if body is None else orjson.dumps(body).decode(),
                },
            )
    upgrade(engine)
    with engine.connect() as conn:
        authors = set(conn.execute(text("SELECT author_org FROM resource_version")).scalars())
        tokens = {
            (int(v), param, system, code)
            for v, param, system, code in conn.execute(
                text(
                    "SELECT version_pk, param, system, code FROM version_token"
                    " WHERE param IN ('code', '_security')"
                )
            )
        }
        dates = {
            int(v): param
            for v, param in conn.execute(
                text("SELECT version_pk, param FROM version_date WHERE param = 'onset-date'")
            )
        }
    assert authors == {"GP001"}
    assert tokens == {
        (1, "code", SNOMED, "86406008"),
        (1, "_security", ACT, "HIV"),
        (2, "code", SNOMED, "44054006"),
    }
    assert dates == {1: "onset-date", 2: "onset-date"}  # the deletion has no content, no facts
