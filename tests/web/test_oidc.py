"""Signing in with an external OpenID Connect provider (NHS login style), against a fake one.

The provider's token endpoint and JWKS are served by an ``httpx.MockTransport``; the id_token is
really signed (ES256) and really verified by the register (signature against the JWKS, issuer,
audience, expiry, nonce).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from auth import jws
from auth.jwks import RemoteJwks
from auth.keys import generate_private_key, jwk_thumbprint, public_jwk
from register.app import create_app
from register.demo import load_demo
from register.web import oidc

ISSUER = "https://login.example.nhs.uk"
CLIENT_ID = "shared-care-register"


class FakeProvider:
    """The provider's side: a key pair, its JWKS and a token endpoint that returns id_tokens."""

    def __init__(self) -> None:
        self.key = generate_private_key("ES256")
        self.jwk = {**public_jwk(self.key.public_key()), "alg": "ES256", "use": "sig"}
        self.jwk["kid"] = jwk_thumbprint(self.jwk)
        self.claims: dict[str, object] = {}
        self.token_requests: list[dict[str, list[str]]] = []

    def id_token(self, **overrides: object) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": CLIENT_ID,
            "sub": "nhs-login-subject-1",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "nhs_number": "9990000018",
            "name": "Margaret Thompson",
            **self.claims,
            **overrides,
        }
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return jws.sign(claims, pem, alg="ES256", kid=self.jwk["kid"], typ="JWT")

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jwks":
            return httpx.Response(200, json={"keys": [self.jwk]})
        if request.url.path == "/token":
            form = parse_qs(request.content.decode())
            self.token_requests.append(form)
            return httpx.Response(200, json={"id_token": self.id_token(nonce=self.nonce)})
        return httpx.Response(404)

    nonce = ""


@pytest.fixture
def provider(monkeypatch) -> FakeProvider:  # type: ignore[no-untyped-def]
    fake = FakeProvider()
    transport = httpx.MockTransport(fake.handle)
    monkeypatch.setattr(oidc, "http_client", lambda: httpx.Client(transport=transport))
    keys = RemoteJwks(f"{ISSUER}/jwks", client=httpx.Client(transport=transport))
    monkeypatch.setitem(oidc._JWKS, f"{ISSUER}/jwks", keys)
    return fake


@pytest.fixture
def oidc_client(engine, settings, provider):  # type: ignore[no-untyped-def]
    configured = settings.model_copy(
        update={
            "web_oidc_issuer": ISSUER,
            "web_oidc_client_id": CLIENT_ID,
            "web_oidc_authorization_endpoint": f"{ISSUER}/authorize",
            "web_oidc_token_endpoint": f"{ISSUER}/token",
            "web_oidc_jwks_url": f"{ISSUER}/jwks",
        }
    )
    load_demo(engine, configured, "http://testserver/fhir")
    with TestClient(create_app(configured, engine=engine), base_url="http://testserver") as client:
        yield client


def _start(client: TestClient, provider: FakeProvider) -> dict[str, str]:
    assert "Continue with NHS login" in client.get("/sign-in").text
    answer = client.get("/sign-in/oidc", follow_redirects=False)
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{ISSUER}/authorize"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["client_id"] == CLIENT_ID and query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == "http://testserver/sign-in/oidc/callback"
    provider.nonce = query["nonce"]
    return query


def test_a_verified_id_token_signs_the_patient_in_to_their_own_record(
    oidc_client, provider
) -> None:
    query = _start(oidc_client, provider)
    answer = oidc_client.get(
        f"/sign-in/oidc/callback?code=abc&state={query['state']}", follow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/my"
    sent = provider.token_requests[0]
    assert sent["code"] == ["abc"] and sent["code_verifier"][0]  # PKCE verifier sent
    assert "Type 2 diabetes" in oidc_client.get("/my").text


def test_a_wrong_state_is_refused(oidc_client, provider) -> None:
    _start(oidc_client, provider)
    answer = oidc_client.get("/sign-in/oidc/callback?code=abc&state=forged")
    assert answer.status_code == 400 and "careregister_session" not in answer.headers.get(
        "set-cookie", ""
    )
    assert provider.token_requests == []


@pytest.mark.parametrize(
    "bad",
    [{"aud": "someone-else"}, {"iss": "https://evil.example"}, {"exp": 1000}, {"nonce": "x"}],
    ids=["audience", "issuer", "expired", "nonce"],
)
def test_an_id_token_that_does_not_verify_is_refused(oidc_client, provider, bad) -> None:
    query = _start(oidc_client, provider)
    provider.claims = bad
    if "nonce" in bad:
        provider.nonce = "x"
    answer = oidc_client.get(f"/sign-in/oidc/callback?code=abc&state={query['state']}")
    assert answer.status_code == 400
    assert oidc_client.get("/my", follow_redirects=False).status_code == 303


def test_a_patient_not_on_the_register_is_not_signed_in(oidc_client, provider) -> None:
    query = _start(oidc_client, provider)
    provider.claims = {"nhs_number": "9434765919"}
    answer = oidc_client.get(f"/sign-in/oidc/callback?code=abc&state={query['state']}")
    assert answer.status_code == 400 and "could not find your record" in answer.text
