"""The auth block of the register's settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from auth.jws import ASYMMETRIC_ALGORITHMS
from register.settings import Settings


def test_defaults() -> None:
    s = Settings()
    assert s.auth_allowed_algorithms == ["RS256", "RS384", "ES256", "ES384"]
    assert s.auth_signing_algorithm == "ES384"
    assert s.auth_clock_skew_seconds == 60
    assert s.auth_token_lifetime_seconds == 300
    assert s.auth_external_issuer is None and s.auth_external_jwks_url is None


@pytest.mark.parametrize("algs", ['["HS256"]', '["none"]', '["RS256","HS512"]', "[]", '["PS256"]'])
def test_symmetric_or_unknown_algorithms_are_refused_at_start_up(monkeypatch, algs) -> None:
    monkeypatch.setenv("REGISTER_AUTH_ALLOWED_ALGORITHMS", algs)
    with pytest.raises(ValidationError):
        Settings()


def test_every_algorithm_the_settings_allow_is_one_auth_verifies(monkeypatch) -> None:
    monkeypatch.setenv(
        "REGISTER_AUTH_ALLOWED_ALGORITHMS", '["RS256","RS384","RS512","ES256","ES384","ES512"]'
    )
    assert set(Settings().auth_allowed_algorithms) == ASYMMETRIC_ALGORITHMS


def test_external_issuer_and_jwks_url_go_together(monkeypatch) -> None:
    monkeypatch.setenv("REGISTER_AUTH_EXTERNAL_ISSUER", "https://idp.example")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("REGISTER_AUTH_EXTERNAL_JWKS_URL", "https://idp.example/jwks")
    assert Settings().auth_external_issuer == "https://idp.example"


def test_clock_skew_is_bounded(monkeypatch) -> None:
    monkeypatch.setenv("REGISTER_AUTH_CLOCK_SKEW_SECONDS", "3600")
    with pytest.raises(ValidationError):
        Settings()
