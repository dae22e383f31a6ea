"""The embedded authorization server: /auth/token (backend services and the demo login),
/auth/jwks, SMART discovery, and the signing key made on first start."""

from __future__ import annotations

import secrets
import stat
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from auth.client_assertion import CLIENT_ASSERTION_TYPE, client_jwks, sign_client_assertion
from register.access_clients import add_client, disable_client, put_user
from register.db import write_transaction
from tests.access.world import bearer
from tests.auth.helpers import segments, sign_raw

TOKEN_URL = "http://testserver/auth/token"


def _pem() -> bytes:
    return ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture
def client_key(engine) -> bytes:
    """A registered backend client ``hospital-pas`` of HOS03 (``system/*.rs system/Encounter.c``)
    and its private key."""
    pem = _pem()
    with write_transaction(engine) as conn:
        add_client(
            conn,
            organisation="HOS03",
            scope="system/*.rs system/Encounter.c",
            jwks=client_jwks(pem),
            client_id="hospital-pas",
        )
    return pem


def _ask(http, assertion: str, scope: str = "system/*.rs", **extra: str):
    form = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }
    return http.post("/auth/token", data=form)


def test_backend_services_token_acts_for_the_clients_organisation(bare_client, client_key):
    assertion = sign_client_assertion(
        client_id="hospital-pas", token_endpoint=TOKEN_URL, private_pem=client_key
    )
    response = _ask(bare_client, assertion, scope="system/*.cruds")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300
    # narrowed to what the client is registered for
    assert set(body["scope"].split()) == {"system/*.rs", "system/Encounter.c"}
    _, claims, _ = segments(body["access_token"])
    assert claims["role"] == "system" and claims["org"] == "HOS03"
    assert claims["client_id"] == claims["sub"] == "hospital-pas"
    # and it works on the FHIR API
    token = body["access_token"]
    assert bare_client.get("/fhir/Patient/nobody", headers=bearer(token)).status_code == 404
    refused = bare_client.post(
        "/fhir/Patient", json={"resourceType": "Patient"}, headers=bearer(token)
    )
    assert refused.status_code == 403  # system/Patient.c was not granted


def test_a_replayed_assertion_is_refused(bare_client, client_key):
    assertion = sign_client_assertion(
        client_id="hospital-pas", token_endpoint=TOKEN_URL, private_pem=client_key
    )
    assert _ask(bare_client, assertion).status_code == 200
    replay = _ask(bare_client, assertion)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_client"
    assert "replayed" in replay.json()["error_description"]


def _raw_assertion(pem: bytes, **overrides):
    key = serialization.load_pem_private_key(pem, password=None)
    jwk = client_jwks(pem)["keys"][0]
    now = int(time.time())
    claims = {
        "iss": "hospital-pas",
        "sub": "hospital-pas",
        "aud": TOKEN_URL,
        "jti": secrets.token_urlsafe(8),
        "iat": now,
        "exp": now + 240,
        **overrides,
    }
    return sign_raw({"alg": "ES384", "typ": "JWT", "kid": jwk["kid"]}, claims, key)


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": int(time.time()) + 3600},  # lives longer than five minutes
        {"aud": "http://testserver/fhir"},  # meant for another endpoint
        {"iss": "someone-else", "sub": "someone-else"},  # unknown client
        {"exp": int(time.time()) - 600, "iat": int(time.time()) - 700},  # expired
        {"sub": "another-client"},
    ],
)
def test_bad_assertions_are_invalid_client(bare_client, client_key, overrides):
    response = _ask(bare_client, _raw_assertion(client_key, **overrides))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


def test_an_assertion_signed_with_another_key_is_refused(bare_client, client_key):
    stranger = _pem()
    jwk = client_jwks(client_key)["keys"][0]
    key = serialization.load_pem_private_key(stranger, password=None)
    now = int(time.time())
    forged = sign_raw(
        {"alg": "ES384", "typ": "JWT", "kid": jwk["kid"]},
        {"iss": "hospital-pas", "sub": "hospital-pas", "aud": TOKEN_URL, "jti": "x",
         "exp": now + 60},
        key,
    )  # fmt: skip
    response = _ask(bare_client, forged)
    assert response.json()["error"] == "invalid_client"


def test_a_disabled_client_gets_no_token(bare_client, client_key, engine):
    with write_transaction(engine) as conn:
        assert disable_client(conn, "hospital-pas")
    assertion = sign_client_assertion(
        client_id="hospital-pas", token_endpoint=TOKEN_URL, private_pem=client_key
    )
    assert _ask(bare_client, assertion).json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("scope", "error"),
    [
        ("user/*.rs", "invalid_scope"),  # not registered
        ("system/Observation.dus", "invalid_scope"),  # malformed
        ("", "invalid_scope"),
        ("openid", "invalid_scope"),
    ],
)
def test_scopes_must_be_registered_and_well_formed(bare_client, client_key, scope, error):
    assertion = sign_client_assertion(
        client_id="hospital-pas", token_endpoint=TOKEN_URL, private_pem=client_key
    )
    assert _ask(bare_client, assertion, scope=scope).json()["error"] == error


def test_unsupported_grants_and_bodies(bare_client):
    response = bare_client.post("/auth/token", data={"grant_type": "authorization_code"})
    assert response.json()["error"] == "unsupported_grant_type"
    response = bare_client.post("/auth/token", json={"grant_type": "client_credentials"})
    assert response.json()["error"] == "invalid_request"


# --- the demo login (grant_type=password) -----------------------------------------------------


@pytest.fixture
def users(engine) -> None:
    with write_transaction(engine) as conn:
        put_user(
            conn,
            username="dr.h",
            password="pw-h",
            role="clinician",
            scope="user/*.cruds",
            fhir_user="Practitioner/h1",
            organisation="HOS03",
        )
        put_user(
            conn,
            username="pat",
            password="pw-p",
            role="patient",
            scope="patient/*.rs",
            fhir_user="Patient/p",
        )


def _login(http, username: str, password: str, **extra: str):
    return http.post(
        "/auth/token",
        data={"grant_type": "password", "username": username, "password": password, **extra},
    )


def test_people_sign_in_and_their_token_says_who_they_are(bare_client, users):
    response = _login(bare_client, "dr.h", "pw-h")
    assert response.status_code == 200, response.text
    _, claims, _ = segments(response.json()["access_token"])
    assert claims["role"] == "clinician"
    assert claims["fhirUser"] == "Practitioner/h1" and claims["org"] == "HOS03"
    assert claims["scope"] == "user/*.cruds"
    narrowed = _login(bare_client, "dr.h", "pw-h", scope="user/Observation.rs")
    assert narrowed.json()["scope"] == "user/Observation.rs"
    patient = _login(bare_client, "pat", "pw-p", scope="patient/*.cruds")
    assert patient.json()["scope"] == "patient/*.rs"  # no more than the user may have


@pytest.mark.parametrize(("username", "password"), [("dr.h", "wrong"), ("nobody", "pw-h")])
def test_wrong_passwords_and_unknown_users_are_the_same_answer(bare_client, users, username,
                                                              password):  # fmt: skip
    response = _login(bare_client, username, password)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "Unknown user or wrong password.",
    }


def test_break_glass_tokens_for_clinicians_only(bare_client, users):
    btg = _login(
        bare_client, "dr.h", "pw-h", purpose_of_use="BTG", break_glass_reason="Cardiac arrest"
    )
    _, claims, _ = segments(btg.json()["access_token"])
    assert claims["purpose_of_use"] == "BTG" and claims["break_glass_reason"] == "Cardiac arrest"
    no_reason = _login(bare_client, "dr.h", "pw-h", purpose_of_use="BTG")
    assert no_reason.json()["error"] == "invalid_request"
    patient = _login(bare_client, "pat", "pw-p", purpose_of_use="BTG", break_glass_reason="x")
    assert patient.json()["error"] == "invalid_request"


def test_the_login_can_be_switched_off(settings, engine, users):
    from fastapi.testclient import TestClient

    from register.app import create_app

    app = create_app(settings.model_copy(update={"auth_password_login": False}), engine=engine)
    with TestClient(app) as http:
        assert _login(http, "dr.h", "pw-h").json()["error"] == "unsupported_grant_type"
        config = http.get("/fhir/.well-known/smart-configuration").json()
        assert config["grant_types_supported"] == ["client_credentials"]


# --- keys and discovery ------------------------------------------------------------------------


def test_signing_key_is_made_on_first_start_and_kept_private(bare_client, settings):
    keys = settings.data_dir / "keys"
    files = list(keys.glob("*.json"))
    assert len(files) == 1
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_jwks_publishes_the_keys_tokens_are_signed_with(bare_client, app, token_for):
    token = token_for("system")
    header, _, _ = segments(token)
    jwks = bare_client.get("/auth/jwks").json()
    assert [k["kid"] for k in jwks["keys"]] == [header["kid"]]
    assert all("d" not in key for key in jwks["keys"])
    app.state.access.keys.rotate()
    rotated = bare_client.get("/auth/jwks").json()
    assert len(rotated["keys"]) == 2  # the retired key still verifies its tokens
    assert bare_client.get("/fhir/Patient/x", headers=bearer(token)).status_code == 404
    new_token = token_for("system")
    assert segments(new_token)[0]["kid"] != header["kid"]


def test_smart_configuration_lists_what_is_supported(bare_client):
    config = bare_client.get("/fhir/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == TOKEN_URL
    assert config["jwks_uri"] == "http://testserver/auth/jwks"
    assert config["issuer"] == "http://testserver/auth"
    assert "client_credentials" in config["grant_types_supported"]
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    assert "ES384" in config["token_endpoint_auth_signing_alg_values_supported"]
    assert "none" not in config["token_endpoint_auth_signing_alg_values_supported"]
    assert {"client-confidential-asymmetric", "permission-v2", "permission-v1"} <= set(
        config["capabilities"]
    )
    assert "system/*.rs" in config["scopes_supported"]
    assert "authorization_endpoint" not in config  # no app launch flow: not claimed
