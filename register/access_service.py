"""The identity side of the service, wired from settings: keys, issuers, verifiers, clients.

One :class:`AccessService` per app (``app.state.access``), built by the app factory. It owns the
embedded issuer's key store (``<REGISTER_DATA_DIR>/keys``, created 0700 with 0600 key files on
first start), and per FHIR base URL (the configured one, or each address the register is reached
at) an issuer, a verifier with its cache of verified tokens, and the token endpoint's URL.

Per request it answers "who is this token" from the cache (a dictionary lookup once a token has
been verified), and "what may this token do with this interaction" from a memo of
:class:`~register.access_request.RequestAccess` (the policy's decision and its SQL condition are
built once per token and interaction, not per request).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from auth.client_assertion import ClientAssertionValidator
from auth.jwks import RemoteJwks
from auth.keys import KeyStore
from auth.policy import FhirInteraction, PolicyConfig, Refusal, admit
from auth.principal import Principal
from auth.token_cache import VerifiedTokens
from auth.tokens import TokenIssuer, TokenVerifier, TrustedIssuer
from register import consent_config
from register.access_clients import DbClients, DbJtiStore
from register.access_request import RequestAccess
from register.db import Database
from register.settings import Settings

log = logging.getLogger("register.access")

_MEMO_LIMIT = 20_000
_BASES_LIMIT = 64


def server_root(base_url: str) -> str:
    """The server's root URL for a FHIR base URL (``https://h/fhir`` -> ``https://h``)."""
    return base_url[: -len("/fhir")] if base_url.endswith("/fhir") else base_url


@dataclass(frozen=True)
class Endpoints:
    """The identity endpoints as seen from one FHIR base URL."""

    base_url: str
    issuer_url: str
    audience: str
    token_url: str
    jwks_url: str
    issuer: TokenIssuer
    tokens: VerifiedTokens


class AccessService:
    """Keys, issuers, verifiers and the policy settings of one running register."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = PolicyConfig(
            encounter_window_days=settings.auth_relationship_window_days,
            break_glass_minutes=settings.auth_break_glass_minutes,
            **consent_config.policy_settings(settings.consent_default_model),
        )
        self.keys = KeyStore(
            settings.data_dir / "keys",
            algorithm=settings.auth_signing_algorithm,
            key_lifetime=settings.auth_signing_key_days * 86400,
            verify_grace=settings.auth_token_lifetime_seconds + settings.auth_clock_skew_seconds,
        )
        self._external: TrustedIssuer | None = None
        if settings.auth_external_issuer and settings.auth_external_jwks_url:
            self._external = TrustedIssuer(
                settings.auth_external_issuer,
                RemoteJwks(
                    settings.auth_external_jwks_url,
                    max_age=settings.auth_jwks_cache_seconds,
                    min_refresh_interval=settings.auth_jwks_min_refresh_seconds,
                ),
            )
        self._bases: dict[str, Endpoints] = {}
        self._memo: dict[tuple[str, FhirInteraction, str | None], RequestAccess | Refusal] = {}
        self.client_jwks: dict[str, RemoteJwks] = {}

    def start(self) -> None:
        """Make sure a signing key exists (generated on first start)."""
        key = self.keys.current()
        log.info("signing key %s (%s) ready", key.kid, key.alg)

    def close(self) -> None:
        """Close HTTP clients of remote JWKS sources."""
        if self._external is not None and isinstance(self._external.keys, RemoteJwks):
            self._external.keys.close()
        for remote in self.client_jwks.values():
            remote.close()

    def endpoints(self, base_url: str) -> Endpoints:
        """Issuer, verifier and endpoint URLs for requests arriving at ``base_url``."""
        found = self._bases.get(base_url)
        if found is not None:
            return found
        settings = self.settings
        root = server_root(base_url)
        issuer_url = settings.auth_issuer or f"{root}/auth"
        audience = settings.auth_audience or base_url
        trusted = [TrustedIssuer(issuer_url, self.keys)]
        if self._external is not None:
            trusted.append(self._external)
        verifier = TokenVerifier(
            trusted,
            audience=audience,
            allowed_algorithms=settings.auth_allowed_algorithms,
            clock_skew=settings.auth_clock_skew_seconds,
        )
        found = Endpoints(
            base_url=base_url,
            issuer_url=issuer_url,
            audience=audience,
            token_url=f"{root}/auth/token",
            jwks_url=f"{root}/auth/jwks",
            issuer=TokenIssuer(
                self.keys,
                issuer=issuer_url,
                audience=audience,
                lifetime=settings.auth_token_lifetime_seconds,
            ),
            tokens=VerifiedTokens(verifier),
        )
        if len(self._bases) < _BASES_LIMIT:
            self._bases[base_url] = found
        return found

    def access_for(
        self,
        token: str,
        principal: Principal,
        interaction: FhirInteraction,
        resource_type: str | None,
    ) -> RequestAccess | Refusal:
        """The policy's decision for this token doing ``interaction`` on ``resource_type``:
        a refusal, or the access the request runs with. Memoised per token (the principal is a
        function of the token)."""
        key = (token, interaction, resource_type)
        found = self._memo.get(key)
        if found is None:
            refusal = admit(principal, interaction, resource_type)
            found = refusal or RequestAccess.build(
                principal, self.config, interaction, resource_type
            )
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = found
        return found

    def assertion_validator(
        self, conn: Any, db: Database, endpoints: Endpoints
    ) -> ClientAssertionValidator:
        """A client-assertion validator for the token endpoint at ``endpoints.token_url``,
        reading clients through ``conn`` and recording used assertion ids in ``db``."""
        return ClientAssertionValidator(
            DbClients(conn, self.client_jwks),
            DbJtiStore(db),
            token_endpoint=endpoints.token_url,
            allowed_algorithms=self.settings.auth_allowed_algorithms,
            clock_skew=self.settings.auth_clock_skew_seconds,
        )
