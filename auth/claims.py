"""Checks on single JWT claims, shared by access tokens, client assertions and principals.

Each helper either returns the claim in a usable type or raises ``TokenError`` with
``missing_claim`` / ``invalid_claim``; none of them puts the value in the error.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from auth.errors import TokenError, TokenErrorReason

MAX_STRING_CLAIM = 255


def optional_date(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim (seconds since the epoch), or ``None`` when absent."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenError(TokenErrorReason.INVALID_CLAIM)
    return float(value)


def required_date(claims: Mapping[str, Any], name: str) -> float:
    """A NumericDate claim that must be present."""
    value = optional_date(claims, name)
    if value is None:
        raise TokenError(TokenErrorReason.MISSING_CLAIM)
    return value


def required_string(
    claims: Mapping[str, Any], name: str, max_length: int = MAX_STRING_CLAIM
) -> str:
    """A claim that must be a non-empty string of bounded length."""
    value = claims.get(name)
    if value is None:
        raise TokenError(TokenErrorReason.MISSING_CLAIM)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise TokenError(TokenErrorReason.INVALID_CLAIM)
    return value


def audience_matches(claim: Any, accepted: Collection[str]) -> bool:
    """Whether an ``aud`` claim (a string or a non-empty list of strings) names an accepted
    audience. Anything else (numbers, empty lists, mixed lists) never matches."""
    if isinstance(claim, str):
        return claim in accepted
    if isinstance(claim, list) and claim and all(isinstance(a, str) for a in claim):
        return any(a in accepted for a in claim)
    return False
