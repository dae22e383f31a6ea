"""``careregister load`` is audited: one ``import`` event per committed step, naming what it wrote.

Through the real command (typer's runner) against the real database, both kinds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from fhir_adapters.audit_event import DCM
from register import storage
from register.audit.access_log import access_log
from register.cli import app
from register.db import read_transaction
from register.settings import get_settings
from tests.audit.helpers import Recorded, assert_log_intact, events
from tests.conftest import shared_data
from tests.consent.helpers import consent

runner = CliRunner()


@pytest.fixture(autouse=True)
def log_intact_afterwards(engine) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Whatever a test loaded, the whole audit log verifies afterwards."""
    yield
    assert_log_intact(engine)


def _write(path: Path, content: object) -> Path:
    path.write_bytes(orjson.dumps(content))
    return path


def _patient(pid: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": "female"}


def _observation(oid: str, pid: str) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"text": "HbA1c"},
        "subject": {"reference": f"Patient/{pid}"},
    }


def _imports(engine) -> list[Recorded]:
    return [e for e in events(engine) if e.kind == "import"]


def _versions(event: Recorded) -> set[str]:
    return {
        e["what"]["reference"].split("/_history/")[0]
        for e in event.content.get("entity", [])
        if e.get("role", {}).get("code") == "4"
    }


def test_each_committed_step_records_what_it_wrote_and_nothing_else(cli_env, engine, tmp_path):
    collection = _write(
        tmp_path / "a-collection.json",
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"resource": _patient("pa")},
                {"resource": _observation("oa", "pa")},
                {"resource": {"resourceType": "Observation", "id": "bad", "code": {"text": "x"}}},
            ],
        },
    )
    failing_transaction = _write(
        tmp_path / "b-transaction.json",
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": _patient("pt"), "request": {"method": "PUT", "url": "Patient/pt"}},
                {
                    "resource": {"resourceType": "Observation", "code": {"text": "no status"}},
                    "request": {"method": "POST", "url": "Observation"},
                },
            ],
        },
    )
    batch = _write(
        tmp_path / "c-batch.json",
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"resource": _patient("pb"), "request": {"method": "PUT", "url": "Patient/pb"}},
                {
                    "resource": {"resourceType": "Observation", "code": {"text": "no status"}},
                    "request": {"method": "POST", "url": "Observation"},
                },
                {
                    "resource": _observation("ob", "pb"),
                    "request": {"method": "PUT", "url": "Observation/ob"},
                },
            ],
        },
    )
    ndjson = tmp_path / "d-Patient.ndjson"
    ndjson.write_bytes(b'{"resourceType":"Patient","id":"pn","gender":"male"}\n{not json}\n')
    result = runner.invoke(
        app,
        [
            "load",
            "-q",
            "--org",
            "HC001",
            *map(str, (collection, failing_transaction, batch, ndjson)),
        ],
    )
    assert result.exit_code == 1, result.output  # rejections were reported

    found = _imports(engine)
    # The collection, the batch and the NDJSON chunk committed; the transaction did not.
    assert len(found) == 3
    by_patients = {frozenset(e.patients): e for e in found}
    assert set(by_patients) == {frozenset({"pa"}), frozenset({"pb"}), frozenset({"pn"})}
    expected = {
        "pa": {"Patient/pa", "Observation/oa"},
        "pb": {"Patient/pb", "Observation/ob"},
        "pn": {"Patient/pn"},
    }
    for patient, written in expected.items():
        event = by_patients[frozenset({patient})]
        # Exactly the versions that step wrote (Provenance are the loader's own, named too).
        assert {v for v in _versions(event) if not v.startswith("Provenance/")} == written
        # the kinds of data the record gained, each resource's Provenance among them
        assert event.kinds_for(patient) == {ref.split("/")[0] for ref in written} | {"Provenance"}
        assert event.action == "load" and event.outcome == "0"
        assert event.content["type"]["code"] == "110107"
        assert event.content["type"]["system"] == DCM
        assert event.content["action"] == "C"
        assert event.agent_role == "operator" and event.agent_org == "HC001"
        assert event.client_id == "careregister-cli"
        assert "pt" not in event.patients
    # One request id for the whole run, and no file name anywhere in the events.
    assert len({e.request_id for e in found}) == 1
    assert found[0].request_id.startswith("load-")
    for event in found:
        assert "collection.json" not in orjson.dumps(event.content).decode()


def test_a_second_run_has_its_own_request_id(cli_env, engine, tmp_path):
    path = _write(
        tmp_path / "one.json",
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": _patient("p1")}]},
    )
    assert runner.invoke(app, ["load", "-q", str(path)]).exit_code == 0
    assert runner.invoke(app, ["load", "-q", str(path)]).exit_code == 0
    first, second = _imports(engine)
    assert first.request_id != second.request_id
    assert first.agent_org is None  # no --org: the operator alone
    # The second run updated the same patient: a new version, named as such.
    assert any("/_history/2" in e["what"].get("reference", "") for e in second.content["entity"])


def test_a_patient_does_not_see_the_register_loading_their_record(cli_env, engine, tmp_path):
    path = _write(
        tmp_path / "one.json",
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": _patient("p1")}]},
    )
    assert runner.invoke(app, ["load", "-q", str(path)]).exit_code == 0
    assert [e.patients for e in _imports(engine)] == [{"p1"}]
    with read_transaction(engine) as conn:
        assert access_log(conn, "p1", count=20).entries == []


def test_nothing_is_recorded_when_the_register_runs_unaudited(
    cli_env, engine, tmp_path, monkeypatch
):
    monkeypatch.setenv("REGISTER_AUDIT_ENABLED", "false")
    get_settings.cache_clear()
    path = _write(
        tmp_path / "one.json",
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": _patient("p1")}]},
    )
    assert runner.invoke(app, ["load", "-q", str(path)]).exit_code == 0
    assert _imports(engine) == []


@pytest.mark.slow
def test_a_synthea_bundle_is_one_event_naming_its_patient_and_counting_every_type(cli_env, engine):
    path = sorted(shared_data("synthea").glob("*.json"))[0]
    bundle = orjson.loads(path.read_bytes())
    result = runner.invoke(app, ["load", "-q", str(path)])
    assert result.exit_code == 0, result.output
    with read_transaction(engine) as conn:  # the server gave the bundle's Patient its id
        patients = set(
            conn.execute(
                select(storage.R.c.resource_id).where(storage.R.c.resource_type == "Patient")
            ).scalars()
        )
    (event,) = _imports(engine)
    assert len(patients) == 1 and event.patients == patients
    # outcomeDesc counts every version written, by type: the entries and their Provenance.
    detail = event.content["outcomeDesc"]
    total, _, counts = detail.removeprefix("loaded ").partition(": ")
    by_type = dict(part.rsplit(" ", 1) for part in counts.split(", "))
    assert int(total) == sum(int(n) for n in by_type.values())
    assert int(by_type["Provenance"]) == len(bundle["entry"])
    assert int(total) == 2 * len(bundle["entry"])
    # The bytes and the entity rows name at most 200 versions.
    assert len(_versions(event)) == min(200, int(total))
    assert len(event.entities) <= 200


def test_a_step_that_writes_a_consent_is_marked_as_a_consent_change(cli_env, engine, tmp_path):
    with_consent = _write(
        tmp_path / "a.json",
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"resource": _patient("pc")},
                {"resource": consent("pc", None, rid="cc", policy_rule="OPTIN")},
            ],
        },
    )
    without = _write(
        tmp_path / "b.json",
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": _patient("pd")}]},
    )
    result = runner.invoke(app, ["load", "-q", str(with_consent), str(without)])
    assert result.exit_code == 0, result.output
    changed, plain = _imports(engine)
    assert {"Patient/pc", "Consent/cc"} <= _versions(changed)
    assert not any(v.startswith("Consent/") for v in _versions(plain))
    assert changed.subtypes == {"bulk-load", "load", "consent-change"}
    assert plain.subtypes == {"bulk-load", "load"}
