"""SMART Backend Services client authentication: validate a ``private_key_jwt`` assertion.

A backend client proves who it is at the token endpoint with a short-lived JWT signed by one of
its registered keys (SMART App Launch 2, "Client Authentication: Asymmetric"; RFC 7523 s3):

- form parameter ``client_assertion_type`` is ``urn:ietf:params:oauth:client-assertion-type:
  jwt-bearer``;
- header: ``alg`` asymmetric and allowed (RS384/ES384 at least), ``kid`` required, ``typ`` is
  ``JWT`` when present, ``jku`` (when present) must be the JWKS URL registered for the client;
- claims: ``iss`` == ``sub`` == the client id; ``aud`` is this token endpoint's URL; ``exp`` no
  more than five minutes ahead of now (and of ``iat`` when given); ``jti`` never seen before for
  this client while the assertion could still be valid;
- signature by the key with that ``kid`` in *that client's* key set -- never another client's,
  never a key carried in the token.

The replay check runs last, after the signature, so forged assertions cannot use up jtis.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

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

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300
"""SMART: the assertion's ``exp`` "SHALL be no more than five minutes in the future"."""
DEFAULT_ASSERTION_ALGORITHMS: tuple[str, ...] = ("RS256", "RS384", "ES256", "ES384")


class JtiStore(Protocol):
    """Remembers assertion ids until they expire, so each can be used once.

    The database-backed store (phase 2) must make ``remember`` atomic (an insert that fails on
    a unique key), or two workers could both accept the same assertion.
    """

    def remember(self, client_id: str, jti: str, expires_at: float) -> bool:
        """Record ``(client_id, jti)`` until ``expires_at``; False if it is already recorded."""
        ...


class InMemoryJtiStore:
    """A ``JtiStore`` for tests and single-process use; forgets entries once they expire."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def remember(self, client_id: str, jti: str, expires_at: float) -> bool:
        """Record the pair; False if it was recorded before and has not expired."""
        with self._lock:
            now = self._clock()
            self._seen = {k: t for k, t in self._seen.items() if t >= now}
            key = (client_id, jti)
            if key in self._seen:
                return False
            self._seen[key] = expires_at
            return True

    def __len__(self) -> int:
        return len(self._seen)


@dataclass(frozen=True)
class ClientKeys:
    """What the registry knows about a client's keys: where to find them and, if the client
    registered one, its JWKS URL (the only ``jku`` it may name)."""

    client_id: str
    keys: KeySource
    jwks_url: str | None = None


class ClientKeyResolver(Protocol):
    """The client registry as the validator sees it (database-backed in phase 2)."""

    def client_keys(self, client_id: str) -> ClientKeys | None:
        """The keys of an enabled client, or ``None`` if it is unknown or disabled."""
        ...


class StaticClients:
    """A ``ClientKeyResolver`` over a fixed mapping (tests, configuration files)."""

    def __init__(self, clients: Mapping[str, ClientKeys]) -> None:
        self._clients = dict(clients)

    def client_keys(self, client_id: str) -> ClientKeys | None:
        """The registered keys, or ``None``."""
        return self._clients.get(client_id)


@dataclass(frozen=True)
class VerifiedClientAssertion:
    """A client assertion that passed every check: the client is authenticated."""

    client_id: str
    jti: str
    kid: str
    alg: str
    expires_at: float


class ClientAssertionValidator:
    """Validates ``private_key_jwt`` assertions posted to one token endpoint."""

    def __init__(
        self,
        clients: ClientKeyResolver,
        jti_store: JtiStore,
        *,
        token_endpoint: str,
        allowed_algorithms: Collection[str] = DEFAULT_ASSERTION_ALGORITHMS,
        clock_skew: int = 60,
        max_lifetime: int = MAX_ASSERTION_LIFETIME,
        clock: Clock = system_clock,
    ) -> None:
        refused = set(allowed_algorithms) - jws.ASYMMETRIC_ALGORITHMS
        if refused or not allowed_algorithms:
            raise ValueError(f"assertion algorithms must be asymmetric; refused {sorted(refused)}")
        if not 0 < max_lifetime <= MAX_ASSERTION_LIFETIME:
            raise ValueError("assertion lifetime must be between 1 and 300 seconds")
        self._clients = clients
        self._jti_store = jti_store
        self.token_endpoint = token_endpoint
        self._allowed = frozenset(allowed_algorithms)
        self._skew = clock_skew
        self._max_lifetime = max_lifetime
        self._clock = clock

    def validate(
        self, assertion: str, *, assertion_type: str, client_id: str | None = None
    ) -> VerifiedClientAssertion:
        """Authenticate a client from its assertion, or raise ``TokenError``.

        ``client_id`` is the optional ``client_id`` form parameter; when given it must equal
        the assertion's issuer. The OAuth answer to any failure is ``invalid_client``.
        """
        if assertion_type != CLIENT_ASSERTION_TYPE:
            raise TokenError(TokenErrorReason.WRONG_ASSERTION_TYPE)
        header = jws.read_header(assertion)
        alg = jws.check_algorithm(header, self._allowed)
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
            raise TokenError(TokenErrorReason.WRONG_TYPE)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError(TokenErrorReason.MISSING_KID)

        claimed = jws.read_claims_unverified(assertion).get("iss")
        if not isinstance(claimed, str) or not claimed:
            raise TokenError(TokenErrorReason.MISSING_CLAIM)
        if client_id is not None and client_id != claimed:
            raise TokenError(TokenErrorReason.WRONG_ISSUER)
        client = self._clients.client_keys(claimed)
        if client is None or client.client_id != claimed:
            raise TokenError(TokenErrorReason.UNKNOWN_CLIENT)
        if "jku" in header and (client.jwks_url is None or header["jku"] != client.jwks_url):
            raise TokenError(TokenErrorReason.KEY_MISMATCH)
        key = client.keys.key_for(kid)
        if key is None:
            raise TokenError(TokenErrorReason.UNKNOWN_KID)

        claims = jws.verify(assertion, key, alg)
        jti, expires_at = self._check_claims(claims, client.client_id)
        if not self._jti_store.remember(client.client_id, jti, expires_at + self._skew):
            raise TokenError(TokenErrorReason.REPLAYED)
        return VerifiedClientAssertion(
            client_id=client.client_id, jti=jti, kid=kid, alg=alg, expires_at=expires_at
        )

    def _check_claims(self, claims: Mapping[str, Any], client_id: str) -> tuple[str, float]:
        if required_string(claims, "iss") != client_id:
            raise TokenError(TokenErrorReason.WRONG_ISSUER)
        if required_string(claims, "sub") != client_id:
            raise TokenError(TokenErrorReason.INVALID_CLAIM)
        if "aud" not in claims:
            raise TokenError(TokenErrorReason.MISSING_CLAIM)
        if not audience_matches(claims["aud"], {self.token_endpoint}):
            raise TokenError(TokenErrorReason.WRONG_AUDIENCE)
        now = self._clock()
        exp = required_date(claims, "exp")
        iat = optional_date(claims, "iat")
        nbf = optional_date(claims, "nbf")
        if now >= exp + self._skew:
            raise TokenError(TokenErrorReason.EXPIRED)
        if exp > now + self._max_lifetime + self._skew:
            raise TokenError(TokenErrorReason.LIFETIME_TOO_LONG)
        if iat is not None:
            if iat > now + self._skew:
                raise TokenError(TokenErrorReason.ISSUED_IN_FUTURE)
            if exp - iat > self._max_lifetime:
                raise TokenError(TokenErrorReason.LIFETIME_TOO_LONG)
        if nbf is not None and nbf > now + self._skew:
            raise TokenError(TokenErrorReason.NOT_YET_VALID)
        return required_string(claims, "jti"), exp


# -- the client side (CLI, demo, tests) ---------------------------------------------------------


def algorithm_for_key(private_pem: bytes) -> str:
    """The assertion algorithm for a private key: ES256/ES384 by curve, RS384 for RSA."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = serialization.load_pem_private_key(private_pem, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS384"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "ES256", "secp384r1": "ES384"}
        if key.curve.name in by_curve:
            return by_curve[key.curve.name]
    raise ValueError("the key must be RSA, or EC on P-256 or P-384")


def client_jwks(private_pem: bytes) -> dict[str, list[dict[str, str]]]:
    """The public JWK set a client registers for its private key (kid = RFC 7638 thumbprint)."""
    from cryptography.hazmat.primitives import serialization

    from auth.keys import jwk_thumbprint, public_jwk

    key = serialization.load_pem_private_key(private_pem, password=None)
    public = public_jwk(key.public_key())  # type: ignore[arg-type]
    alg = algorithm_for_key(private_pem)
    return {"keys": [{**public, "kid": jwk_thumbprint(public), "alg": alg, "use": "sig"}]}


def sign_client_assertion(
    *,
    client_id: str,
    token_endpoint: str,
    private_pem: bytes,
    lifetime: int = MAX_ASSERTION_LIFETIME,
    clock: Clock = system_clock,
) -> str:
    """A ``private_key_jwt`` client assertion (SMART Backend Services) signed with
    ``private_pem``: ``iss`` = ``sub`` = the client id, ``aud`` the token endpoint, a fresh
    ``jti``, ``exp`` at most five minutes ahead."""
    import secrets

    if not 0 < lifetime <= MAX_ASSERTION_LIFETIME:
        raise ValueError("an assertion lives at most five minutes")
    jwk = client_jwks(private_pem)["keys"][0]
    now = int(clock())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "jti": secrets.token_urlsafe(24),
        "iat": now,
        "exp": now + lifetime,
    }
    return jws.sign(claims, private_pem, alg=jwk["alg"], kid=jwk["kid"], typ="JWT")
