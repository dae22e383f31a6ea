"""Patients signing in with an external OpenID Connect provider (e.g. NHS login).

Configured by the ``REGISTER_WEB_OIDC_*`` settings (all of issuer, client id, authorization
endpoint, token endpoint and JWKS URL; a client secret is optional). The flow is the
authorization code flow with PKCE (S256), ``state`` and ``nonce``:

1. ``GET /sign-in/oidc`` keeps random ``state``, ``nonce`` and PKCE verifier in a short-lived
   HttpOnly cookie and redirects to the provider;
2. ``GET /sign-in/oidc/callback?code=&state=`` checks ``state``, exchanges the code at the token
   endpoint, and verifies the ``id_token``: signature against the provider's JWKS (fetched and
   cached by ``auth.jwks.RemoteJwks``; python-jose does the verification inside ``auth/``),
   issuer, audience (our client id), expiry, and ``nonce``;
3. the NHS number claim (``REGISTER_WEB_OIDC_NHS_NUMBER_CLAIM``) names the patient's record on
   the register; the session is that patient's (role ``patient``, their own record only).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.requests import Request

from auth.errors import TokenError
from auth.jwks import RemoteJwks
from auth.tokens import TokenVerifier, TrustedIssuer
from register.api.deps import db_of, settings_of
from register.relationships import patients_with_nhs_number
from register.settings import Settings
from register.web.sessions import Identity

COOKIE = "careregister_oidc"
PATIENT_SCOPE = (
    "patient/*.rs patient/Consent.cu patient/QuestionnaireResponse.c patient/Observation.c "
    "patient/Communication.c"
)
_JWKS: dict[str, RemoteJwks] = {}


class OidcError(Exception):
    """The external sign-in did not complete (the message is safe to show)."""


def callback_url(request: Request) -> str:
    """Where the provider sends the browser back (this server's callback page)."""
    configured = settings_of(request).base_url
    root = configured.removesuffix("/fhir") if configured else str(request.base_url).rstrip("/")
    return f"{root}/sign-in/oidc/callback"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def start(request: Request) -> tuple[str, str]:
    """The provider URL to redirect to, and the cookie value that remembers this attempt."""
    settings = settings_of(request)
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.web_oidc_client_id,
            "redirect_uri": callback_url(request),
            "scope": settings.web_oidc_scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    return f"{settings.web_oidc_authorization_endpoint}?{query}", f"{state}.{nonce}.{verifier}"


def verifier_for(settings: Settings) -> TokenVerifier:
    """The id_token verifier for the configured provider (its JWKS cached per URL)."""
    url = str(settings.web_oidc_jwks_url)
    keys = _JWKS.get(url)
    if keys is None:
        keys = _JWKS[url] = RemoteJwks(url, max_age=float(settings.auth_jwks_cache_seconds))
    return TokenVerifier(
        [TrustedIssuer(str(settings.web_oidc_issuer), keys)],
        audience=str(settings.web_oidc_client_id),
        allowed_algorithms=settings.auth_allowed_algorithms,
        clock_skew=settings.auth_clock_skew_seconds,
    )


def finish(
    request: Request, code: str, state: str, remembered: str, *, http: httpx.Client | None = None
) -> Identity:
    """Complete the flow: the patient identity the provider vouches for, or ``OidcError``."""
    settings = settings_of(request)
    parts = remembered.split(".")
    if len(parts) != 3 or not secrets.compare_digest(parts[0], state or ""):
        raise OidcError("The sign-in could not be matched to this browser. Please try again.")
    _, nonce, verifier = parts
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": callback_url(request),
        "client_id": str(settings.web_oidc_client_id),
        "code_verifier": verifier,
    }
    if settings.web_oidc_client_secret:
        form["client_secret"] = settings.web_oidc_client_secret
    client = http or httpx.Client(timeout=10.0)
    try:
        answer = client.post(str(settings.web_oidc_token_endpoint), data=form)
    except httpx.HTTPError:
        raise OidcError("The sign-in service could not be reached. Please try again.") from None
    finally:
        if http is None:
            client.close()
    id_token = answer.json().get("id_token") if answer.status_code == 200 else None
    if not isinstance(id_token, str):
        raise OidcError("The sign-in service did not confirm who you are.")
    try:
        claims: dict[str, Any] = verifier_for(settings).verify(id_token)
    except TokenError:
        raise OidcError("The sign-in service's answer could not be verified.") from None
    if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
        raise OidcError("The sign-in service's answer was not for this sign-in.")
    nhs_number = claims.get(settings.web_oidc_nhs_number_claim)
    if not isinstance(nhs_number, str) or not nhs_number.isdigit():
        raise OidcError("Your sign-in did not include your NHS number.")
    with db_of(request).read() as conn:
        found = patients_with_nhs_number(conn, nhs_number)
    if len(found) != 1:
        raise OidcError("We could not find your record on the shared care register.")
    return Identity(
        username=f"oidc:{claims['sub']}",
        role="patient",
        scope=PATIENT_SCOPE,
        fhir_user=f"Patient/{found[0]}",
        display=str(claims.get("name") or "Patient"),
    )
