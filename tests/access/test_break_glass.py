"""Break-glass: a clinician without a relationship overrides with a typed reason; the override
lasts a limited time, for that patient only, is recorded as such and queued for review."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from register.access_breakglass import list_grants, review_grant
from register.access_schema import break_glass_table as G
from register.db import read_transaction, write_transaction
from tests.access.world import BREAK_GLASS_REASON, World, bearer, observation

GLASS = {"X-Break-Glass-Reason": BREAK_GLASS_REASON}


@pytest.fixture
def world(bare_client, token_for) -> World:
    return World(bare_client, token_for).build()


def _grants(engine):
    with read_transaction(engine) as conn:
        return list_grants(conn, unreviewed_only=False)


def test_break_glass_opens_one_patients_record_for_a_while_and_is_queued(world, engine):
    http = world.http
    assert (
        http.get("/fhir/Observation/obs-p", headers=world.as_("hosp_clinician")).status_code == 404
    )
    opened = http.get("/fhir/Observation/obs-p", headers=world.as_("hosp_clinician", **GLASS))
    assert opened.status_code == 200
    # the grant now stands without the header, for p only
    assert http.get("/fhir/Patient/p", headers=world.as_("hosp_clinician")).status_code == 200
    assert http.get("/fhir/Patient/q", headers=world.as_("hosp_clinician")).status_code == 404
    # ... and not for anyone else of the same organisation
    assert http.get("/fhir/Patient/p", headers=world.as_("hosp_system")).status_code == 404
    (grant,) = _grants(engine)
    assert grant.patient_id == "p" and grant.reason == BREAK_GLASS_REASON
    assert grant.organisation == "HOS03" and grant.practitioner == "Practitioner/h1"
    assert grant.subject == "dr-h1" and grant.purpose == "BTG"
    assert timedelta(minutes=239) < grant.expires_at - grant.started_at <= timedelta(minutes=240)
    assert grant.reviewed_at is None  # waiting in the review queue
    # asking again while it runs neither extends it nor adds a second grant
    http.get("/fhir/Patient/p", headers=world.as_("hosp_clinician", **GLASS))
    assert len(_grants(engine)) == 1


def test_the_override_ends(world, engine):
    http = world.http
    http.get("/fhir/Patient/p", headers=world.as_("hosp_clinician", **GLASS))
    with write_transaction(engine) as conn:
        conn.execute(update(G).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert http.get("/fhir/Patient/p", headers=world.as_("hosp_clinician")).status_code == 404


def test_no_grant_is_recorded_when_there_is_a_relationship(world, engine):
    world.relate("active")
    response = world.http.get("/fhir/Patient/p", headers=world.as_("hosp_clinician", **GLASS))
    assert response.status_code == 200
    assert _grants(engine) == []


def test_the_patient_in_question_of_a_search(world, engine):
    response = world.http.get(
        "/fhir/Patient", params={"_id": "p"}, headers=world.as_("hosp_clinician", **GLASS)
    )
    assert response.status_code == 200
    assert [e["resource"]["id"] for e in response.json()["entry"]] == ["p"]
    assert [g.patient_id for g in _grants(engine)] == ["p"]


def test_a_break_glass_token_needs_no_header(world, engine, token_for):
    token = token_for(
        "clinician",
        org="HOS03",
        fhir_user="Practitioner/h2",
        subject="dr-h2",
        purpose="ETREAT",
        reason="Anaphylaxis",
    )
    assert world.http.get("/fhir/Patient/q", headers=bearer(token)).status_code == 200
    (grant,) = _grants(engine)
    assert (grant.patient_id, grant.purpose, grant.reason) == ("q", "ETREAT", "Anaphylaxis")


@pytest.mark.parametrize("who", ["hosp_system", "patient_q", "reviewer", "admin"])
def test_only_clinicians_may_break_the_glass(world, engine, who):
    response = world.http.get("/fhir/Patient/p", headers=world.as_(who, **GLASS))
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"
    assert _grants(engine) == []


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_reason_must_be_given(world, engine, reason):
    response = world.http.get(
        "/fhir/Patient/p", headers=world.as_("hosp_clinician", **{"X-Break-Glass-Reason": reason})
    )
    assert response.status_code == 400
    assert _grants(engine) == []


def test_break_glass_on_a_write(world, engine):
    refused = world.post("hosp_clinician", observation("p"))
    assert refused.status_code == 403
    written = world.post("hosp_clinician", observation("p"), **GLASS)
    assert written.status_code == 201
    assert [g.patient_id for g in _grants(engine)] == ["p"]


def test_review_queue_and_cli(world, engine, monkeypatch, tmp_path):
    from register.cli import app as cli
    from register.settings import get_settings

    world.http.get("/fhir/Patient/p", headers=world.as_("hosp_clinician", **GLASS))
    monkeypatch.setenv("REGISTER_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("REGISTER_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("COLUMNS", "300")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(cli, ["break-glass", "list"])
        assert listed.exit_code == 0, listed.output
        assert BREAK_GLASS_REASON in listed.output and "waiting" in listed.output
        grant = _grants(engine)[0].pk
        reviewed = runner.invoke(
            cli,
            ["break-glass", "review", str(grant), "--outcome", "justified", "--note", "ok",
             "--reviewer", "po1"],
        )  # fmt: skip
        assert reviewed.exit_code == 0, reviewed.output
        assert (
            runner.invoke(cli, ["break-glass", "review", "999", "--outcome", "justified"]).exit_code
            == 2
        )
        bad = runner.invoke(cli, ["break-glass", "review", str(grant), "--outcome", "meh"])
        assert bad.exit_code == 2
    finally:
        get_settings.cache_clear()
    with read_transaction(engine) as conn:
        assert list_grants(conn) == []  # nothing left waiting
        row = conn.execute(select(G.c.review_outcome, G.c.reviewed_by)).one()
    assert tuple(row) == ("justified", "po1")
    with write_transaction(engine) as conn, pytest.raises(ValueError):
        review_grant(conn, grant, outcome="whatever", reviewer="x", note="")
