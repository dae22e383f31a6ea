"""The JWS guard: which keys may verify which algorithms, before python-jose sees anything."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from auth import jws
from auth.errors import TokenError, TokenErrorReason
from auth.keys import generate_private_key, public_jwk


@pytest.fixture(scope="module")
def p256() -> dict[str, str]:
    return public_jwk(generate_private_key("ES256").public_key())


@pytest.fixture(scope="module")
def p384() -> dict[str, str]:
    return public_jwk(generate_private_key("ES384").public_key())


@pytest.fixture(scope="module")
def rsa_key() -> dict[str, str]:
    return public_jwk(generate_private_key("RS384").public_key())


def mismatch(key: dict, alg: str) -> None:
    with pytest.raises(TokenError) as caught:
        jws.public_jwk_for(key, alg)
    assert caught.value.reason is TokenErrorReason.KEY_MISMATCH


def test_key_type_must_fit_the_algorithm(p384, rsa_key) -> None:
    mismatch(p384, "RS384")
    mismatch(rsa_key, "ES384")
    mismatch({"kty": "oct", "k": "c2VjcmV0"}, "ES384")


def test_curve_must_fit_the_algorithm_even_without_an_alg_member(p256, p384) -> None:
    mismatch(p256, "ES384")
    mismatch(p384, "ES256")
    assert jws.public_jwk_for(p384, "ES384")["crv"] == "P-384"


def test_alg_use_and_key_ops_members_are_respected(p384) -> None:
    mismatch({**p384, "alg": "ES256"}, "ES384")
    mismatch({**p384, "use": "enc"}, "ES384")
    mismatch({**p384, "key_ops": ["encrypt"]}, "ES384")
    assert jws.public_jwk_for({**p384, "use": "sig", "key_ops": ["verify"]}, "ES384")


def test_short_rsa_keys_are_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    mismatch(public_jwk(weak.public_key()), "RS256")


def test_private_members_are_dropped(p384) -> None:
    public = jws.public_jwk_for({**p384, "d": "secret-part", "kid": "k"}, "ES384")
    assert "d" not in public and public["kid"] == "k"


@pytest.mark.parametrize("alg", [None, 1, "none", "HS256", "PS256", "EdDSA", "RS384"])
def test_check_algorithm_refuses_anything_not_allowed(alg) -> None:
    with pytest.raises(TokenError) as caught:
        jws.check_algorithm({"alg": alg}, allowed={"ES384", "HS256", "none"})
    assert caught.value.reason is TokenErrorReason.ALGORITHM_NOT_ALLOWED


def test_sign_refuses_symmetric_algorithms() -> None:
    with pytest.raises(ValueError):
        jws.sign({"a": 1}, b"secret", alg="HS256", kid="k")


def test_verify_refuses_symmetric_algorithms_even_if_called_directly(p384) -> None:
    with pytest.raises(TokenError) as caught:
        jws.verify("e30.e30.c2ln", {"kty": "oct", "k": "c2VjcmV0"}, "HS256")
    assert caught.value.reason is TokenErrorReason.ALGORITHM_NOT_ALLOWED
