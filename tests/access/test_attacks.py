"""Attacks over HTTP, each answered 401, 403 or 404 with nothing served.

Forged tokens (``alg: none``, HS256 keyed with the public key, expired, not yet valid, wrong
audience, wrong issuer, unknown key, tampered payload), and valid tokens reaching for what they
may not see: a patient reaching another patient, a clinician of an unrelated organisation, by
read, search, history, transaction and batch entries, and writes.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.access.world import World, bearer, observation
from tests.auth.helpers import b64url_json, hs_token, reencode, segments, sign_raw

SECRET_NAME = "SecretQfamily"  # Patient/q's family name: never in a refused answer


@pytest.fixture
def world(bare_client, token_for) -> World:
    return World(bare_client, token_for).build()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "http://testserver/auth",
        "aud": "http://testserver/fhir",
        "sub": "mallory",
        "jti": secrets.token_urlsafe(8),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "role": "clinician",
        "client_id": "evil",
        "scope": "user/*.cruds",
        "fhirUser": "Practitioner/m",
        "org": "GP001",  # the organisation that recorded everything
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _signing_key(app: Any) -> tuple[Any, str, str]:
    key = app.state.access.keys.current()
    private = serialization.load_pem_private_key(key.private_pem, password=None)
    return private, key.kid, key.alg


def _forged(app: Any, attack: str) -> str:
    private, kid, alg = _signing_key(app)
    header = {"alg": alg, "typ": "at+jwt", "kid": kid}
    if attack == "alg-none":
        return f"{b64url_json({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{b64url_json(_claims())}."
    if attack == "hs256-public-key":
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hs_token({"alg": "HS256", "typ": "JWT", "kid": kid}, _claims(), public_pem)
    if attack == "expired":
        past = int(time.time()) - 3600
        return sign_raw(header, _claims(iat=past - 300, nbf=past - 300, exp=past), private)
    if attack == "not-yet-valid":
        later = int(time.time()) + 3600
        return sign_raw(header, _claims(iat=later, nbf=later, exp=later + 300), private)
    if attack == "wrong-audience":
        return sign_raw(header, _claims(aud="https://other.example/fhir"), private)
    if attack == "wrong-issuer":
        return sign_raw(header, _claims(iss="https://evil.example/auth"), private)
    if attack == "unknown-kid":
        stranger = ec.generate_private_key(ec.SECP384R1())
        return sign_raw({**header, "kid": "not-a-key-we-know"}, _claims(), stranger)
    if attack == "foreign-key-known-kid":
        stranger = ec.generate_private_key(ec.SECP384R1())
        return sign_raw(header, _claims(), stranger)
    if attack == "tampered-payload":
        honest = app.state.access.endpoints("http://testserver/fhir").issuer.issue(
            role="clinician",
            subject="mallory",
            client_id="app",
            scope="user/*.cruds",
            fhir_user="Practitioner/m",
            organisation="OTH04",  # an organisation with no relationship to anyone
        )
        _, claims, _ = segments(honest.access_token)
        return reencode(honest.access_token, claims={**claims, "org": "GP001"})
    if attack == "operator-role":
        return sign_raw(header, _claims(role="operator"), private)
    raise AssertionError(attack)


TOKEN_ATTACKS = [
    "alg-none",
    "hs256-public-key",
    "expired",
    "not-yet-valid",
    "wrong-audience",
    "wrong-issuer",
    "unknown-kid",
    "foreign-key-known-kid",
    "tampered-payload",
    "operator-role",
]


@pytest.mark.parametrize("attack", TOKEN_ATTACKS)
def test_forged_tokens_are_refused_with_401_and_nothing_served(world, app, attack):
    token = _forged(app, attack)
    for method, url, body in (
        ("GET", "/fhir/Patient/q", None),
        ("GET", "/fhir/Observation?_id=obs-q", None),
        ("GET", "/fhir/_history", None),
        ("POST", "/fhir/Observation", observation("q")),
    ):
        response = world.http.request(method, url, json=body, headers=bearer(token))
        assert response.status_code == 401, (attack, url, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert response.json()["resourceType"] == "OperationOutcome"
        assert SECRET_NAME not in response.text
    # ... and nothing was written by the forged POSTs
    obs = world.http.get("/fhir/Observation/_history", headers=world.as_("gp_system")).json()
    assert len(obs.get("entry", [])) == 2  # obs-p and obs-q, as built


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Bearer a.b.c"},
    ],
)
def test_missing_or_malformed_credentials_are_401(world, headers):
    response = world.http.get("/fhir/Patient/q", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"


def test_metadata_and_smart_configuration_need_no_token(world):
    assert world.http.get("/fhir/metadata").status_code == 200
    assert world.http.get("/fhir/.well-known/smart-configuration").status_code == 200
    assert world.http.post("/fhir/metadata").status_code == 401  # only GET is public


# --- valid tokens reaching too far -------------------------------------------------------------

REACHES = {
    "read": ("GET", "/fhir/Observation/obs-q", None),
    "vread": ("GET", "/fhir/Observation/obs-q/_history/1", None),
    "history": ("GET", "/fhir/Observation/obs-q/_history", None),
    "read-patient": ("GET", "/fhir/Patient/q", None),
    "patient-history": ("GET", "/fhir/Patient/q/_history", None),
}


@pytest.mark.parametrize("who", ["patient_p", "other_clinician", "hosp_system", "hosp_clinician"])
@pytest.mark.parametrize("reach", sorted(REACHES))
def test_reading_another_patients_record_is_404(world, who, reach):
    method, url, body = REACHES[reach]
    response = world.http.request(method, url, json=body, headers=world.as_(who))
    assert response.status_code == 404
    assert SECRET_NAME not in response.text and "48.0" not in response.text


@pytest.mark.parametrize("who", ["patient_p", "other_clinician"])
def test_searches_leave_another_patients_data_out_silently(world, who):
    for url in ("/fhir/Observation?_id=obs-q", "/fhir/Patient?_id=q", "/fhir/_history"):
        bundle = world.http.get(url, headers=world.as_(who)).json()
        assert bundle["resourceType"] == "Bundle"
        ids = [e["resource"]["id"] for e in bundle.get("entry", []) if "resource" in e]
        assert "obs-q" not in ids and "q" not in ids
        if bundle["type"] == "searchset":  # the total counts only what may be seen
            assert bundle["total"] == len(bundle.get("entry", []))


@pytest.mark.parametrize("who", ["patient_p", "other_clinician"])
@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_bundle_entries_cannot_reach_another_patient(world, who, kind):
    bundle = {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"request": {"method": "GET", "url": "Observation/obs-q"}},
            {"request": {"method": "GET", "url": "Patient/q/_history"}},
        ],
    }
    response = world.http.post("/fhir", json=bundle, headers=world.as_(who))
    if kind == "transaction":
        assert response.status_code == 404
    else:
        statuses = [e["response"]["status"][:3] for e in response.json()["entry"]]
        assert statuses == ["404", "404"]
    assert SECRET_NAME not in response.text


def test_a_patient_cannot_write_into_another_patients_record(world):
    response = world.post("patient_p", observation("q"))
    assert response.status_code == 403
    own = world.post("patient_p", observation("p"))
    assert own.status_code == 201


def test_unrelated_clinicians_cannot_change_or_delete_records(world):
    headers = world.as_("other_clinician")
    update = world.http.put(
        "/fhir/Observation/obs-q", json={**observation("q", 99), "id": "obs-q"}, headers=headers
    )
    assert update.status_code == 404
    patch = world.http.patch(
        "/fhir/Observation/obs-q",
        content=b'[{"op": "replace", "path": "/status", "value": "cancelled"}]',
        headers={**headers, "Content-Type": "application/json-patch+json"},
    )
    assert patch.status_code == 404
    assert world.http.delete("/fhir/Observation/obs-q", headers=headers).status_code == 204
    create = world.post("other_clinician", observation("q"))
    assert create.status_code == 403
    transaction = world.http.post(
        "/fhir",
        json={
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": {**observation("q", 99), "id": "obs-q"},
                    "request": {"method": "PUT", "url": "Observation/obs-q"},
                }
            ],
        },
        headers=headers,
    )
    assert transaction.status_code == 404
    # Nothing changed: the GP still sees version 1.
    stored = world.http.get("/fhir/Observation/obs-q", headers=world.as_("gp_system"))
    assert stored.status_code == 200 and stored.json()["meta"]["versionId"] == "1"


def test_an_encounter_elsewhere_does_not_open_the_record(world):
    # The hospital's system records an attendance "at the GP practice": not its organisation.
    response = world.post(
        "hosp_system",
        {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "Patient/q"},
            "serviceProvider": {"reference": "Organization/gp"},
        },
    )
    assert response.status_code == 403
    assert world.http.get("/fhir/Patient/q", headers=world.as_("hosp_system")).status_code == 404
