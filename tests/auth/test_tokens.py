"""Issuing and verifying access tokens: claims, clock skew, issuers, principals."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from auth.errors import TokenError, TokenErrorReason
from auth.jwks import RemoteJwks
from auth.keys import KeyStore
from auth.principal import PurposeOfUse, Role
from auth.tokens import TokenIssuer, TokenVerifier, TrustedIssuer
from tests.auth.helpers import AUDIENCE, ISSUER, START, FakeClock, segments

EXTERNAL = "https://idp.example.nhs.uk"
EXTERNAL_JWKS = "https://idp.example.nhs.uk/.well-known/jwks.json"


def reason(call) -> TokenErrorReason:
    with pytest.raises(TokenError) as caught:
        call()
    return caught.value.reason


def test_issued_token_carries_the_register_claims(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    issued = issuer.issue(
        role=Role.CLINICIAN,
        subject="user-123",
        client_id="care-portal",
        scope="user/*.rs openid fhirUser",
        fhir_user="PractitionerRole/pr-9",
        organisation="RXR",
        purpose_of_use=PurposeOfUse.TREAT,
    )
    header, claims, _ = segments(issued.access_token)
    assert header == {"alg": "ES384", "kid": issued.kid, "typ": "at+jwt"}
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == "user-123"
    assert claims["iat"] == claims["nbf"] == int(START)
    assert claims["exp"] == int(START) + 300 == issued.expires_at
    assert claims["jti"] == issued.jti and len(issued.jti) >= 32
    assert claims["scope"] == "user/*.rs openid fhirUser"
    assert claims["fhirUser"] == "PractitionerRole/pr-9"
    assert claims["org"] == "RXR"
    assert claims["role"] == "clinician"
    assert claims["client_id"] == "care-portal"
    assert claims["purpose_of_use"] == "TREAT"
    assert "break_glass_reason" not in claims
    assert verifier.verify(issued.access_token) == claims
    assert issued.token_type == "Bearer" and issued.expires_in == 300


def test_every_token_gets_a_fresh_jti(clinician_token) -> None:
    assert len({segments(clinician_token())[1]["jti"] for _ in range(20)}) == 20


def test_issued_token_repr_hides_the_token(issuer: TokenIssuer) -> None:
    issued = issuer.issue(
        role=Role.PATIENT,
        subject="pat-1",
        client_id="nhs-app",
        scope="patient/*.rs",
        fhir_user="Patient/p-1",
    )
    assert issued.access_token not in repr(issued)


def test_verifier_builds_the_principal(verifier: TokenVerifier, clinician_token) -> None:
    principal = verifier.principal(clinician_token(purpose_of_use="TREAT"))
    assert principal.role is Role.CLINICIAN
    assert principal.fhir_user == "Practitioner/p-1"
    assert principal.organisation == "A81001"
    assert principal.client_id == "care-portal"
    assert principal.purpose_of_use is PurposeOfUse.TREAT
    assert str(principal.scopes) == "user/*.rs fhirUser openid"
    assert principal.token_id is not None


def test_issuer_refuses_claims_the_verifier_would_reject(issuer: TokenIssuer) -> None:
    with pytest.raises(ValueError, match="would reject"):
        issuer.issue(
            role=Role.CLINICIAN,
            subject="u",
            client_id="c",
            scope="user/*.rs",
            fhir_user="Practitioner/p",
        )  # no organisation
    with pytest.raises(ValueError):
        issuer.issue(role=Role.OPERATOR, subject="u", client_id="c", scope="system/*.rs")


def test_lifetime_can_be_shortened_but_not_lengthened(issuer: TokenIssuer) -> None:
    kwargs: dict[str, Any] = dict(
        role=Role.SYSTEM,
        subject="lab-feed",
        client_id="lab-feed",
        scope="system/Observation.c",
        organisation="RXR",
    )
    assert issuer.issue(**kwargs, lifetime=60).expires_in == 60
    assert issuer.issue(**kwargs, lifetime=86400).expires_in == 300


@pytest.mark.parametrize(
    ("seconds_later", "accepted"),
    [(299, True), (300 + 59, True), (300 + 60, False)],
)
def test_expiry_allows_the_configured_skew_and_no_more(
    verifier: TokenVerifier,
    clock: FakeClock,
    clinician_token,
    seconds_later: int,
    accepted: bool,
) -> None:
    token = clinician_token()
    clock.advance(seconds_later)
    if accepted:
        assert verifier.verify(token)["sub"] == "user-123"
    else:
        assert reason(lambda: verifier.verify(token)) is TokenErrorReason.EXPIRED


def test_a_token_from_a_clock_slightly_ahead_is_accepted(
    verifier: TokenVerifier, clock: FakeClock, clinician_token
) -> None:
    clock.advance(50)
    token = clinician_token()  # issuer 50 s ahead of the verifier
    clock.advance(-50)
    assert verifier.verify(token)["sub"] == "user-123"


def test_audience_list_containing_ours_is_accepted(key_store: KeyStore, clock: FakeClock) -> None:
    issuer = TokenIssuer(key_store, issuer=ISSUER, audience=AUDIENCE, clock=clock)
    verifier = TokenVerifier(
        [TrustedIssuer(ISSUER, key_store)],
        audience=[AUDIENCE, "https://other.example/fhir"],
        clock=clock,
    )
    token = issuer.issue(
        role=Role.PATIENT, subject="p", client_id="app", scope="patient/*.rs", fhir_user="Patient/p"
    ).access_token
    assert verifier.verify(token)["aud"] == AUDIENCE


def test_verifier_refuses_to_be_configured_with_symmetric_algorithms(key_store: KeyStore) -> None:
    for bad in (["HS256"], ["RS256", "none"], []):
        with pytest.raises(ValueError):
            TokenVerifier(
                [TrustedIssuer(ISSUER, key_store)], audience=AUDIENCE, allowed_algorithms=bad
            )


def test_verifier_refuses_a_large_clock_skew(key_store: KeyStore) -> None:
    with pytest.raises(ValueError):
        TokenVerifier([TrustedIssuer(ISSUER, key_store)], audience=AUDIENCE, clock_skew=3600)


def test_max_lifetime_limits_external_tokens(key_store: KeyStore, clock: FakeClock) -> None:
    issuer = TokenIssuer(key_store, issuer=ISSUER, audience=AUDIENCE, lifetime=3600, clock=clock)
    strict = TokenVerifier(
        [TrustedIssuer(ISSUER, key_store)], audience=AUDIENCE, max_lifetime=900, clock=clock
    )
    token = issuer.issue(
        role=Role.PATIENT, subject="p", client_id="app", scope="patient/*.rs", fhir_user="Patient/p"
    ).access_token
    assert reason(lambda: strict.verify(token)) is TokenErrorReason.LIFETIME_TOO_LONG


class TestExternalIdentityProvider:
    """Tokens from an external IdP are verified with its JWKS URL, and only with it."""

    @pytest.fixture
    def idp_keys(self, tmp_path, clock: FakeClock) -> KeyStore:
        return KeyStore(tmp_path / "idp-keys", algorithm="ES256", clock=clock)

    @pytest.fixture
    def fetches(self) -> list[str]:
        return []

    @pytest.fixture
    def verifier(
        self, key_store: KeyStore, idp_keys: KeyStore, clock: FakeClock, fetches: list[str]
    ) -> TokenVerifier:
        def handler(request: httpx.Request) -> httpx.Response:
            fetches.append(str(request.url))
            return httpx.Response(200, json=idp_keys.jwks())

        remote = RemoteJwks(
            EXTERNAL_JWKS, client=httpx.Client(transport=httpx.MockTransport(handler)), clock=clock
        )
        return TokenVerifier(
            [TrustedIssuer(ISSUER, key_store), TrustedIssuer(EXTERNAL, remote)],
            audience=AUDIENCE,
            clock=clock,
        )

    def idp_token(self, idp_keys: KeyStore, clock: FakeClock, iss: str = EXTERNAL) -> str:
        idp = TokenIssuer(idp_keys, issuer=iss, audience=AUDIENCE, clock=clock)
        return idp.issue(
            role=Role.CLINICIAN,
            subject="nhs-cis2-555",
            client_id="cis2",
            scope="user/*.rs",
            fhir_user="Practitioner/p-5",
            organisation="RXR",
        ).access_token

    def test_external_token_verifies_with_the_fetched_jwks(
        self, verifier, idp_keys, clock, fetches
    ) -> None:
        token = self.idp_token(idp_keys, clock)
        assert verifier.verify(token)["iss"] == EXTERNAL
        assert verifier.verify(token)["iss"] == EXTERNAL
        assert fetches == [EXTERNAL_JWKS]  # cached

    def test_external_key_cannot_vouch_for_the_embedded_issuer(
        self, verifier, idp_keys, clock
    ) -> None:
        forged = self.idp_token(idp_keys, clock, iss=ISSUER)
        assert reason(lambda: verifier.verify(forged)) is TokenErrorReason.UNKNOWN_KID

    def test_untrusted_issuer_is_refused_before_any_fetch(
        self, verifier, idp_keys, clock, fetches
    ) -> None:
        token = self.idp_token(idp_keys, clock, iss="https://evil.example")
        assert reason(lambda: verifier.verify(token)) is TokenErrorReason.WRONG_ISSUER
        assert fetches == []


def test_an_expired_token_costs_no_signature_check(verifier, clinician_token, clock, monkeypatch):
    from auth import jws

    token = clinician_token()
    clock.advance(361)
    calls = []
    monkeypatch.setattr(jws, "verify", lambda *a, **k: calls.append(1))
    with pytest.raises(TokenError) as caught:
        verifier.verify(token)
    assert caught.value.reason is TokenErrorReason.EXPIRED
    assert calls == []
