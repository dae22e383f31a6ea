"""Access tokens: issue them with the embedded keys, verify them against trusted issuers.

Verification order (each step refuses with a typed ``TokenError``; none echoes the token):

1. shape: three base64url segments, JSON header, no ``crit``, at most 16 KiB;
2. algorithm: ``alg`` on the allow-list and asymmetric (``none``/``HS*`` never pass, whatever
   the configuration) -- before any key is looked up;
3. ``typ`` (when present) is ``at+jwt`` or ``JWT``; ``kid`` present;
4. the *unverified* ``iss`` chooses which trusted issuer's keys to use (never the token's own
   ``jwk``/``jku`` headers), and an unverified ``exp`` already past refuses the token without
   any signature work; the key with that ``kid`` must exist and fit the algorithm;
5. signature;
6. claims, on the verified payload: ``iss`` equal to the chosen issuer, ``aud`` containing our
   audience, ``exp``/``nbf``/``iat`` against the clock with a small skew, ``sub`` and ``jti``
   present.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auth import jws
from auth.claims import (
    audience_matches,
    optional_date,
    required_date,
    required_string,
)
from auth.clock import Clock, system_clock
from auth.errors import TokenError, TokenErrorReason
from auth.jwks import KeySource
from auth.keys import KeyStore
from auth.principal import Principal, PurposeOfUse, Role, claims_for

DEFAULT_ALLOWED_ALGORITHMS: tuple[str, ...] = ("RS256", "RS384", "ES256", "ES384")
ACCESS_TOKEN_TYP = "at+jwt"
_ACCEPTED_TYP = frozenset({"at+jwt", "application/at+jwt", "jwt"})
MAX_CLOCK_SKEW = 300


@dataclass(frozen=True)
class IssuedToken:
    """A freshly signed access token and what the token endpoint tells the client about it."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    scope: str
    jti: str
    kid: str
    expires_at: int


class TokenIssuer:
    """The embedded issuer: signs access tokens for the register's FHIR base URL."""

    def __init__(
        self,
        keys: KeyStore,
        *,
        issuer: str,
        audience: str,
        lifetime: int = 300,
        clock: Clock = system_clock,
    ) -> None:
        if lifetime <= 0:
            raise ValueError("token lifetime must be positive")
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self._clock = clock

    def issue(
        self,
        *,
        role: Role,
        subject: str,
        client_id: str,
        scope: str,
        fhir_user: str | None = None,
        organisation: str | None = None,
        purpose_of_use: PurposeOfUse | None = None,
        break_glass_reason: str | None = None,
        lifetime: int | None = None,
    ) -> IssuedToken:
        """Sign an access token for a principal with the current key.

        ``lifetime`` may shorten the configured lifetime (e.g. to the end of a break-glass
        window) but never lengthen it. Raises ``ValueError`` for claims the verifier would
        refuse (e.g. a clinician without an organisation).
        """
        seconds = self.lifetime if lifetime is None else min(int(lifetime), self.lifetime)
        if seconds <= 0:
            raise ValueError("token lifetime must be positive")
        now = int(self._clock())
        jti = secrets.token_urlsafe(24)
        claims = claims_for(
            role=role,
            subject=subject,
            client_id=client_id,
            scope=scope,
            fhir_user=fhir_user,
            organisation=organisation,
            purpose_of_use=purpose_of_use,
            break_glass_reason=break_glass_reason,
        )
        claims.update(
            iss=self.issuer, aud=self.audience, iat=now, nbf=now, exp=now + seconds, jti=jti
        )
        key = self.keys.current()
        token = jws.sign(claims, key.private_pem, alg=key.alg, kid=key.kid, typ=ACCESS_TOKEN_TYP)
        return IssuedToken(
            access_token=token,
            token_type="Bearer",
            expires_in=seconds,
            scope=scope,
            jti=jti,
            kid=key.kid,
            expires_at=now + seconds,
        )


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer whose tokens the register accepts, and where its public keys come from."""

    issuer: str
    keys: KeySource


def _check_allowed_algorithms(allowed: Collection[str]) -> frozenset[str]:
    refused = set(allowed) - jws.ASYMMETRIC_ALGORITHMS
    if refused or not allowed:
        raise ValueError(
            "allowed algorithms must be a non-empty subset of "
            f"{sorted(jws.ASYMMETRIC_ALGORITHMS)}; refused: {sorted(refused)}"
        )
    return frozenset(allowed)


class TokenVerifier:
    """Verifies bearer tokens from one or more trusted issuers for the register's audience."""

    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        *,
        audience: str | Collection[str],
        allowed_algorithms: Collection[str] = DEFAULT_ALLOWED_ALGORITHMS,
        clock_skew: int = 60,
        max_lifetime: int | None = None,
        clock: Clock = system_clock,
    ) -> None:
        if not issuers:
            raise ValueError("at least one trusted issuer is needed")
        if not 0 <= clock_skew <= MAX_CLOCK_SKEW:
            raise ValueError(f"clock skew must be between 0 and {MAX_CLOCK_SKEW} seconds")
        self._issuers = {trusted.issuer: trusted for trusted in issuers}
        self._audiences = frozenset({audience} if isinstance(audience, str) else audience)
        if not self._audiences:
            raise ValueError("an audience is needed")
        self._allowed = _check_allowed_algorithms(allowed_algorithms)
        self._skew = clock_skew
        self._max_lifetime = max_lifetime
        self._clock = clock

    @property
    def clock_skew(self) -> int:
        """Seconds of leeway allowed on ``exp``, ``nbf`` and ``iat``."""
        return self._skew

    def verify(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``, or ``TokenError`` saying why it is refused."""
        header = jws.read_header(token)
        alg = jws.check_algorithm(header, self._allowed)
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP):
            raise TokenError(TokenErrorReason.WRONG_TYPE)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError(TokenErrorReason.MISSING_KID)

        unverified = jws.read_claims_unverified(token)
        claimed_issuer = unverified.get("iss")
        trusted = self._issuers.get(claimed_issuer) if isinstance(claimed_issuer, str) else None
        if trusted is None:
            raise TokenError(TokenErrorReason.WRONG_ISSUER)
        # A token that says it has expired is refused before any signature work: replaying old
        # tokens must not cost the register a verification each (it is refused either way).
        claimed_exp = unverified.get("exp")
        if (
            isinstance(claimed_exp, int | float)
            and not isinstance(claimed_exp, bool)
            and self._clock() >= claimed_exp + self._skew
        ):
            raise TokenError(TokenErrorReason.EXPIRED)
        key = trusted.keys.key_for(kid)
        if key is None:
            raise TokenError(TokenErrorReason.UNKNOWN_KID)

        claims = jws.verify(token, key, alg)
        self._check_claims(claims, trusted.issuer)
        return claims

    def principal(self, token: str) -> Principal:
        """Verify ``token`` and build the :class:`Principal` it stands for."""
        return Principal.from_claims(self.verify(token))

    def _check_claims(self, claims: Mapping[str, Any], issuer: str) -> None:
        if claims.get("iss") != issuer:
            raise TokenError(TokenErrorReason.WRONG_ISSUER)
        if "aud" not in claims:
            raise TokenError(TokenErrorReason.MISSING_CLAIM)
        if not audience_matches(claims["aud"], self._audiences):
            raise TokenError(TokenErrorReason.WRONG_AUDIENCE)
        now = self._clock()
        exp = required_date(claims, "exp")
        iat = required_date(claims, "iat")
        nbf = optional_date(claims, "nbf")
        if now >= exp + self._skew:
            raise TokenError(TokenErrorReason.EXPIRED)
        if nbf is not None and now + self._skew < nbf:
            raise TokenError(TokenErrorReason.NOT_YET_VALID)
        if now + self._skew < iat:
            raise TokenError(TokenErrorReason.ISSUED_IN_FUTURE)
        if self._max_lifetime is not None and exp - iat > self._max_lifetime:
            raise TokenError(TokenErrorReason.LIFETIME_TOO_LONG)
        required_string(claims, "sub")
        required_string(claims, "jti")
