"""The access commands: token, client add/list/disable/keygen/assertion, keys, demo."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from register.access_schema import client_table, user_table
from register.cli import app as cli
from register.db import read_transaction
from register.schema import resource_table as R
from register.settings import get_settings
from tests.access.world import bearer

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch, engine, settings):
    """The CLI pointed at the test database and the test app's data folder (its keys)."""
    monkeypatch.setenv("REGISTER_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("REGISTER_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("REGISTER_BASE_URL", "http://testserver/fhir")
    monkeypatch.setenv("COLUMNS", "300")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _out(result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def test_token_command_issues_tokens_the_api_accepts(cli_env, bare_client):
    token = _out(runner.invoke(cli, ["token", "--role", "system", "--org", "TESTORG"]))
    created = bare_client.post(
        "/fhir/Patient", json={"resourceType": "Patient"}, headers=bearer(token)
    )
    assert created.status_code == 201
    reviewer = _out(runner.invoke(cli, ["token", "--role", "reviewer"]))
    refused = bare_client.get(f"/fhir/Patient/{created.json()['id']}", headers=bearer(reviewer))
    assert refused.status_code == 403
    assert runner.invoke(cli, ["token", "--role", "operator"]).exit_code == 2
    assert runner.invoke(cli, ["token", "--role", "clinician"]).exit_code == 2  # no org


def test_clients_are_added_listed_used_and_disabled(cli_env, bare_client, tmp_path):
    keys = tmp_path / "keys"
    assert runner.invoke(cli, ["client", "keygen", "--out", str(keys)]).exit_code == 0
    assert (keys / "client-key.pem").stat().st_mode & 0o077 == 0
    client_id = _out(
        runner.invoke(
            cli,
            ["client", "add", "--org", "HOS03", "--jwks", str(keys / "client-jwks.json"),
             "--scope", "system/*.rs", "--name", "PAS"],
        )
    )  # fmt: skip
    assert client_id.startswith("hos03-")
    listed = runner.invoke(cli, ["client", "list"])
    assert client_id in listed.output and "HOS03" in listed.output
    assertion = _out(
        runner.invoke(
            cli,
            [
                "client",
                "assertion",
                "--client-id",
                client_id,
                "--key",
                str(keys / "client-key.pem"),
            ],
        )
    )
    form = {
        "grant_type": "client_credentials",
        "scope": "system/*.rs",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    assert bare_client.post("/auth/token", data=form).status_code == 200
    assert runner.invoke(cli, ["client", "disable", client_id]).exit_code == 0
    assert runner.invoke(cli, ["client", "disable", "nobody"]).exit_code == 2
    again = _out(
        runner.invoke(
            cli,
            [
                "client",
                "assertion",
                "--client-id",
                client_id,
                "--key",
                str(keys / "client-key.pem"),
            ],
        )
    )
    refused = bare_client.post("/auth/token", data={**form, "client_assertion": again})
    assert refused.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "args",
    [
        ["--org", "not an ods", "--scope", "system/*.rs"],
        ["--org", "HOS03", "--scope", "user/*.rs"],
        ["--org", "HOS03", "--scope", "system/*.rs"],  # no keys
    ],
)
def test_bad_client_registrations_are_refused(cli_env, tmp_path, args):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": []}))
    extra = ["--jwks", str(jwks)] if "user/*.rs" in args or "not an ods" in args else []
    assert runner.invoke(cli, ["client", "add", *args, *extra]).exit_code == 2


def test_a_private_key_is_never_registered(cli_env, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    from auth.keys import jwk_thumbprint, public_jwk

    key = ec.generate_private_key(ec.SECP384R1())
    jwk = public_jwk(key.public_key())
    private = {**jwk, "kid": jwk_thumbprint(jwk), "d": "c2VjcmV0"}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [private]}))
    result = runner.invoke(
        cli, ["client", "add", "--org", "HOS03", "--scope", "system/*.rs", "--jwks", str(path)]
    )
    assert result.exit_code == 2 and "private" in result.output


def test_keys_rotate_and_list(cli_env, bare_client, token_for):
    before = token_for("system")
    listed = runner.invoke(cli, ["keys", "list"])
    assert listed.exit_code == 0 and "current" in listed.output
    assert runner.invoke(cli, ["keys", "rotate"]).exit_code == 0
    listed = runner.invoke(cli, ["keys", "list"])
    assert "retired" in listed.output and "current" in listed.output
    # a token signed before the rotation still works until it expires
    assert bare_client.get("/fhir/Patient/x", headers=bearer(before)).status_code == 404


def test_demo_is_idempotent_and_everyone_can_sign_in(cli_env, engine, bare_client):
    first = runner.invoke(cli, ["demo"])
    assert first.exit_code == 0, first.output
    assert "grant_type=password -d username=dr.patel" in first.stdout
    assert "careregister client assertion --client-id demo-hospital-pas" in first.stdout

    def counts():
        with read_transaction(engine) as conn:
            return (
                conn.execute(select(func.count()).select_from(R)).scalar_one(),
                conn.execute(select(func.count()).select_from(user_table)).scalar_one(),
                conn.execute(select(func.count()).select_from(client_table)).scalar_one(),
            )

    loaded = counts()
    second = runner.invoke(cli, ["demo"])
    assert second.exit_code == 0 and "0 resource(s) written" in second.output
    assert counts() == loaded  # nothing new: no new versions, users or clients

    def login(username: str) -> dict[str, str]:
        form = {"grant_type": "password", "username": username, "password": "demo"}
        response = bare_client.post("/auth/token", data=form)
        assert response.status_code == 200, response.text
        return bearer(response.json()["access_token"])

    get = bare_client.get
    assert (
        get("/fhir/Observation/demo-hba1c-margaret-4", headers=login("dr.patel")).status_code == 200
    )
    carter = login("nurse.carter")
    assert get("/fhir/Condition/demo-t2dm-priya", headers=carter).status_code == 200
    assert get("/fhir/Condition/demo-t2dm-graham", headers=carter).status_code == 404
    okafor = login("dr.okafor")
    assert get("/fhir/Patient/demo-margaret-thompson", headers=okafor).status_code == 404
    margaret = login("margaret")
    assert get("/fhir/Observation/demo-hba1c-margaret-1", headers=margaret).status_code == 200
    assert get("/fhir/Patient/demo-david-hughes", headers=margaret).status_code == 404
    reviewer = login("reviewer")
    assert get("/fhir/Observation/demo-hba1c-margaret-1", headers=reviewer).status_code == 403
    assert get("/fhir/Organization/demo-diabetes-team", headers=reviewer).status_code == 200
    assert get("/fhir/Patient/demo-margaret-thompson", headers=login("admin")).status_code == 403
