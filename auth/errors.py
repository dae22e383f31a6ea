"""Typed failures of token and assertion checks.

A ``TokenError`` carries a reason from a closed list and a fixed description of that reason. It
never carries the token, its header, its claims or any value taken from them: error text ends up
in logs and responses, and a token in a log is a credential in a log.
"""

from __future__ import annotations

from enum import StrEnum


class TokenErrorReason(StrEnum):
    """Why a token or client assertion was refused."""

    MALFORMED = "malformed"
    ALGORITHM_NOT_ALLOWED = "algorithm_not_allowed"
    MISSING_KID = "missing_kid"
    UNKNOWN_KID = "unknown_kid"
    KEY_MISMATCH = "key_mismatch"
    BAD_SIGNATURE = "bad_signature"
    MISSING_CLAIM = "missing_claim"
    INVALID_CLAIM = "invalid_claim"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    ISSUED_IN_FUTURE = "issued_in_future"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    LIFETIME_TOO_LONG = "lifetime_too_long"
    REPLAYED = "replayed"
    UNKNOWN_CLIENT = "unknown_client"
    WRONG_ASSERTION_TYPE = "wrong_assertion_type"
    WRONG_TYPE = "wrong_type"
    KEYS_UNAVAILABLE = "keys_unavailable"


_DESCRIPTIONS: dict[TokenErrorReason, str] = {
    TokenErrorReason.MALFORMED: "the token is not a well-formed signed JWT",
    TokenErrorReason.ALGORITHM_NOT_ALLOWED: "the signing algorithm is not on the allow-list",
    TokenErrorReason.MISSING_KID: "the token header names no key (kid)",
    TokenErrorReason.UNKNOWN_KID: "no trusted key has the token's key id",
    TokenErrorReason.KEY_MISMATCH: "the key named by the token does not fit its algorithm",
    TokenErrorReason.BAD_SIGNATURE: "the signature does not verify",
    TokenErrorReason.MISSING_CLAIM: "a required claim is missing",
    TokenErrorReason.INVALID_CLAIM: "a claim has a value of the wrong form",
    TokenErrorReason.EXPIRED: "the token has expired",
    TokenErrorReason.NOT_YET_VALID: "the token is not valid yet",
    TokenErrorReason.ISSUED_IN_FUTURE: "the token claims to be issued in the future",
    TokenErrorReason.WRONG_ISSUER: "the token comes from an issuer that is not trusted",
    TokenErrorReason.WRONG_AUDIENCE: "the token is meant for another audience",
    TokenErrorReason.LIFETIME_TOO_LONG: "the assertion lives longer than allowed",
    TokenErrorReason.REPLAYED: "the assertion's jti has been used before",
    TokenErrorReason.UNKNOWN_CLIENT: "the client is not registered or is disabled",
    TokenErrorReason.WRONG_ASSERTION_TYPE: "the client assertion type is not jwt-bearer",
    TokenErrorReason.WRONG_TYPE: "the token's typ header does not fit its use",
    TokenErrorReason.KEYS_UNAVAILABLE: "the verification keys could not be fetched",
}


class TokenError(Exception):
    """A token or client assertion was refused, for ``reason``.

    The message is fixed per reason, so it is safe to log and to return to the caller.
    """

    def __init__(self, reason: TokenErrorReason) -> None:
        self.reason = reason
        super().__init__(f"{reason.value}: {_DESCRIPTIONS[reason]}")

    def __repr__(self) -> str:
        return f"TokenError({self.reason.value!r})"
