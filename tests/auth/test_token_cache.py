"""Verified tokens are remembered exactly as long as verification would accept them again."""

from __future__ import annotations

import pytest

from auth.errors import TokenError
from auth.token_cache import VerifiedTokens
from tests.auth.helpers import reencode, segments


def test_a_verified_token_is_served_from_the_cache_until_it_expires(
    verifier, clinician_token, clock
):
    tokens = VerifiedTokens(verifier, clock=clock)
    token = clinician_token()
    assert tokens.cached(token) is None
    principal = tokens.principal(token)
    assert tokens.cached(token) is principal
    # exp is 300 s away; the verifier allows 60 s of clock skew, so must the cache.
    clock.advance(359)
    assert tokens.cached(token) is principal
    clock.advance(1)
    assert tokens.cached(token) is None
    with pytest.raises(TokenError):
        tokens.principal(token)


def test_refused_tokens_are_not_remembered(verifier, clinician_token, clock):
    tokens = VerifiedTokens(verifier, clock=clock)
    good = clinician_token()
    _, claims, _ = segments(good)
    forged = reencode(good, claims={**claims, "org": "ZZZ99"})
    for _ in range(3):
        with pytest.raises(TokenError):
            tokens.principal(forged)
    assert len(tokens) == 0
    assert tokens.cached(forged) is None


def test_the_cache_is_bounded(verifier, clinician_token, clock):
    tokens = VerifiedTokens(verifier, max_entries=2, clock=clock)
    issued = [clinician_token(subject=f"user-{i}") for i in range(3)]
    for token in issued:
        tokens.principal(token)
    assert len(tokens) == 2
    assert tokens.cached(issued[0]) is None
    assert tokens.cached(issued[2]) is not None
