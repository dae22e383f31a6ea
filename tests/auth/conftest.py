"""Fixtures for the auth tests: a moving clock, a key store in a temp dir, issuer and verifier."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from auth.keys import KeyStore
from auth.tokens import TokenIssuer, TokenVerifier, TrustedIssuer
from tests.auth.helpers import AUDIENCE, ISSUER, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keys"


@pytest.fixture
def key_store(key_dir: Path, clock: FakeClock) -> KeyStore:
    # verify_grace = token lifetime (300) + clock skew (60)
    return KeyStore(key_dir, algorithm="ES384", verify_grace=360, clock=clock)


@pytest.fixture
def issuer(key_store: KeyStore, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(key_store, issuer=ISSUER, audience=AUDIENCE, lifetime=300, clock=clock)


@pytest.fixture
def verifier(key_store: KeyStore, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(
        [TrustedIssuer(ISSUER, key_store)], audience=AUDIENCE, clock_skew=60, clock=clock
    )


@pytest.fixture
def clinician_token(issuer: TokenIssuer) -> Callable[..., str]:
    """Issue a valid clinician token; keyword arguments override the defaults."""

    def make(**overrides: Any) -> str:
        fields: dict[str, Any] = {
            "role": "clinician",
            "subject": "user-123",
            "client_id": "care-portal",
            "scope": "user/*.rs openid fhirUser",
            "fhir_user": "Practitioner/p-1",
            "organisation": "A81001",
        }
        fields.update(overrides)
        return issuer.issue(**fields).access_token

    return make
