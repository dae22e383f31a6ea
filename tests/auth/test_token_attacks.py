"""Attacks on access tokens: each must be refused, with the right reason, leaking nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from auth.errors import TokenError, TokenErrorReason
from auth.jws import MAX_TOKEN_CHARS
from auth.keys import KeyStore, generate_private_key, jwk_thumbprint, public_jwk
from auth.tokens import TokenVerifier
from tests.auth.helpers import (
    AUDIENCE,
    ISSUER,
    START,
    FakeClock,
    b64url_json,
    hs_token,
    reencode,
    segments,
    sign_raw,
)


def refused(verifier: TokenVerifier, token: str) -> TokenErrorReason:
    """Verify ``token`` expecting refusal; check the error says nothing about the token."""
    with pytest.raises(TokenError) as caught:
        verifier.verify(token)
    error = caught.value
    text = f"{error} {error!r} {error.args}"
    for part in token.split("."):
        if len(part) > 8:
            assert part not in text
    assert error.__cause__ is None or not isinstance(error.__cause__, TokenError)
    return error.reason


def valid_claims(**overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-123",
        "iat": int(START),
        "nbf": int(START),
        "exp": int(START) + 300,
        "jti": "j-1",
        "scope": "user/*.cruds",
        "role": "admin",
        "client_id": "care-portal",
    }
    claims.update(overrides)
    return claims


@pytest.fixture
def token(clinician_token: Callable[..., str]) -> str:
    return clinician_token()


@pytest.fixture
def sign_as_issuer(key_store: KeyStore) -> Callable[[dict[str, Any]], str]:
    """Sign arbitrary claims with the issuer's real current key (to isolate claim checks)."""
    current = key_store.current()
    private = serialization.load_pem_private_key(current.private_pem, password=None)

    def sign(claims: dict[str, Any]) -> str:
        return sign_raw({"alg": "ES384", "kid": current.kid}, claims, private)

    return sign


# -- algorithm attacks -----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
def test_alg_none_is_refused(verifier: TokenVerifier, token: str, alg: str) -> None:
    header, claims, _ = segments(token)
    unsigned = f"{b64url_json({**header, 'alg': alg})}.{b64url_json(claims)}."
    assert refused(verifier, unsigned) is TokenErrorReason.MALFORMED  # empty signature
    with_junk = unsigned + "c2lnbmF0dXJl"
    assert refused(verifier, with_junk) is TokenErrorReason.ALGORITHM_NOT_ALLOWED


def test_missing_alg_is_refused(verifier: TokenVerifier, token: str) -> None:
    header, _, _ = segments(token)
    del header["alg"]
    assert refused(verifier, reencode(token, header=header)) is (
        TokenErrorReason.ALGORITHM_NOT_ALLOWED
    )


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_signed_with_the_public_key_as_secret_is_refused(
    verifier: TokenVerifier, key_store: KeyStore, alg: str
) -> None:
    """Algorithm confusion: the attacker knows the public key (it is published) and uses its
    PEM, DER or JWK text as an HMAC secret, hoping the verifier feeds the same bytes to HMAC."""
    current = key_store.current()
    private = serialization.load_pem_private_key(current.private_pem, password=None)
    public = private.public_key()
    secrets = [
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        str(current.public_jwk()).encode(),
    ]
    for secret in secrets:
        forged = hs_token({"alg": alg, "typ": "JWT", "kid": current.kid}, valid_claims(), secret)
        assert refused(verifier, forged) is TokenErrorReason.ALGORITHM_NOT_ALLOWED


def test_algorithm_allow_list_is_enforced(
    key_store: KeyStore, clock: FakeClock, token: str
) -> None:
    from auth.tokens import TrustedIssuer

    rs_only = TokenVerifier(
        [TrustedIssuer(ISSUER, key_store)],
        audience=AUDIENCE,
        allowed_algorithms=["RS384"],
        clock=clock,
    )
    assert refused(rs_only, token) is TokenErrorReason.ALGORITHM_NOT_ALLOWED  # ES384 token


def test_alg_swapped_to_another_family_is_refused(verifier: TokenVerifier, token: str) -> None:
    header, _, _ = segments(token)
    swapped = reencode(token, header={**header, "alg": "RS384"})  # kid names an EC key
    assert refused(verifier, swapped) is TokenErrorReason.KEY_MISMATCH


def test_alg_swapped_to_another_curve_is_refused(verifier: TokenVerifier, token: str) -> None:
    header, _, _ = segments(token)
    swapped = reencode(token, header={**header, "alg": "ES256"})  # kid names a P-384 key
    assert refused(verifier, swapped) is TokenErrorReason.KEY_MISMATCH


# -- keys the token brings itself ------------------------------------------------------------


def test_key_embedded_in_the_header_is_ignored(verifier: TokenVerifier) -> None:
    attacker = generate_private_key("ES384")
    jwk = public_jwk(attacker.public_key())
    kid = jwk_thumbprint(jwk)
    forged = sign_raw(
        {"alg": "ES384", "typ": "JWT", "kid": kid, "jwk": jwk}, valid_claims(), attacker
    )
    assert refused(verifier, forged) is TokenErrorReason.UNKNOWN_KID
    via_jku = sign_raw(
        {"alg": "ES384", "kid": kid, "jku": "https://evil.example/jwks"}, valid_claims(), attacker
    )
    assert refused(verifier, via_jku) is TokenErrorReason.UNKNOWN_KID


def test_attacker_key_reusing_our_kid_fails_the_signature(
    verifier: TokenVerifier, key_store: KeyStore
) -> None:
    attacker = generate_private_key("ES384")
    forged = sign_raw({"alg": "ES384", "kid": key_store.current().kid}, valid_claims(), attacker)
    assert refused(verifier, forged) is TokenErrorReason.BAD_SIGNATURE


def test_unknown_kid_is_refused(verifier: TokenVerifier, token: str) -> None:
    header, _, _ = segments(token)
    assert refused(verifier, reencode(token, header={**header, "kid": "no-such-key"})) is (
        TokenErrorReason.UNKNOWN_KID
    )


def test_missing_kid_is_refused(verifier: TokenVerifier, token: str) -> None:
    header, _, _ = segments(token)
    del header["kid"]
    assert refused(verifier, reencode(token, header=header)) is TokenErrorReason.MISSING_KID


# -- tampering -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"role": "admin"},
        {"org": "RXR"},
        {"fhirUser": "Practitioner/someone-else"},
        {"scope": "user/*.cruds"},
        {"exp": int(START) + 86400},
        {"sub": "user-124"},
    ],
)
def test_tampered_payload_is_refused(verifier: TokenVerifier, token: str, change: dict) -> None:
    _, claims, _ = segments(token)
    assert refused(verifier, reencode(token, claims={**claims, **change})) is (
        TokenErrorReason.BAD_SIGNATURE
    )


def test_tampered_signature_is_refused(verifier: TokenVerifier, token: str) -> None:
    head, body, sig = token.split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    assert refused(verifier, f"{head}.{body}.{flipped}") is TokenErrorReason.BAD_SIGNATURE


def test_signature_from_another_token_is_refused(verifier: TokenVerifier, clinician_token) -> None:
    first, second = clinician_token(), clinician_token(subject="user-999")
    spliced = ".".join(second.split(".")[:2] + first.split(".")[2:])
    assert refused(verifier, spliced) is TokenErrorReason.BAD_SIGNATURE


# -- claims ----------------------------------------------------------------------------------


def test_expired_token_is_refused(verifier: TokenVerifier, clock: FakeClock, token: str) -> None:
    clock.advance(300 + 60)
    assert refused(verifier, token) is TokenErrorReason.EXPIRED


def test_not_yet_valid_token_is_refused(
    verifier: TokenVerifier, clock: FakeClock, key_store: KeyStore, clinician_token
) -> None:
    clock.advance(61)
    early = clinician_token()  # issued (nbf, iat) 61 s in the verifier's future
    clock.advance(-61)
    assert refused(verifier, early) is TokenErrorReason.NOT_YET_VALID


def test_token_issued_in_the_future_is_refused(verifier: TokenVerifier, sign_as_issuer) -> None:
    claims = valid_claims(iat=int(START) + 120, role="patient", fhirUser="Patient/p")
    del claims["nbf"]
    assert refused(verifier, sign_as_issuer(claims)) is TokenErrorReason.ISSUED_IN_FUTURE


@pytest.mark.parametrize(
    "aud", ["https://other-register.example/fhir", ["https://x.example"], [], 42, None]
)
def test_wrong_audience_is_refused(verifier: TokenVerifier, sign_as_issuer, aud: Any) -> None:
    claims = valid_claims(aud=aud)
    if aud is None:
        del claims["aud"]
    forged = sign_as_issuer(claims)
    expected = TokenErrorReason.MISSING_CLAIM if aud is None else TokenErrorReason.WRONG_AUDIENCE
    assert refused(verifier, forged) is expected


def test_wrong_issuer_is_refused(verifier: TokenVerifier, sign_as_issuer) -> None:
    for iss in ("https://evil.example/auth", ISSUER + "/", None, 7):
        assert refused(verifier, sign_as_issuer(valid_claims(iss=iss))) is (
            TokenErrorReason.WRONG_ISSUER
        )


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "jti"])
def test_missing_required_claims_are_refused(
    verifier: TokenVerifier, sign_as_issuer, missing: str
) -> None:
    claims = valid_claims()
    del claims[missing]
    assert refused(verifier, sign_as_issuer(claims)) is TokenErrorReason.MISSING_CLAIM


@pytest.mark.parametrize("exp", ["9999999999", True, float("inf"), float("nan"), [1]])
def test_non_numeric_times_are_refused(verifier: TokenVerifier, sign_as_issuer, exp: Any) -> None:
    assert refused(verifier, sign_as_issuer(valid_claims(exp=exp))) is (
        TokenErrorReason.INVALID_CLAIM
    )


# -- shape -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "not-a-token",
        "a.b",
        "a.b.c.d.e",  # a JWE
        "!!!.???.###",
        "e30.e30.",  # empty signature
        "W10.e30.c2ln",  # header is a JSON array
        "x" * (MAX_TOKEN_CHARS + 1),
    ],
)
def test_malformed_tokens_are_refused(verifier: TokenVerifier, junk: str) -> None:
    assert refused(verifier, junk) is TokenErrorReason.MALFORMED


def test_crit_header_is_refused(verifier: TokenVerifier, token: str) -> None:
    header, _, _ = segments(token)
    assert refused(verifier, reencode(token, header={**header, "crit": ["exp"]})) is (
        TokenErrorReason.MALFORMED
    )


def test_wrong_typ_is_refused(verifier: TokenVerifier, token: str) -> None:
    header, _, _ = segments(token)
    assert refused(verifier, reencode(token, header={**header, "typ": "dpop+jwt"})) is (
        TokenErrorReason.WRONG_TYPE
    )
